#pragma once
// The per-device context of the library calls: the cuBLASLt handle and the cuDNN handle. Each is
// made on first use, so a program that never multiplies matrices never loads cuBLASLt's kernels.
// cuBLASLt takes its stream and workspace per call (the workspace comes from the caching allocator,
// so work on different streams never shares one); the cuDNN handle holds a stream and may not be
// used by two threads at once, so it is lent to one caller at a time, bound to the caller's stream.
#include <mutex>
#include <utility>

#include <cublasLt.h>
#include <cudnn.h>

#include "ctmllm/core/cuda/current_stream.hpp"
#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/cuda/library_error.hpp"
#include "ctmllm/core/cuda/per_device.hpp"

namespace ctmllm::cuda {

class Context {
 public:
  // The most scratch a GEMM may ask for (cuBLASLt's recommendation for Hopper: 32 MiB lets it choose
  // its fastest split-K kernels); each call takes what its algorithm needs from the caching allocator.
  static constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

  // The context of the current device.
  static Context& current() {
    static PerDevice<Context> contexts;
    return contexts.current([] { return new Context(); });
  }

  const cudaDeviceProp& properties() const { return properties_; }

  cublasLtHandle_t cublaslt() {
    std::call_once(cublas_once_, [this] { check(cublasLtCreate(&cublaslt_), "cublasLtCreate"); });
    return cublaslt_;
  }

  // The cuDNN handle, held by the caller while the lease lives (other threads wait), its work queued
  // on the current stream.
  class CudnnLease {
   public:
    CudnnLease(std::unique_lock<std::mutex> lock, cudnnHandle_t handle) : lock_(std::move(lock)), handle_(handle) {}
    cudnnHandle_t get() const { return handle_; }

   private:
    std::unique_lock<std::mutex> lock_;
    cudnnHandle_t handle_;
  };
  CudnnLease cudnn() {
    std::unique_lock lock(cudnn_mutex_);
    if (!cudnn_) check(cudnnCreate(&cudnn_), "cudnnCreate");
    check(cudnnSetStream(cudnn_, current_stream()), "cudnnSetStream");
    return {std::move(lock), cudnn_};
  }

 private:
  Context() { CTMLLM_CUDA_CHECK(cudaGetDeviceProperties(&properties_, current_device())); }

  cudaDeviceProp properties_{};
  std::once_flag cublas_once_;
  cublasLtHandle_t cublaslt_ = nullptr;
  std::mutex cudnn_mutex_;
  cudnnHandle_t cudnn_ = nullptr;
};

}  // namespace ctmllm::cuda
