#pragma once
// dropout(x, p, seed, offset): seeded, counter-based inverted dropout. Element i of x (row-major
// over x's logical shape, whatever its strides) is kept iff Rng(seed).uniform_at(offset + i) >= p,
// and kept values are scaled by 1 / (1 - p). The same (p, seed, offset) give the same mask on every
// run and thread count; backward regenerates it instead of storing it. p = 0 returns x itself.
#include <cstdint>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/dropout.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/dropout.cuh"
#endif

namespace ctmllm::ops {

inline void check_dropout_p(double p, const char* op) {
  CTMLLM_CHECK(p >= 0 && p < 1, op, ": p must be in [0, 1), got ", p);
}

template <class T, class D>
Tensor<T, D> dropout(const Tensor<T, D>& x, double p, uint64_t seed, uint64_t offset) {
  CTMLLM_REQUIRE_KERNELS(D, "dropout");
  check_defined(x, "dropout", "x");
  check_dropout_p(p, "dropout");
  if (p == 0) return x;
  Tensor<T, D> y = Tensor<T, D>::empty(x.shape());
  impl::dropout_apply(x.contiguous(), y, p, seed, offset);
  return y;
}

// dx = dy * mask / (1 - p) with the forward's (p, seed, offset): dropout is linear, so its backward
// is the same masked scaling applied to dy.
template <class T, class D>
Tensor<T, D> dropout_backward(const Tensor<T, D>& dy, double p, uint64_t seed, uint64_t offset) {
  CTMLLM_REQUIRE_KERNELS(D, "dropout_backward");
  check_defined(dy, "dropout_backward", "dy");
  check_dropout_p(p, "dropout_backward");
  if (p == 0) return dy;
  Tensor<T, D> dx = Tensor<T, D>::empty(dy.shape());
  impl::dropout_apply(dy.contiguous(), dx, p, seed, offset);
  return dx;
}

}  // namespace ctmllm::ops
