#pragma once
// CPU kernels for softmax and log_softmax along one dimension, forward and backward. Tensors are
// contiguous and viewed as [outer, n, inner] with the softmax dimension (n) in the middle.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cpu/row_exp.hpp"

namespace ctmllm::ops::impl {

// Slices along a non-last dimension are strided by `inner`; up to this many neighbouring slices are
// processed together so that every inner loop runs over consecutive memory.
inline constexpr int64_t kSoftmaxLanes = 64;

// Calls f(base, lanes) for each group of neighbouring slices: element k of lane j lies at
// base + k * inner + j. With inner = 1 each group is a single contiguous row (lanes = 1).
template <class F>
void for_each_softmax_group(int64_t outer, int64_t n, int64_t inner, F&& f) {
  const int64_t tiles = (inner + kSoftmaxLanes - 1) / kSoftmaxLanes;
  const int64_t group = std::max<int64_t>(1, n * std::min(inner, kSoftmaxLanes));
  parallel_for(0, outer * tiles, std::max<int64_t>(1, 16384 / group), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t o = t / tiles, j0 = (t % tiles) * kSoftmaxLanes;
      f(o * n * inner + j0, std::min(kSoftmaxLanes, inner - j0));
    }
  });
}

// softmax: y = exp(x - max) / Σ exp(x - max);  log_softmax: y = x - max - log Σ exp(x - max).
template <class T>
void softmax_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& y, int64_t outer, int64_t n, int64_t inner, bool log) {
  using A = acc_t<T>;
  const T* px = x.data();
  T* py = y.data();
  for_each_softmax_group(outer, n, inner, [&](int64_t base, int64_t lanes) {
    const T* xs = px + base;
    T* ys = py + base;
    if (inner == 1) {
      A m = -std::numeric_limits<A>::infinity();
#pragma omp simd reduction(max : m)
      for (int64_t k = 0; k < n; ++k) m = std::max(m, A(xs[k]));
      if (log) {
        const A lse = m + std::log(sum_exp(xs, n, m));
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) ys[k] = cast<T>(A(xs[k]) - lse);
      } else {
        const A inv = A(1) / exp_shifted(xs, ys, n, m);
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) ys[k] = cast<T>(A(ys[k]) * inv);
      }
      return;
    }
    A m[kSoftmaxLanes], s[kSoftmaxLanes];
    std::fill_n(m, lanes, -std::numeric_limits<A>::infinity());
    std::fill_n(s, lanes, A(0));
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < lanes; ++j) m[j] = std::max(m[j], A(xs[k * inner + j]));
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < lanes; ++j) {
        const A e = std::exp(A(xs[k * inner + j]) - m[j]);
        if (!log) ys[k * inner + j] = cast<T>(e);
        s[j] += e;
      }
    if (log) {
      for (int64_t j = 0; j < lanes; ++j) m[j] += std::log(s[j]);
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < lanes; ++j) ys[k * inner + j] = cast<T>(A(xs[k * inner + j]) - m[j]);
    } else {
      for (int64_t j = 0; j < lanes; ++j) s[j] = A(1) / s[j];
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < lanes; ++j) ys[k * inner + j] = cast<T>(A(ys[k * inner + j]) * s[j]);
    }
  });
}

// From the forward output y:  softmax: dx = y * (dy - Σ dy·y);  log_softmax: dx = dy - exp(y) * Σ dy.
template <class T>
void softmax_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& y, const Tensor<T, Cpu>& dx, int64_t outer,
                      int64_t n, int64_t inner, bool log) {
  using A = acc_t<T>;
  const T* pg = dy.data();
  const T* py = y.data();
  T* pdx = dx.data();
  for_each_softmax_group(outer, n, inner, [&](int64_t base, int64_t lanes) {
    const T* gs = pg + base;
    const T* ys = py + base;
    T* dxs = pdx + base;
    if (inner == 1) {
      A s = 0;
      if (log) {
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < n; ++k) s += A(gs[k]);
        for (int64_t k = 0; k < n; ++k) dxs[k] = cast<T>(A(gs[k]) - std::exp(A(ys[k])) * s);
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < n; ++k) s += A(gs[k]) * A(ys[k]);
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) dxs[k] = cast<T>(A(ys[k]) * (A(gs[k]) - s));
      }
      return;
    }
    A s[kSoftmaxLanes];
    std::fill_n(s, lanes, A(0));
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < lanes; ++j) {
        const int64_t i = k * inner + j;
        s[j] += log ? A(gs[i]) : A(gs[i]) * A(ys[i]);
      }
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < lanes; ++j) {
        const int64_t i = k * inner + j;
        dxs[i] = cast<T>(log ? A(gs[i]) - std::exp(A(ys[i])) * s[j] : A(ys[i]) * (A(gs[i]) - s[j]));
      }
  });
}

}  // namespace ctmllm::ops::impl
