#pragma once
// The caching device allocator behind Cuda::allocate: one BlockCache over cudaMalloc per device.
// cudaMalloc and cudaFree synchronise the device and take tens of microseconds; a training step
// allocates the same sizes every time, so after the first step every tensor comes from the cache.
#include <atomic>

#include "ctmllm/core/cuda/block_cache.hpp"
#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/cuda/per_device.hpp"
#include "ctmllm/core/cuda/stream.hpp"

namespace ctmllm::cuda {

struct CudaMallocBackend {
  void* malloc(size_t bytes) {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clears the error, so the retry (or the next launch check) does not see it
      return nullptr;
    }
    check(e, "cudaMalloc");
    return p;
  }
  void free(void* p) { check(cudaFree(p), "cudaFree"); }
};

using DeviceAllocator = BlockCache<CudaMallocBackend>;

// The current device's allocator.
inline DeviceAllocator& allocator() {
  static PerDevice<DeviceAllocator> allocators;
  return allocators.current([] { return new DeviceAllocator(); });
}

// When on, every block handed out is first filled with 0xFF bytes, which read as NaN in float32,
// bfloat16 and float16: tests turn it on so that an output element a kernel never writes cannot
// pass a comparison.
inline std::atomic<bool>& poison_new_blocks() {
  static std::atomic<bool> on{false};
  return on;
}

// A block of at least `bytes` on the current device, returned to the cache (not to the device) when
// the last reference goes.
inline std::shared_ptr<std::byte> allocate(size_t bytes) {
  DeviceAllocator& a = allocator();
  std::shared_ptr<std::byte> block(static_cast<std::byte*>(a.allocate(bytes)), [&a](std::byte* q) { a.deallocate(q); });
  if (poison_new_blocks().load(std::memory_order_relaxed))
    CTMLLM_CUDA_CHECK(cudaMemsetAsync(block.get(), 0xFF, size_class(bytes), current_stream()));
  return block;
}

}  // namespace ctmllm::cuda
