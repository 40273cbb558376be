// The caching allocators' bookkeeping (core/block_cache.hpp) over a fake backend: size classes, reuse
// of freed blocks, release on demand, the cached-bytes limit, the out-of-memory retry, try_allocate and the
// statistics. The allocator over cudaMalloc is tested in tests/cuda, the host one in test_tensor.cpp.
#include <cstdlib>
#include <map>

#include "ctmllm/core/block_cache.hpp"
#include "support/catch.hpp"

using namespace ctmllm;

namespace {
// Host memory standing in for the device, with a byte limit to simulate running out.
struct FakeBackend {
  static constexpr const char* memory = "fake";
  size_t limit = size_t(1) << 40;
  size_t held = 0;
  std::map<void*, size_t>* live = nullptr;  // block -> bytes
  int* frees_to_fail = nullptr;              // while positive, frees throw (as cudaFree on a broken context)
  void* malloc(size_t bytes) {
    if (held + bytes > limit) return nullptr;
    held += bytes;
    void* p = std::malloc(bytes);
    live->emplace(p, bytes);
    return p;
  }
  void free(void* p) {
    if (frees_to_fail && *frees_to_fail > 0) {
      --*frees_to_fail;
      throw Error("fake cudaFree failed");
    }
    held -= live->at(p);  // at(): a block freed twice throws std::out_of_range
    live->erase(p);
    std::free(p);
  }
};
}  // namespace

TEST_CASE("size classes round up by at most a quarter", "[core][allocator]") {
  CHECK(size_class(0) == 512);
  CHECK(size_class(1) == 512);
  CHECK(size_class(512) == 512);
  CHECK(size_class(513) == 640);  // 512 + 128
  CHECK(size_class(1024) == 1024);
  CHECK(size_class(1025) == 1280);
  CHECK(size_class(1700) == 1792);
  CHECK(size_class(size_t(3) << 30) == size_t(3) << 30);
  for (size_t b = 1; b < (size_t(1) << 22); b = b * 3 / 2 + 7) {
    const size_t c = size_class(b);
    CHECK(c >= b);
    CHECK((b <= 512 || c < b + b / 4 + 1));
    CHECK(size_class(c) == c);  // a class is its own class
  }
}

TEST_CASE("freed blocks are reused for the same size class and released on demand", "[core][allocator]") {
  std::map<void*, size_t> live;
  BlockCache<FakeBackend> cache(FakeBackend{.live = &live});
  void* a = cache.allocate(1000);  // class 1024
  void* b = cache.allocate(3000);  // class 3072
  CHECK(cache.stats().in_use == 1024 + 3072);
  CHECK(cache.stats().reserved == 1024 + 3072);
  cache.deallocate(a);
  CHECK(cache.stats().in_use == 3072);
  CHECK(cache.stats().reserved == 1024 + 3072);
  void* c = cache.allocate(900);  // same class as a: the same block, no new device allocation
  CHECK(c == a);
  CHECK(cache.stats().cache_hits == 1);
  CHECK(cache.stats().device_allocations == 2);
  void* d = cache.allocate(2000);  // another class: new memory
  CHECK(cache.stats().device_allocations == 3);
  CHECK(cache.stats().peak_in_use == 1024 + 3072 + 2048);
  cache.deallocate(b);
  cache.deallocate(c);
  cache.release_cached();
  CHECK(live.size() == 1);  // only d is still held from the backend
  CHECK(cache.stats().reserved == 2048);
  CHECK(cache.stats().in_use == 2048);
  cache.reset_peak();
  CHECK(cache.stats().peak_in_use == 2048);
  cache.deallocate(d);
  cache.release_cached();
  CHECK(live.empty());
  CHECK(cache.stats().reserved == 0);
}

TEST_CASE("out of memory releases cached blocks and retries once, then throws", "[core][allocator]") {
  std::map<void*, size_t> live;
  BlockCache<FakeBackend> cache(FakeBackend{.limit = 4096, .live = &live});
  void* a = cache.allocate(3000);  // 3072 of 4096
  cache.deallocate(a);             // cached, still held
  void* b = cache.allocate(2048);  // does not fit beside the cached block: release, retry
  CHECK(cache.stats().reserved == 2048);
  CHECK(live.size() == 1);
  CHECK_THROWS_AS(cache.allocate(4000), Error);  // 4096 more can never fit
  CHECK(cache.stats().in_use == 2048);
  cache.deallocate(b);
  cache.release_cached();
  CHECK(live.empty());
}

TEST_CASE("a cache made to fail out of memory keeps its cached blocks", "[core][allocator]") {
  std::map<void*, size_t> live;
  BlockCache<FakeBackend> pool(FakeBackend{.limit = 4096, .live = &live}, OnOutOfMemory::fail);
  void* a = pool.allocate(3000);  // 3072 of 4096
  pool.deallocate(a);             // cached: a graph's kernels may still use it
  CHECK_THROWS_AS(pool.allocate(2048), Error);
  CHECK(live.size() == 1);
  CHECK(pool.stats().reserved == 3072);
  CHECK(pool.allocate(3000) == a);  // still there for the capture's own requests
  pool.deallocate(a);
  pool.release_cached();
  CHECK(live.empty());
}

TEST_CASE("try_allocate returns null out of memory and keeps the cached blocks", "[core][allocator]") {
  std::map<void*, size_t> live;
  BlockCache<FakeBackend> cache(FakeBackend{.limit = 4096, .live = &live});
  void* a = cache.allocate(3000);  // 3072 of 4096
  cache.deallocate(a);
  CHECK(cache.cached_bytes() == 3072);
  CHECK(cache.try_allocate(2048) == nullptr);  // would fit only after a release, which it leaves to the caller
  CHECK(live.size() == 1);
  CHECK(cache.cached_bytes() == 3072);
  CHECK(cache.stats().in_use == 0);
  CHECK(cache.try_allocate(3000) == a);  // from the free list
  void* b = cache.try_allocate(512);     // from the backend: 3072 + 512 fit
  REQUIRE(b != nullptr);
  CHECK(cache.stats().in_use == 3584);
  CHECK(cache.cached_bytes() == 0);
  cache.deallocate(a);
  cache.deallocate(b);
  cache.release_cached();
  CHECK(live.empty());
}

TEST_CASE("try_allocate can release the cache first and still throws what is not out of memory",
          "[core][allocator]") {
  std::map<void*, size_t> live;
  int frees_to_fail = 0;
  BlockCache<FakeBackend> cache(FakeBackend{.limit = 4096, .live = &live, .frees_to_fail = &frees_to_fail});
  void* a = cache.allocate(3000);
  cache.deallocate(a);
  // Asked to, it hands the cached 3072 bytes back and retries: 2048 fit then.
  void* b = cache.try_allocate(2048, nullptr, OnOutOfMemory::release_cached_and_retry);
  REQUIRE(b != nullptr);
  CHECK(cache.cached_bytes() == 0);
  CHECK(live.size() == 1);
  // Still too big after a release: null, not an Error.
  CHECK(cache.try_allocate(4096, nullptr, OnOutOfMemory::release_cached_and_retry) == nullptr);
  // A backend failure that is not out of memory (a free on a broken context) is no reason for a
  // fallback: it throws.
  void* c = cache.allocate(1024);
  cache.deallocate(c);
  frees_to_fail = 1;
  CHECK_THROWS_WITH(cache.try_allocate(3000, nullptr, OnOutOfMemory::release_cached_and_retry),
                    Catch::Matchers::Contains("fake cudaFree failed"));
  cache.deallocate(b);
  cache.release_cached();
  CHECK(live.empty());
}

TEST_CASE("a freed block goes back to its stream's free list only", "[core][allocator]") {
  std::map<void*, size_t> live;
  BlockCache<FakeBackend> cache(FakeBackend{.live = &live});
  int stream_a = 0, stream_b = 0;  // two streams, as opaque keys
  void* a = cache.allocate(1000, &stream_a);
  CHECK(cache.stream_of(a) == &stream_a);
  cache.deallocate(a);
  void* b = cache.allocate(1000, &stream_b);  // same class, other stream: a's work may still be queued, new memory
  CHECK(b != a);
  CHECK(cache.stats().device_allocations == 2);
  CHECK(cache.stream_of(b) == &stream_b);
  void* a2 = cache.allocate(1000, &stream_a);  // a's own stream gets it back
  CHECK(a2 == a);
  CHECK(cache.stats().cache_hits == 1);
  cache.deallocate(b);
  cache.deallocate(a2);
  CHECK(cache.stats().reserved == 2048);
  cache.release_cached();  // every stream's cached blocks
  CHECK(live.empty());
  CHECK(cache.stats().reserved == 0);
  CHECK_THROWS_AS(cache.stream_of(a), Error);  // no longer live
}

TEST_CASE("a retired stream's blocks, cached and live, become another stream's", "[core][allocator]") {
  std::map<void*, size_t> live;
  BlockCache<FakeBackend> cache(FakeBackend{.live = &live});
  int going = 0, staying = 0;
  void* cached = cache.allocate(1000, &going);
  void* held = cache.allocate(5000, &going);
  void* other = cache.allocate(1000, &staying);
  cache.deallocate(cached);
  cache.retire_stream(&going, &staying);
  CHECK(cache.stream_of(held) == &staying);
  CHECK(cache.stream_of(other) == &staying);
  void* again = cache.allocate(900, &staying);  // the retired stream's cached block, now the other stream's
  CHECK(again == cached);
  CHECK(cache.stats().device_allocations == 3);
  cache.deallocate(held);
  void* held_again = cache.allocate(5000, &staying);  // freed after the retirement: back to its new stream
  CHECK(held_again == held);
  CHECK(cache.stats().cache_hits == 2);
  for (void* p : {again, held_again, other}) cache.deallocate(p);
  cache.release_cached();
  CHECK(live.empty());
}

TEST_CASE("a release stopped by a failing free leaves the rest to the next release, none freed twice",
          "[core][allocator]") {
  std::map<void*, size_t> live;
  int frees_to_fail = 0;
  BlockCache<FakeBackend> cache(FakeBackend{.live = &live, .frees_to_fail = &frees_to_fail});
  void* blocks[3] = {cache.allocate(1000), cache.allocate(1000), cache.allocate(5000)};
  for (void* b : blocks) cache.deallocate(b);
  frees_to_fail = 1;
  CHECK_THROWS_AS(cache.release_cached(), Error);
  CHECK(live.size() == 3);
  CHECK(cache.stats().reserved == 1024 + 1024 + 5120);
  cache.release_cached();  // frees each block once (FakeBackend throws on a second free)
  CHECK(live.empty());
  CHECK(cache.stats().reserved == 0);
}

TEST_CASE("blocks freed beyond the cached-bytes limit go back at once", "[core][allocator]") {
  std::map<void*, size_t> live;
  BlockCache<FakeBackend> cache(FakeBackend{.live = &live});
  cache.set_max_cached(3000);
  CHECK(cache.max_cached() == 3000);
  void* a = cache.allocate(2048);
  void* b = cache.allocate(2048);
  cache.deallocate(a);  // 2048 cached
  CHECK(live.size() == 2);
  cache.deallocate(b);  // 4096 cached would pass 3000: freed now
  CHECK(live.size() == 1);
  CHECK(cache.stats().reserved == 2048);
  CHECK(cache.allocate(2000) == a);  // the cached block
  void* c = cache.allocate(1000);
  cache.deallocate(c);  // 1024 cached
  CHECK(cache.stats().reserved == 2048 + 1024);
  cache.set_max_cached(0);  // a lower limit releases what is above it now; 0 caches nothing
  CHECK(cache.stats().reserved == 2048);
  CHECK(live.size() == 1);
  cache.deallocate(a);
  CHECK(live.empty());
  CHECK(cache.stats().reserved == 0);
}
