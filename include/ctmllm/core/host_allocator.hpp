#pragma once
// Large host blocks (Cpu storage of kHostCachedMinBytes and more) come from a BlockCache over
// aligned_alloc. Why: glibc gives large freed blocks back to the kernel (munmap, or trimming the
// heap's top), so a loop that frees its activations and allocates them again in the next step
// page-faults every page back in: 9% of a CPU training step (bench_train's mid Llama, 450 → 411 ms,
// the same as with glibc's trimming turned off). Smaller blocks stay with malloc, whose bins keep
// them. The cached bytes are capped (kHostCacheDefaultLimit; host_allocator().set_max_cached changes
// it, 0 caches nothing; release_cached() hands everything back); blocks freed beyond the cap go back
// at once. Under AddressSanitizer the cap starts at 0, so that it still sees every free.
#include <cstddef>
#include <cstdlib>

#include "ctmllm/core/block_cache.hpp"

namespace ctmllm {

struct HostMallocBackend {
  static constexpr const char* memory = "host";
  static constexpr size_t alignment = 64;  // Cpu::alignment
  // bytes is a size class: a multiple of 512, as aligned_alloc requires of a multiple of the alignment.
  void* malloc(size_t bytes) { return std::aligned_alloc(alignment, bytes); }
  void free(void* p) { std::free(p); }
};

using HostAllocator = BlockCache<HostMallocBackend>;

inline constexpr size_t kHostCachedMinBytes = size_t(1) << 20;
inline constexpr size_t kHostCacheDefaultLimit = size_t(1) << 30;

namespace detail {
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif
}  // namespace detail

// The process's cache of large host blocks. Never destroyed: a tensor in static storage may be freed
// after every other static object.
inline HostAllocator& host_allocator() {
  static HostAllocator* const cache = [] {
    auto* c = new HostAllocator();
    c->set_max_cached(detail::kAddressSanitizer ? 0 : kHostCacheDefaultLimit);
    return c;
  }();
  return *cache;
}

}  // namespace ctmllm
