// BoundedCache: one build per key, the latest `capacity` keys kept (the oldest evicted first, then
// built again on its next use), evicted values alive with their holders, one build for a key asked
// for by several threads at once.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "ctmllm/core/bounded_cache.hpp"
#include "support/catch.hpp"

using namespace ctmllm;

TEST_CASE("BoundedCache builds a value once per key and keeps the latest", "[core][cache]") {
  BoundedCache<int, std::string> cache(3);
  int builds = 0;
  const auto build = [&] { return "build " + std::to_string(++builds); };
  const auto first = cache.get(10, build);
  CHECK(*first == "build 1");
  CHECK(cache.get(10, build) == first);
  CHECK(builds == 1);
  cache.get(20, build);
  cache.get(30, build);
  CHECK(cache.size() == 3);
  CHECK(builds == 3);
  // Full: a new key drops the oldest (10), which is then built again; the value handed out before
  // lives on with its holder.
  cache.get(40, build);
  CHECK(cache.size() == 3);
  CHECK(*cache.get(20, build) == "build 2");
  CHECK(builds == 4);
  CHECK(*cache.get(10, build) == "build 5");
  CHECK(*first == "build 1");
  CHECK(cache.size() == 3);
  // 10 evicted 20 (built before 30 and 40): 20 is built again.
  CHECK(*cache.get(20, build) == "build 6");
  CHECK(cache.builds() == 6);
  CHECK_THROWS_AS((BoundedCache<int, int>(0)), Error);
}

TEST_CASE("BoundedCache builds a key wanted by several threads once", "[core][cache]") {
  BoundedCache<int, int> cache(8);
  std::atomic<int> builds{0};
  std::vector<std::thread> threads;
  std::vector<int> seen(8, -1);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] { seen[size_t(t)] = *cache.get(7, [&] { return 100 + builds++; }); });
  for (auto& th : threads) th.join();
  CHECK(builds == 1);
  CHECK(seen == std::vector<int>(8, 100));
}
