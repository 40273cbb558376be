#pragma once
// Device tags and their raw allocators. A tensor's device is a type (Tensor<float, Cpu>), so code
// for each backend is chosen at compile time; CUDA support is present only when the ctmllm::cuda
// target (which defines CTMLLM_WITH_CUDA) is linked.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ctmllm/core/error.hpp"
#include "ctmllm/core/host_allocator.hpp"

#if defined(CTMLLM_WITH_CUDA)
#include "ctmllm/core/cuda/allocator.hpp"
#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/cuda/stream.hpp"
#include "ctmllm/core/cuda/strided_copy.hpp"
#endif

namespace ctmllm {

struct Cpu {
  static constexpr const char* name = "cpu";
  static constexpr size_t alignment = 64;  // a cache line; also enough for AVX-512 loads

  static std::shared_ptr<std::byte> allocate(size_t bytes) {
    // Never zero bytes: an empty tensor still has storage, so defined() stays true for it.
    const size_t rounded = bytes == 0 ? alignment : (bytes + alignment - 1) / alignment * alignment;
    if (rounded >= kHostCachedMinBytes) {  // large blocks are reused, not faulted in again (host_allocator.hpp)
      void* p = host_allocator().allocate(rounded);
      return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { host_allocator().deallocate(q); });
    }
    void* p = std::aligned_alloc(alignment, rounded);
    CTMLLM_CHECK(p, "Cpu: out of memory allocating ", bytes, " bytes");
    return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
  }
  static void copy_to_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
  static void copy_from_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
  static void copy_within(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
  static void zero(void* dst, size_t bytes) { if (bytes) std::memset(dst, 0, bytes); }
};

#if defined(CTMLLM_WITH_CUDA)
// Device memory comes from the caching allocator (core/cuda/allocator.hpp); copies run on the
// device's stream (core/cuda/stream.hpp), so they are ordered after the kernels queued before them,
// and those to or from the host return once the copy is done.
struct Cuda {
  static constexpr const char* name = "cuda";
  static std::shared_ptr<std::byte> allocate(size_t bytes) { return cuda::allocate(bytes); }
  static void copy_to_host(void* dst, const void* src, size_t bytes) { copy(dst, src, bytes, cudaMemcpyDeviceToHost, true); }
  static void copy_from_host(void* dst, const void* src, size_t bytes) { copy(dst, src, bytes, cudaMemcpyHostToDevice, true); }
  static void copy_within(void* dst, const void* src, size_t bytes) { copy(dst, src, bytes, cudaMemcpyDeviceToDevice, false); }
  // Queued on the stream like a kernel (no host traffic, no wait).
  static void zero(void* dst, size_t bytes) {
    if (bytes) cuda::check(cudaMemsetAsync(dst, 0, bytes, cuda::current_stream()), "cudaMemsetAsync");
  }
  // Whether the program holds the device's strided copy kernel (core/cuda/strided_copy.hpp).
  static bool strided_copy_available() { return cuda::strided_copy_launcher().load() != nullptr; }
  // Copies the view (src, src_strides) into the view (dst, dst_strides), both of `shape`, on the
  // device; false (nothing done) without the kernel.
  static bool copy_strided(void* dst, const Shape& dst_strides, const void* src, const Shape& src_strides,
                           const Shape& shape, size_t elem_bytes) {
    const cuda::StridedCopyFn fn = cuda::strided_copy_launcher().load();
    if (!fn) return false;
    fn(dst, dst_strides, src, src_strides, shape, elem_bytes);
    return true;
  }
  // True when a usable GPU is present; tests use it to skip (cudaGetDeviceCount fails without one).
  static bool available() {
    int n = 0;
    const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    cudaGetLastError();  // the failed query must not surface at the next launch check
    return ok;
  }

 private:
  static void copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, bool wait) {
    if (!bytes) return;
    const cudaStream_t s = cuda::current_stream();
    cuda::check(cudaMemcpyAsync(dst, src, bytes, kind, s), "cudaMemcpyAsync");
    if (wait) cuda::check(cudaStreamSynchronize(s), "cudaStreamSynchronize after cudaMemcpyAsync");
  }
};
#endif

}  // namespace ctmllm
