#pragma once
// The caching device allocator behind Cuda::allocate: one BlockCache over cudaMalloc per device.
// cudaMalloc and cudaFree synchronise the device and take tens of microseconds; a training step
// allocates the same sizes every time, so after the first step every tensor comes from the cache.
#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "ctmllm/core/block_cache.hpp"
#include "ctmllm/core/cuda/current_stream.hpp"
#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/cuda/per_device.hpp"

namespace ctmllm::cuda {

struct CudaMallocBackend {
  static constexpr const char* memory = "device";
  void* malloc(size_t bytes) {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    // Cleared, so that the retry (or the next launch check) does not see it as its own.
    if (e != cudaSuccess) cudaGetLastError();
    if (e == cudaErrorMemoryAllocation) return nullptr;
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

// The blocks of one CUDA graph (core/cuda/graph.hpp): a graph writes the blocks its capture allocated
// on every replay, so they must never reach the device's shared cache while the graph can still run.
// During the capture every allocation of the capturing thread on the pool's device comes from here,
// and blocks freed during it return here, free for the capture's later allocations (the graph runs
// its work in capture order, as the stream would). The memory goes back to the device when the pool
// and every tensor in it are gone. Out of memory, a pool throws (the capture fails with that Error)
// rather than free its cached blocks: the graph's kernels still use them on every replay.
class PrivatePool {
 public:
  explicit PrivatePool(int device) : device_(device) {}
  ~PrivatePool() {
    try {
      for (const auto& [shared, block] : retained_) shared->deallocate(block);
      cache_.release_cached();
    } catch (const Error&) {  // a destructor must not throw; a failing cudaFree means the context is lost anyway
    }
  }
  PrivatePool(const PrivatePool&) = delete;
  PrivatePool& operator=(const PrivatePool&) = delete;

  int device() const { return device_; }
  DeviceAllocator& cache() { return cache_; }

  // Keeps a block of a shared cache, freed during the capture, until the pool goes: the graph may
  // read it on every replay (a tensor made before the capture whose last use was in it), so it must
  // not be handed to another tensor meanwhile. The graph's replays are over when the pool goes.
  void retain(DeviceAllocator& shared, void* block) {
    std::lock_guard lock(mutex_);
    retained_.emplace_back(&shared, block);
  }

 private:
  int device_;
  DeviceAllocator cache_{CudaMallocBackend{}, OnOutOfMemory::fail};
  std::mutex mutex_;
  std::vector<std::pair<DeviceAllocator*, void*>> retained_;
};

// The pool the calling thread allocates from while it captures a graph (null otherwise).
inline std::shared_ptr<PrivatePool>& capture_pool() {
  thread_local std::shared_ptr<PrivatePool> pool;
  return pool;
}

// Routes the calling thread's allocations to `pool` for the scope.
class UsePrivatePool {
 public:
  explicit UsePrivatePool(std::shared_ptr<PrivatePool> pool) : previous_(std::exchange(capture_pool(), std::move(pool))) {}
  ~UsePrivatePool() { capture_pool() = std::move(previous_); }
  UsePrivatePool(const UsePrivatePool&) = delete;
  UsePrivatePool& operator=(const UsePrivatePool&) = delete;

 private:
  std::shared_ptr<PrivatePool> previous_;
};

// When on, every block handed out is first filled with 0xFF bytes, which read as NaN in float32,
// bfloat16 and float16: tests turn it on so that an output element a kernel never writes cannot
// pass a comparison.
inline std::atomic<bool>& poison_new_blocks() {
  static std::atomic<bool> on{false};
  return on;
}

// Waits for `stream` (of the current device), then gives the blocks allocated for it, cached and
// live, to the device's own stream: nothing of its work is left to race with their next user. Call
// it before destroying a stream that ctmllm work ran on (cuda::Stream does); otherwise its cached
// blocks stay out of use until release_cached().
inline void retire_stream(cudaStream_t stream) {
  CTMLLM_CUDA_CHECK(cudaStreamSynchronize(stream));
  allocator().retire_stream(stream, own_stream());
}

namespace detail {
// Returns a block to its stream's free list. Freed while another stream is current, the block's
// stream first waits for the work queued so far on the current one (the block's last uses), so
// that the tensor it is handed to next is written after them. Under a graph capture there is no
// such order to queue: a block used on another stream than its own must then outlive the capture.
// Freed by a thread that is capturing, the block stays with the graph's pool (PrivatePool::retain).
// A deleter must not throw: an ordering that fails leaves the context broken, and the next checked
// call reports it.
inline void free_block(DeviceAllocator& cache, std::byte* block) {
  if (const std::shared_ptr<PrivatePool>& pool = capture_pool()) return pool->retain(cache, block);
  const auto home = static_cast<cudaStream_t>(const_cast<void*>(cache.stream_of(block)));
  try {
    const cudaStream_t now = current_stream();
    if (now != home && !capturing(now) && !capturing(home)) order_after(home, now);
  } catch (const Error&) {
  }
  cache.deallocate(block);
}

// The pool of the graph the calling thread captures on the current device, or null.
inline std::shared_ptr<PrivatePool> active_pool() {
  const std::shared_ptr<PrivatePool>& pool = capture_pool();
  return pool && pool->device() == current_device() ? pool : nullptr;
}

// p, a block of `bytes` from `pool` (when set) or else from the device's cache `shared`, as a block
// that goes back there when its last reference goes; poisoned when asked.
inline std::shared_ptr<std::byte> hand_out(void* p, size_t bytes, cudaStream_t stream,
                                           const std::shared_ptr<PrivatePool>& pool, DeviceAllocator& shared) {
  auto* b = static_cast<std::byte*>(p);
  std::shared_ptr<std::byte> block = pool ? std::shared_ptr<std::byte>(b, [pool](std::byte* q) { pool->cache().deallocate(q); })
                                          : std::shared_ptr<std::byte>(b, [&shared](std::byte* q) { free_block(shared, q); });
  if (poison_new_blocks().load(std::memory_order_relaxed))
    CTMLLM_CUDA_CHECK(cudaMemsetAsync(block.get(), 0xFF, size_class(bytes), stream));
  return block;
}
}  // namespace detail

// A block of at least `bytes` on the current device for the current stream, returned to the cache
// (not to the device) when the last reference goes.
// During a graph capture the block comes from the graph's PrivatePool, which it keeps alive.
inline std::shared_ptr<std::byte> allocate(size_t bytes) {
  const cudaStream_t stream = current_stream();
  const std::shared_ptr<PrivatePool> pool = detail::active_pool();
  DeviceAllocator& shared = allocator();
  void* p = pool ? pool->cache().allocate(bytes, stream) : shared.allocate(bytes, stream);
  return detail::hand_out(p, bytes, stream, pool, shared);
}

// As allocate, but an empty pointer when the device cannot spare the bytes even with the cache's
// free blocks handed back: for optional workspaces that have a fallback (cuDNN's), so that a
// request that cannot fit does not empty the cache on every call. The cache is released only when
// that makes room (device free memory plus cached bytes).
inline std::shared_ptr<std::byte> try_allocate(size_t bytes) {
  const cudaStream_t stream = current_stream();
  const std::shared_ptr<PrivatePool> pool = detail::active_pool();
  DeviceAllocator& shared = allocator();
  void* p = pool ? pool->cache().try_allocate(bytes, stream) : shared.try_allocate(bytes, stream);
  if (!p && !pool) {
    size_t free_bytes = 0, total_bytes = 0;
    CTMLLM_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (size_class(bytes) > free_bytes + shared.cached_bytes()) return nullptr;
    // Still null when the free memory is split between blocks too small for it. A failing cudaFree
    // or cudaMalloc (an earlier kernel's fault) throws: it is no reason to take the fallback.
    p = shared.try_allocate(bytes, stream, OnOutOfMemory::release_cached_and_retry);
  }
  return p ? detail::hand_out(p, bytes, stream, pool, shared) : nullptr;
}

}  // namespace ctmllm::cuda
