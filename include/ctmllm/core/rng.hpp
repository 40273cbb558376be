#pragma once
// Seeded, counter-based random numbers (Philox-4x32-10). Element i of a draw depends only on
// (seed, offset + i), never on the thread that computes it, so results are identical across runs
// and thread counts, and a dropout mask can be regenerated exactly (activation recomputation).
#include <cmath>
#include <cstdint>
#include <numbers>

#include "ctmllm/core/host_device.hpp"
#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm {

// One Philox block's four 32-bit outputs.
struct PhiloxBlock {
  uint32_t v[4];
  CTMLLM_HOST_DEVICE uint32_t operator[](size_t i) const { return v[i]; }
};

// The Philox-4x32 block function: 10 rounds over a 128-bit counter with a 64-bit key. Host and
// device code share it (and unit_float / unit_double), so the GPU's dropout mask is the CPU's.
CTMLLM_HOST_DEVICE inline PhiloxBlock philox4x32(uint64_t counter, uint64_t key) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c0, p1 = uint64_t(0xCD9E8D57u) * c2;
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = uint32_t(p1);
    c3 = uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 (float) or 53 (double) random bits.
CTMLLM_HOST_DEVICE inline float unit_float(uint32_t a) { return float(a >> 8) * (1.0f / 16777216.0f); }
CTMLLM_HOST_DEVICE inline double unit_double(uint32_t a, uint32_t b) {
  return double((uint64_t(a) << 21) | (uint64_t(b) >> 11)) * (1.0 / 9007199254740992.0);
}

// A stream: each draw of n values consumes counters [offset, offset + n) and advances offset.
class Rng {
 public:
  CTMLLM_HOST_DEVICE explicit Rng(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // save with seed() to resume a stream exactly
  void set_offset(uint64_t o) { offset_ = o; }

  // The value for counter c alone (no state change); also on the device.
  CTMLLM_HOST_DEVICE double uniform_at(uint64_t c) const {
    const auto r = philox4x32(c, seed_);
    return unit_double(r[0], r[1]);
  }
  double normal_at(uint64_t c) const {
    const auto r = philox4x32(c, seed_);
    const double u1 = 1.0 - unit_double(r[0], r[1]), u2 = unit_double(r[2], r[3]);  // u1 in (0, 1]
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  // Fills a CPU tensor (any strides) with U[lo, hi) or N(mean, std); returns it for chaining.
  template <class T>
  const Tensor<T, Cpu>& uniform(const Tensor<T, Cpu>& t, double lo = 0.0, double hi = 1.0) {
    fill(t, [&](uint64_t c) { return lo + (hi - lo) * uniform_at(c); });
    return t;
  }
  template <class T>
  const Tensor<T, Cpu>& normal(const Tensor<T, Cpu>& t, double mean = 0.0, double std = 1.0) {
    fill(t, [&](uint64_t c) { return mean + std * normal_at(c); });
    return t;
  }
  // A device tensor: the same values as a CPU tensor of its shape would get (drawn on the host in
  // the same order), copied over.
  template <class T, class D>
    requires(!std::is_same_v<D, Cpu>)
  const Tensor<T, D>& uniform(const Tensor<T, D>& t, double lo = 0.0, double hi = 1.0) {
    t.copy_from(uniform<T>(t.shape(), lo, hi).template to_device<D>());
    return t;
  }
  template <class T, class D>
    requires(!std::is_same_v<D, Cpu>)
  const Tensor<T, D>& normal(const Tensor<T, D>& t, double mean = 0.0, double std = 1.0) {
    t.copy_from(normal<T>(t.shape(), mean, std).template to_device<D>());
    return t;
  }
  template <class T>
  Tensor<T, Cpu> uniform(const Shape& s, double lo = 0.0, double hi = 1.0) {
    Tensor<T, Cpu> t = Tensor<T, Cpu>::empty(s);
    uniform(t, lo, hi);
    return t;
  }
  template <class T>
  Tensor<T, Cpu> normal(const Shape& s, double mean = 0.0, double std = 1.0) {
    Tensor<T, Cpu> t = Tensor<T, Cpu>::empty(s);
    normal(t, mean, std);
    return t;
  }

  // Reserves n counters and returns the first: for ops (dropout) that draw by index themselves.
  uint64_t take(uint64_t n) {
    const uint64_t first = offset_;
    offset_ += n;
    return first;
  }

 private:
  template <class T, class F>
  void fill(const Tensor<T, Cpu>& t, F&& value_at) {
    const uint64_t base = take(uint64_t(t.numel()));
    const Tensor<T, Cpu> c = t.contiguous();
    T* p = c.data();
    parallel_for(0, c.numel(), 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) p[i] = cast<T>(value_at(base + uint64_t(i)));
    });
    if (c.data() != t.data()) t.copy_from(c);  // t was strided: scatter back
  }

  uint64_t seed_;
  uint64_t offset_;
};

}  // namespace ctmllm
