#pragma once
// CPU kernel for counter-based dropout: element i (row-major) is kept iff
// Rng(seed).uniform_at(offset + i) >= p, and kept values are scaled by 1 / (1 - p). The mask is a
// pure function of (seed, offset, i): it never depends on the thread count and is never stored, so
// backward (the same kernel applied to dy) regenerates it.
#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops::impl {

// out = mask(seed, offset) * in / (1 - p); in and out contiguous, same shape.
template <class T>
void dropout_apply(const Tensor<T, Cpu>& in, const Tensor<T, Cpu>& out, double p, uint64_t seed, uint64_t offset) {
  using A = acc_t<T>;
  const Rng rng(seed);
  const A scale = A(1.0 / (1.0 - p));
  const T* src = in.data();
  T* dst = out.data();
  parallel_for(0, in.numel(), 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      dst[i] = rng.uniform_at(offset + uint64_t(i)) >= p ? cast<T>(A(src[i]) * scale) : cast<T>(0);
  });
}

}  // namespace ctmllm::ops::impl
