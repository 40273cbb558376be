#pragma once
// Device tags and their raw allocators. A tensor's device is a type (Tensor<float, Cpu>), so code
// for each backend is chosen at compile time; CUDA support is present only when the ctmllm::cuda
// target (which defines CTMLLM_WITH_CUDA) is linked.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ctmllm/core/error.hpp"

#if defined(CTMLLM_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace ctmllm {

struct Cpu {
  static constexpr const char* name = "cpu";
  static constexpr size_t alignment = 64;  // a cache line; also enough for AVX-512 loads

  static std::shared_ptr<std::byte> allocate(size_t bytes) {
    // Never zero bytes: an empty tensor still has storage, so defined() stays true for it.
    const size_t rounded = bytes == 0 ? alignment : (bytes + alignment - 1) / alignment * alignment;
    void* p = std::aligned_alloc(alignment, rounded);
    CTMLLM_CHECK(p, "Cpu: out of memory allocating ", bytes, " bytes");
    return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
  }
  static void copy_to_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
  static void copy_from_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
  static void copy_within(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
};

#if defined(CTMLLM_WITH_CUDA)
namespace cuda_detail {
inline void check(cudaError_t e, const char* what) {
  CTMLLM_CHECK(e == cudaSuccess, "CUDA error in ", what, ": ", cudaGetErrorString(e));
}
}  // namespace cuda_detail

struct Cuda {
  static constexpr const char* name = "cuda";
  static std::shared_ptr<std::byte> allocate(size_t bytes) {
    void* p = nullptr;
    cuda_detail::check(cudaMalloc(&p, bytes ? bytes : 256), "cudaMalloc");
    return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { cudaFree(q); });
  }
  static void copy_to_host(void* dst, const void* src, size_t bytes) {
    if (bytes) cuda_detail::check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  }
  static void copy_from_host(void* dst, const void* src, size_t bytes) {
    if (bytes) cuda_detail::check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  static void copy_within(void* dst, const void* src, size_t bytes) {
    if (bytes) cuda_detail::check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy D2D");
  }
  // True when a usable GPU is present; tests use it to skip (cudaGetDeviceCount fails without one).
  static bool available() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  }
};
#endif

}  // namespace ctmllm
