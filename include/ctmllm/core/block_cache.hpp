#pragma once
// The caching allocators' bookkeeping, apart from any memory so that it is testable on any machine
// (used over cudaMalloc per device, core/cuda/allocator.hpp, and over aligned_alloc for large host
// blocks, core/host_allocator.hpp): requests round up to a size class, a freed block goes to its
// class's free list and is handed out again for the next request of that class, and cached blocks go
// back to the backend on release_cached(), when the cached bytes would pass max_cached (the block
// freed then goes back at once), or when the backend is out of memory, before one retry, unless the
// cache was made with OnOutOfMemory::fail. Thread-safe.
//
// Free lists are per stream: a block is handed out again only to a request made for the stream it
// was allocated for, whose work is queued after the block's last uses (the device allocator orders
// that stream after another one when a block is freed from there: allocator.hpp). Host memory has
// one stream, the null key.
//
// Size classes: 4 per power of two (512 B at least), so a block wastes under 25% of its size and
// tensors whose sizes differ a little share a class. Blocks are never split or merged: simple, and
// enough for a training or inference loop, whose tensor sizes repeat from step to step.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ctmllm/core/error.hpp"

namespace ctmllm {

inline constexpr size_t kMinBlockBytes = 512;

// The bytes a request of `bytes` actually gets: the next of p, 1.25p, 1.5p, 1.75p, 2p above it
// (p a power of two), at least kMinBlockBytes.
inline size_t size_class(size_t bytes) {
  if (bytes <= kMinBlockBytes) return kMinBlockBytes;
  const size_t p = std::bit_floor(bytes), step = p / 4;
  return (bytes + step - 1) / step * step;
}

struct AllocatorStats {
  size_t in_use = 0;       // bytes (size classes) of live blocks
  size_t reserved = 0;     // bytes held from the backend: live plus cached
  size_t peak_in_use = 0;  // highest in_use since creation or reset_peak()
  uint64_t device_allocations = 0;  // calls into the backend that returned memory (device or host)
  uint64_t cache_hits = 0;          // requests served from a free list
};

// A stream as the cache sees it: an opaque key (the cudaStream_t on the device, null on the host).
using StreamKey = const void*;

// What allocate does when the backend is out of memory: hand the cached blocks back and retry once,
// or throw at once (a graph's private pool: its cached blocks are still written by the graph).
enum class OnOutOfMemory { release_cached_and_retry, fail };

// Backend: `void* malloc(size_t)` (nullptr when out of memory; other failures throw),
// `void free(void*)`, and `static constexpr const char* memory` naming it in errors ("device").
template <class Backend>
class BlockCache {
 public:
  explicit BlockCache(Backend backend = {}, OnOutOfMemory on_oom = OnOutOfMemory::release_cached_and_retry)
      : backend_(std::move(backend)), on_oom_(on_oom) {}
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  void* allocate(size_t bytes, StreamKey stream = nullptr) { return allocate(bytes, stream, on_oom_, true); }

  // As allocate, but nullptr when the backend is out of memory (its other failures still throw): for
  // an optional buffer with a fallback (a cuDNN workspace). By default the cached blocks are left as
  // they are, so that such a request does not empty the cache on every call only to fail anyway; the
  // caller that found a release would make room passes release_cached_and_retry.
  void* try_allocate(size_t bytes, StreamKey stream = nullptr, OnOutOfMemory on_oom = OnOutOfMemory::fail) {
    return allocate(bytes, stream, on_oom, false);
  }

  // Bytes held in free blocks (reserved − in use).
  size_t cached_bytes() const {
    std::lock_guard lock(mutex_);
    return stats_.reserved - stats_.in_use;
  }

  // The stream a live block was allocated for.
  StreamKey stream_of(void* p) const {
    std::lock_guard lock(mutex_);
    return find_live(p)->second.stream;
  }

  void deallocate(void* p) {
    std::lock_guard lock(mutex_);
    const auto it = find_live(p);
    const Live block = it->second;
    stats_.in_use -= block.size_class;
    live_.erase(it);
    if (stats_.reserved - stats_.in_use > max_cached_) {  // caching it would pass the limit: back at once
      stats_.reserved -= block.size_class;
      backend_.free(p);
      return;
    }
    free_[{block.stream, block.size_class}].push_back(p);
  }

  // The most bytes of free blocks kept for reuse (unlimited unless set); cached blocks beyond a new
  // limit go back to the backend now.
  void set_max_cached(size_t bytes) {
    std::lock_guard lock(mutex_);
    max_cached_ = bytes;
    release_locked(bytes);
  }
  size_t max_cached() const {
    std::lock_guard lock(mutex_);
    return max_cached_;
  }

  // Makes every block of stream `from`, cached or live, a block of stream `to` (once `from` has no
  // work left: it is going away).
  void retire_stream(StreamKey from, StreamKey to) {
    std::lock_guard lock(mutex_);
    if (from == to) return;
    for (auto it = free_.lower_bound({from, 0}); it != free_.end() && it->first.first == from;) {
      std::vector<void*>& into = free_[{to, it->first.second}];
      into.insert(into.end(), it->second.begin(), it->second.end());
      it = free_.erase(it);
    }
    for (auto& [p, block] : live_)
      if (block.stream == from) block.stream = to;
  }

  // Returns every cached (free) block to the backend; live blocks stay.
  void release_cached() {
    std::lock_guard lock(mutex_);
    release_locked(0);
  }

  AllocatorStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak_in_use = stats_.in_use;
  }

 private:
  struct Live {
    size_t size_class;
    StreamKey stream;
  };

  // A block from the stream's free list, else from the backend; out of memory, on_oom says whether
  // to release the cached blocks and retry, and throw_on_oom whether to throw or return nullptr.
  void* allocate(size_t bytes, StreamKey stream, OnOutOfMemory on_oom, bool throw_on_oom) {
    const size_t cls = size_class(bytes);
    std::lock_guard lock(mutex_);
    void* p = nullptr;
    auto bin = free_.find({stream, cls});
    if (bin != free_.end() && !bin->second.empty()) {
      p = bin->second.back();  // the most recently freed block: likeliest to be in L2
      bin->second.pop_back();
      ++stats_.cache_hits;
    } else {
      p = backend_.malloc(cls);
      if (!p && on_oom == OnOutOfMemory::release_cached_and_retry) {  // hand the cached blocks back, once more
        release_locked(0);
        p = backend_.malloc(cls);
      }
      if (!p && !throw_on_oom) return nullptr;
      CTMLLM_CHECK(p, "out of ", Backend::memory, " memory allocating ", bytes, " bytes (", stats_.in_use,
                   " bytes in use, ", stats_.reserved, " reserved)");
      stats_.reserved += cls;
      ++stats_.device_allocations;
    }
    live_.emplace(p, Live{cls, stream});
    stats_.in_use += cls;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
    return p;
  }

  auto find_live(void* p) const {
    const auto it = live_.find(p);
    CTMLLM_CHECK(it != live_.end(), "BlockCache: ", p, " was not allocated here");
    return it;
  }

  // Frees cached blocks until at most `keep` cached bytes remain. A block leaves its list only once
  // the backend has freed it: a free that throws (a broken context) leaves the lists true, so that a
  // later release never frees a block twice.
  void release_locked(size_t keep) {
    for (auto& [key, blocks] : free_) {
      while (!blocks.empty() && stats_.reserved - stats_.in_use > keep) {
        backend_.free(blocks.back());
        blocks.pop_back();
        stats_.reserved -= key.second;
      }
    }
  }

  Backend backend_;
  OnOutOfMemory on_oom_;
  size_t max_cached_ = std::numeric_limits<size_t>::max();
  mutable std::mutex mutex_;
  std::map<std::pair<StreamKey, size_t>, std::vector<void*>> free_;  // (stream, size class) -> free blocks
  std::unordered_map<void*, Live> live_;
  AllocatorStats stats_;
};

}  // namespace ctmllm
