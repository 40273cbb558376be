#pragma once
// CPU kernels for reductions: sums over a set of dimensions (sum, mean, sum_to_shape), the sum's
// broadcast back (their backward), and max/argmax along one dimension with its scatter backward.
//
// Every output element is summed in one fixed order (fixed-size blocks of the reduced elements,
// then the block partials in order), so results never depend on the thread count.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops::impl {

// Sum of n elements p[0], p[inc], ...; eight lanes when contiguous so the loop vectorises.
template <class A, class T>
A sum_run(const T* p, int64_t n, int64_t inc) {
  if (inc != 1) {
    A s = 0;
    for (int64_t i = 0; i < n; ++i) s += A(p[i * inc]);
    return s;
  }
  A lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += A(p[i + k]);
  for (; i < n; ++i) lane[0] += A(p[i]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// Element offset of linear index i over the given extents/strides (row-major order).
inline int64_t strided_offset(int64_t i, const Shape& shape, const Shape& strides) {
  int64_t off = 0;
  for (int d = shape.rank() - 1; d >= 0; --d) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

inline constexpr int64_t kReduceBlock = 16384;  // elements per partial sum: fixed, so thread-count independent

// dst = scale · src, where src is a broadcast view (stride 0 along summed dimensions) of dst's shape
// and dst is contiguous: the backward of sum and mean.
template <class T>
void broadcast_scaled(const Tensor<T, Cpu>& src, acc_t<T> scale, const Tensor<T, Cpu>& dst) {
  using A = acc_t<T>;
  const T* s = src.data();
  T* d = dst.data();
  for_each_strided<2>(dst.shape(), {dst.strides(), src.strides()}, [&](auto off, int64_t n, auto inc) {
    for (int64_t i = 0; i < n; ++i) d[off[0] + i] = cast<T>(A(s[off[1] + i * inc[1]]) * scale);
  });
}

// y = scale · Σ x over the dimensions with reduce[d] set. x: any strides; y: contiguous, holding
// the kept dimensions in order (rank may be 0).
template <class T>
void sum(const Tensor<T, Cpu>& x, const std::array<bool, kMaxRank>& reduce, acc_t<T> scale, const Tensor<T, Cpu>& y) {
  using A = acc_t<T>;
  const int r = x.rank();
  Shape kept, kept_st, red, red_st;
  for (int d = 0; d < r; ++d) {
    (reduce[d] ? red : kept).push_back(x.size(d));
    (reduce[d] ? red_st : kept_st).push_back(x.stride(d));
  }
  const T* px = x.data();
  T* py = y.data();
  const int64_t m = kept.numel();
  if (m == 0) return;
  if (red.rank() == 0) {  // nothing to reduce: a scaled copy
    broadcast_scaled(x, scale, y.reshape(x.shape()));
    return;
  }
  if (red.numel() == 0) {  // empty sum: 0, and 0 · (1/0) = NaN for an empty mean, as in PyTorch
    std::fill_n(py, m, cast<T>(A(0) * scale));
    return;
  }

  if (reduce[r - 1]) {
    // Innermost dimension reduced: each output element sums runs of the innermost extent.
    const int64_t run = red.back(), run_inc = red_st.back();
    Shape rows = red, rows_st = red_st;
    rows.erase(rows.rank() - 1);
    rows_st.erase(rows_st.rank() - 1);
    const int64_t nrows = rows.numel();
    const int64_t rows_per_block = std::max<int64_t>(1, kReduceBlock / std::max<int64_t>(run, 1));
    const int64_t nblocks = (nrows + rows_per_block - 1) / rows_per_block;
    std::vector<A> partial(size_t(m * nblocks));
    parallel_for(0, m * nblocks, std::max<int64_t>(1, 4096 / std::max<int64_t>(run * rows_per_block, 1)),
                 [&](int64_t lo, int64_t hi) {
                   for (int64_t t = lo; t < hi; ++t) {
                     const int64_t o = t / nblocks, blk = t % nblocks;
                     const T* base = px + strided_offset(o, kept, kept_st);
                     A s = 0;
                     for (int64_t row = blk * rows_per_block; row < std::min(nrows, (blk + 1) * rows_per_block); ++row)
                       s += sum_run<A>(base + strided_offset(row, rows, rows_st), run, run_inc);
                     partial[size_t(t)] = s;
                   }
                 });
    for (int64_t o = 0; o < m; ++o) {
      A s = 0;
      for (int64_t b = 0; b < nblocks; ++b) s += partial[size_t(o * nblocks + b)];
      py[o] = cast<T>(s * scale);
    }
    return;
  }

  // Innermost dimension kept (column sums, e.g. a bias gradient): each task adds whole reduced
  // rows into a strip of up to kStrip accumulators, walking memory along the kept innermost axis.
  constexpr int64_t kStrip = 256;
  const int64_t n = kept.back(), inc = kept_st.back();
  Shape outer = kept, outer_st = kept_st;
  outer.erase(outer.rank() - 1);
  outer_st.erase(outer_st.rank() - 1);
  const int64_t nouter = outer.numel(), nstrips = (n + kStrip - 1) / kStrip, nred = red.numel();
  const int64_t red_per_block = std::max<int64_t>(1, kReduceBlock / std::min(n, kStrip));
  const int64_t nblocks = (nred + red_per_block - 1) / red_per_block;
  std::vector<A> partial(size_t(nouter * nblocks * n));  // [outer, block, n]
  parallel_for(0, nouter * nstrips * nblocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t blk = t % nblocks, strip = (t / nblocks) % nstrips, o = t / (nblocks * nstrips);
      const int64_t j0 = strip * kStrip, w = std::min(kStrip, n - j0);
      const T* base = px + strided_offset(o, outer, outer_st) + j0 * inc;
      std::array<A, kStrip> acc{};
      for (int64_t k = blk * red_per_block; k < std::min(nred, (blk + 1) * red_per_block); ++k) {
        const T* p = base + strided_offset(k, red, red_st);
        if (inc == 1) {
          for (int64_t j = 0; j < w; ++j) acc[size_t(j)] += A(p[j]);
        } else {
          for (int64_t j = 0; j < w; ++j) acc[size_t(j)] += A(p[j * inc]);
        }
      }
      std::copy_n(acc.begin(), w, partial.begin() + (o * nblocks + blk) * n + j0);
    }
  });
  parallel_for(0, nouter, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o)
      for (int64_t j = 0; j < n; ++j) {
        A s = 0;
        for (int64_t b = 0; b < nblocks; ++b) s += partial[size_t((o * nblocks + b) * n + j)];
        py[o * n + j] = cast<T>(s * scale);
      }
  });
}

// values[o, i] = max_k x[o, k, i] and indices[o, i] = the first k reaching it, for x contiguous as
// [outer, n, inner] (n >= 1); NaN wins, like torch.max.
template <class T>
void max(const Tensor<T, Cpu>& x, int64_t outer, int64_t n, int64_t inner, const Tensor<T, Cpu>& values,
         const Tensor<int64_t, Cpu>& indices) {
  using A = acc_t<T>;
  const T* px = x.data();
  T* pv = values.data();
  int64_t* pi = indices.data();
  parallel_for(0, outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(n * inner, 1)), [&](int64_t lo, int64_t hi) {
    std::vector<A> best(static_cast<size_t>(inner));
    for (int64_t o = lo; o < hi; ++o) {
      const T* row = px + o * n * inner;
      int64_t* idx = pi + o * inner;
      for (int64_t i = 0; i < inner; ++i) {
        best[size_t(i)] = A(row[i]);
        idx[i] = 0;
      }
      for (int64_t k = 1; k < n; ++k)
        for (int64_t i = 0; i < inner; ++i) {
          const A v = A(row[k * inner + i]), b = best[size_t(i)];
          if (v > b || (std::isnan(v) && !std::isnan(b))) {
            best[size_t(i)] = v;
            idx[i] = k;
          }
        }
      for (int64_t i = 0; i < inner; ++i) pv[o * inner + i] = cast<T>(best[size_t(i)]);
    }
  });
}

// dx[o, indices[o, i], i] = dy[o, i], zero elsewhere; dy and indices contiguous [outer, inner],
// dx contiguous [outer, n, inner].
template <class T>
void max_backward(const Tensor<T, Cpu>& dy, const Tensor<int64_t, Cpu>& indices, int64_t outer, int64_t n,
                  int64_t inner, const Tensor<T, Cpu>& dx) {
  const T* g = dy.data();
  const int64_t* idx = indices.data();
  T* out = dx.data();
  parallel_for(0, outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(n * inner, 1)), [&](int64_t lo, int64_t hi) {
    std::fill(out + lo * n * inner, out + hi * n * inner, cast<T>(0.0f));
    for (int64_t o = lo; o < hi; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t k = idx[o * inner + i];
        CTMLLM_CHECK(k >= 0 && k < n, "max_backward: index ", k, " out of range for a dimension of size ", n);
        out[(o * n + k) * inner + i] = g[o * inner + i];
      }
  });
}

}  // namespace ctmllm::ops::impl
