#pragma once
// CPU kernels for layer_norm and rms_norm over the last dimension, laid out as llm.c's
// layernorm_forward / layernorm_backward: x, y, dy, dx are [N, C] contiguous (any leading shape
// flattened into N rows), the saved per-row statistics (mean, rstd) are [N] in the accumulation type,
// and weight, bias, dweight, dbias are [C]. Rows are independent and run in parallel; the parameter
// gradients, which sum over rows, are reduced deterministically (see RowBlockSums).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops::impl {

// Parameter gradients sum over rows. Rows are grouped into a number of blocks that depends only on N
// (at least 16 rows each, at most 64 blocks), each block accumulates its own partial sums, and the
// partials are added in block order: the result is the same for every thread count.
template <class A>
struct RowBlockSums {
  int64_t blocks, width;
  std::vector<A> partial;  // [blocks, width]

  // Calls row(r, partial_of_its_block) for every row r < rows, blocks in parallel.
  template <class F>
  RowBlockSums(int64_t rows, int64_t width_, F&& row)
      : blocks(std::min<int64_t>(64, (rows + 15) / 16)), width(width_), partial(size_t(blocks * width), A(0)) {
    parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b)
        for (int64_t r = rows * b / blocks; r < rows * (b + 1) / blocks; ++r) row(r, partial.data() + b * width);
    });
  }
  // out[c] = Σ_b partial[b][first + c] for c < n, in block order.
  template <class T>
  void sum_into(int64_t first, int64_t n, T* out) const {
    parallel_for(0, n, 256, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        A s = 0;
        for (int64_t b = 0; b < blocks; ++b) s += partial[size_t(b * width + first + c)];
        out[c] = cast<T>(s);
      }
    });
  }
};

// weight (+ offset) as an accumulation-type row, `fill` where there is no weight: converts 16-bit
// weights once per call instead of once per row.
template <class T, class A = acc_t<T>>
std::vector<A> param_row(const Tensor<T, Cpu>& p, int64_t C, A offset, A fill) {
  std::vector<A> out(size_t(C), fill);
  if (p.defined())
    for (int64_t c = 0; c < C; ++c) out[size_t(c)] = A(p.data()[c]) + offset;
  return out;
}

// y = (x - mean) * rstd * weight + bias, with rstd = 1 / sqrt(var + eps) (biased variance, two
// passes over the row while it is in cache). weight and bias may be undefined (1 and 0).
template <class T>
void layer_norm_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& weight, const Tensor<T, Cpu>& bias,
                        const Tensor<T, Cpu>& y, const Tensor<acc_t<T>, Cpu>& mean, const Tensor<acc_t<T>, Cpu>& rstd,
                        double eps) {
  using A = acc_t<T>;
  const int64_t C = x.shape().back(), N = x.numel() / C;
  const std::vector<A> w = param_row(weight, C, A(0), A(1)), b = param_row(bias, C, A(0), A(0));
  const T* px = x.data();
  T* py = y.data();
  A* pm = mean.data();
  A* pr = rstd.data();
  parallel_for(0, N, std::max<int64_t>(1, 16384 / C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = px + r * C;
      T* yr = py + r * C;
      A s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += A(xr[c]);
      const A m = s / A(C);
      A v = 0;
#pragma omp simd reduction(+ : v)
      for (int64_t c = 0; c < C; ++c) {
        const A d = A(xr[c]) - m;
        v += d * d;
      }
      const A rs = A(1) / std::sqrt(v / A(C) + A(eps));
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = cast<T>((A(xr[c]) - m) * rs * w[c] + b[c]);
      pm[r] = m;
      pr[r] = rs;
    }
  });
}

// With n = (x - mean) * rstd and g = dy * weight:
//   dx = (g - mean(g) - n * mean(g * n)) * rstd,  dweight = Σ_rows dy * n,  dbias = Σ_rows dy.
// dweight / dbias are written only where defined.
template <class T>
void layer_norm_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& x, const Tensor<acc_t<T>, Cpu>& mean,
                         const Tensor<acc_t<T>, Cpu>& rstd, const Tensor<T, Cpu>& weight, const Tensor<T, Cpu>& dx,
                         const Tensor<T, Cpu>& dweight, const Tensor<T, Cpu>& dbias) {
  using A = acc_t<T>;
  const int64_t C = x.shape().back(), N = x.numel() / C;
  const std::vector<A> w = param_row(weight, C, A(0), A(1));
  const T* pdy = dy.data();
  const T* px = x.data();
  const A* pm = mean.data();
  const A* pr = rstd.data();
  T* pdx = dx.data();
  // per block: [dweight partial (C) | dbias partial (C)]
  const RowBlockSums<A> sums(N, 2 * C, [&](int64_t r, A* part) {
    const T* xr = px + r * C;
    const T* gr = pdy + r * C;
    T* dxr = pdx + r * C;
    const A m = pm[r], rs = pr[r];
    A g_mean = 0, gn_mean = 0;
#pragma omp simd reduction(+ : g_mean, gn_mean)
    for (int64_t c = 0; c < C; ++c) {
      const A g = A(gr[c]) * w[c];
      g_mean += g;
      gn_mean += g * (A(xr[c]) - m) * rs;
    }
    g_mean /= A(C);
    gn_mean /= A(C);
    A* pdw = part;
    A* pdb = part + C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const A n = (A(xr[c]) - m) * rs, d = A(gr[c]);
      dxr[c] = cast<T>((d * w[c] - g_mean - n * gn_mean) * rs);
      pdw[c] += d * n;
      pdb[c] += d;
    }
  });
  if (dweight.defined()) sums.sum_into(0, C, dweight.data());
  if (dbias.defined()) sums.sum_into(C, C, dbias.data());
}

// sum = T(x + residual) (rounded as add rounds it), then y = rms_norm(sum), row by row; without a
// residual (undefined), y = rms_norm(x) and sum is not written. x, residual, sum, y contiguous.
template <class T>
void add_rms_norm_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& residual, const Tensor<T, Cpu>& weight,
                          double offset, const Tensor<T, Cpu>& sum, const Tensor<T, Cpu>& y,
                          const Tensor<acc_t<T>, Cpu>& rstd, double eps) {
  using A = acc_t<T>;
  const int64_t C = x.shape().back(), N = x.numel() / C;
  const std::vector<A> w = param_row(weight, C, A(offset), A(1));
  T* py = y.data();
  A* pr = rstd.data();
  parallel_for(0, N, std::max<int64_t>(1, 16384 / C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x.data() + r * C;
      if (residual.defined()) {
        const T* rr = residual.data() + r * C;
        T* sr = sum.data() + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) sr[c] = cast<T>(A(xr[c]) + A(rr[c]));
        xr = sr;
      }
      T* yr = py + r * C;
      A s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < C; ++c) s += A(xr[c]) * A(xr[c]);
      const A rs = A(1) / std::sqrt(s / A(C) + A(eps));
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) yr[c] = cast<T>(A(xr[c]) * rs * w[c]);
      pr[r] = rs;
    }
  });
}

// y = x * rstd * (weight + offset), rstd = 1 / sqrt(mean(x²) + eps); offset 0 is Llama's RMSNorm,
// offset 1 Gemma's (1 + weight).
template <class T>
void rms_norm_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& weight, double offset, const Tensor<T, Cpu>& y,
                      const Tensor<acc_t<T>, Cpu>& rstd, double eps) {
  add_rms_norm_forward(x, Tensor<T, Cpu>(), weight, offset, Tensor<T, Cpu>(), y, rstd, eps);
}

// With n = x * rstd and g = dy * (weight + offset):
//   dx = (g - n * mean(g * n)) * rstd,  dweight = Σ_rows dy * n.
template <class T>
void rms_norm_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& x, const Tensor<acc_t<T>, Cpu>& rstd,
                       const Tensor<T, Cpu>& weight, double offset, const Tensor<T, Cpu>& dx,
                       const Tensor<T, Cpu>& dweight) {
  using A = acc_t<T>;
  const int64_t C = x.shape().back(), N = x.numel() / C;
  const std::vector<A> w = param_row(weight, C, A(offset), A(1));
  const T* pdy = dy.data();
  const T* px = x.data();
  const A* pr = rstd.data();
  T* pdx = dx.data();
  const RowBlockSums<A> sums(N, C, [&](int64_t r, A* pdw) {
    const T* xr = px + r * C;
    const T* gr = pdy + r * C;
    T* dxr = pdx + r * C;
    const A rs = pr[r];
    A gn_mean = 0;
#pragma omp simd reduction(+ : gn_mean)
    for (int64_t c = 0; c < C; ++c) gn_mean += A(gr[c]) * w[c] * A(xr[c]) * rs;
    gn_mean /= A(C);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const A n = A(xr[c]) * rs, d = A(gr[c]);
      dxr[c] = cast<T>((d * w[c] - n * gn_mean) * rs);
      pdw[c] += d * n;
    }
  });
  sums.sum_into(0, C, dweight.data());
}

}  // namespace ctmllm::ops::impl
