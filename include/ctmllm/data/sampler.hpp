#pragma once
// Sequential random draws for the synthetic world. Each purpose (anatomy, each finding kind, noise,
// report phrasing) gets its own counter-based stream derived from the case seed, so turning one
// finding on or off never changes the anatomy or the other findings of the same seed.
#include <algorithm>
#include <cstdint>

#include "ctmllm/core/rng.hpp"

namespace ctmllm::data {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The seed of sub-stream `tag` of `seed`.
inline uint64_t derive_seed(uint64_t seed, uint64_t tag) { return splitmix64(seed ^ splitmix64(tag + 1)); }

class Sampler {
 public:
  explicit Sampler(uint64_t seed) : rng_(seed) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * next(); }
  bool chance(double p) { return next() < p; }
  int index(int n) { return std::min(n - 1, int(next() * n)); }  // 0..n-1

 private:
  double next() { return rng_.uniform_at(rng_.take(1)); }
  Rng rng_;
};

}  // namespace ctmllm::data
