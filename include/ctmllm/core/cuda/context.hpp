#pragma once
// The per-device context of the library calls: the cuBLASLt handle with its workspace, and the
// cuDNN handle bound to the device's stream (stream.hpp). Each is made on first use, so a program
// that never multiplies matrices never loads cuBLASLt's kernels.
#include <mutex>

#include <cublasLt.h>
#include <cudnn.h>

#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/cuda/library_error.hpp"
#include "ctmllm/core/cuda/per_device.hpp"
#include "ctmllm/core/cuda/stream.hpp"

namespace ctmllm::cuda {

class Context {
 public:
  // cuBLASLt's recommendation for Hopper: 32 MiB lets it choose its fastest split-K kernels.
  static constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

  // The context of the current device.
  static Context& current() {
    static PerDevice<Context> contexts;
    return contexts.current([] { return new Context(); });
  }

  cudaStream_t stream() const { return stream_; }
  const cudaDeviceProp& properties() const { return properties_; }

  cublasLtHandle_t cublaslt() {
    std::call_once(cublas_once_, [this] {
      check(cublasLtCreate(&cublaslt_), "cublasLtCreate");
      CTMLLM_CUDA_CHECK(cudaMalloc(&workspace_, kCublasWorkspaceBytes));
    });
    return cublaslt_;
  }
  // Scratch memory for cuBLASLt, kCublasWorkspaceBytes long; only valid after cublaslt().
  void* cublas_workspace() const { return workspace_; }

  cudnnHandle_t cudnn() {
    std::call_once(cudnn_once_, [this] {
      check(cudnnCreate(&cudnn_), "cudnnCreate");
      check(cudnnSetStream(cudnn_, stream_), "cudnnSetStream");
    });
    return cudnn_;
  }

 private:
  Context() : stream_(current_stream()) {
    CTMLLM_CUDA_CHECK(cudaGetDeviceProperties(&properties_, current_device()));
  }

  cudaStream_t stream_;
  cudaDeviceProp properties_{};
  std::once_flag cublas_once_, cudnn_once_;
  cublasLtHandle_t cublaslt_ = nullptr;
  void* workspace_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
};

}  // namespace ctmllm::cuda
