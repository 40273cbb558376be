#pragma once
// CPU kernels of the optimizer steps (train/adamw.hpp, train/clip.hpp, train/mixed_precision.hpp):
// the AdamW update of a parameter (or a list of them), Σ x² of a gradient, scaling a gradient in
// place, and scaled conversions between element types. The update and the scale compute in acc_t<T>
// (float, or double for double tensors) as torch does; Σ x² sums in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops {

// One AdamW step's scalars: the group's lr and weight decay, the betas and eps, and the bias
// corrections c1 = 1 − β1ᵗ and sc2 = √(1 − β2ᵗ) of the parameter's step t.
struct AdamWCoefficients {
  double lr, weight_decay, beta1, beta2, eps, c1, sc2;
};

namespace impl {

// w, g [n] in T, m, v [n] in float, all contiguous:
//   w ← w·(1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;  w ← w − lr/c1 · m / (√v / sc2 + eps)
// in A = acc_t<T> with the scalars rounded to A first, the step from the stored moments: torch's
// float32 AdamW. Eigen's array expressions over blocks of kBlock vectorize the square root and the
// division (a plain loop calling std::sqrt stays scalar: it may set errno); w and g of another type
// than A go through A buffers.
template <class T>
void adamw_update(const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& g, const Tensor<float, Cpu>& m,
                  const Tensor<float, Cpu>& v, const AdamWCoefficients& c) {
  using A = acc_t<T>;
  using Block = Eigen::Array<A, Eigen::Dynamic, 1, 0, 1024, 1>;  // storage in place, no allocation
  constexpr int64_t kBlock = 1024;
  T* pw = w.data();
  const T* pg = g.data();
  float* pm = m.data();
  float* pv = v.data();
  const A decay = A(1 - c.lr * c.weight_decay), b1 = A(c.beta1), b2 = A(c.beta2), one_b1 = A(1 - c.beta1),
          one_b2 = A(1 - c.beta2), step = A(c.lr / c.c1), sc2 = A(c.sc2), eps = A(c.eps);
  // One block: w and g as A arrays (mapped in place when T is A), m and v mapped in place.
  const auto update = [&](auto&& wb, const auto& gb, Eigen::Map<Eigen::ArrayXf> mb, Eigen::Map<Eigen::ArrayXf> vb) {
    mb = (b1 * mb.template cast<A>() + one_b1 * gb).template cast<float>();
    vb = (b2 * vb.template cast<A>() + one_b2 * gb.square()).template cast<float>();
    wb = wb * decay - step * mb.template cast<A>() / (vb.template cast<A>().sqrt() / sc2 + eps);
  };
  parallel_for(0, w.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
    Block wb, gb;
    for (int64_t b = lo; b < hi; b += kBlock) {
      const int64_t len = std::min(kBlock, hi - b);
      const Eigen::Map<Eigen::ArrayXf> mb(pm + b, len), vb(pv + b, len);
      if constexpr (std::is_same_v<T, A>) {
        update(Eigen::Map<Eigen::Array<A, Eigen::Dynamic, 1>>(pw + b, len),
               Eigen::Map<const Eigen::Array<A, Eigen::Dynamic, 1>>(pg + b, len), mb, vb);
      } else {
        wb.resize(len);
        gb.resize(len);
        for (int64_t i = 0; i < len; ++i) {
          wb[i] = A(pw[b + i]);
          gb[i] = A(pg[b + i]);
        }
        update(wb, gb, mb, vb);
        for (int64_t i = 0; i < len; ++i) pw[b + i] = cast<T>(wb[i]);
      }
    }
  });
}

// The update of each parameter of a list (ops/optim.hpp's list form), in order.
template <class T>
void adamw_update(const std::vector<Tensor<T, Cpu>>& w, const std::vector<Tensor<T, Cpu>>& g,
                  const std::vector<Tensor<float, Cpu>>& m, const std::vector<Tensor<float, Cpu>>& v,
                  const std::vector<AdamWCoefficients>& c) {
  for (size_t i = 0; i < w.size(); ++i) adamw_update(w[i], g[i], m[i], v[i], c[i]);
}

// Σ x² of a contiguous tensor in double, over fixed 64K-element blocks summed in order, so the
// result does not depend on the thread count. Within a block kLanes running sums (element i into
// sum i mod kLanes, added up at the end): a fixed order the compiler can vectorize, where one
// running sum is a chain of dependent additions, one per element.
template <class T>
double sum_of_squares(const Tensor<T, Cpu>& t) {
  constexpr int64_t kBlock = 1 << 16, kLanes = 16;
  const T* p = t.data();
  const int64_t n = t.numel(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(size_t(blocks), 0.0);
  parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      const int64_t begin = b * kBlock, end = std::min(n, begin + kBlock), whole = begin + (end - begin) / kLanes * kLanes;
      double lanes[kLanes] = {};
      for (int64_t i = begin; i < whole; i += kLanes)
        for (int64_t l = 0; l < kLanes; ++l) lanes[l] += double(p[i + l]) * double(p[i + l]);
      for (int64_t i = whole; i < end; ++i) lanes[i - whole] += double(p[i]) * double(p[i]);
      double s = 0;
      for (double x : lanes) s += x;
      partial[size_t(b)] = s;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

// Σ over tensors of Σ x², the tensors in order.
template <class T>
double sum_of_squares(const std::vector<Tensor<T, Cpu>>& ts) {
  double total = 0;
  for (const auto& t : ts) total += sum_of_squares(t);
  return total;
}

// t ← t · factor in place (contiguous), in acc_t<T> with the factor rounded to it (torch's mul_).
template <class T>
void scale_(const Tensor<T, Cpu>& t, double factor) {
  using A = acc_t<T>;
  T* p = t.data();
  const A f = A(factor);
  parallel_for(0, t.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) p[i] = cast<T>(A(p[i]) * f);
  });
}

// dst[i] ← cast<To>(double(float(src[i])) · factor), all contiguous; whether every result is finite.
template <class To, class From>
bool convert_(const std::vector<Tensor<To, Cpu>>& dst, const std::vector<Tensor<From, Cpu>>& src, double factor) {
  bool finite = true;
  for (size_t t = 0; t < dst.size(); ++t) {
    To* po = dst[t].data();
    const From* pi = src[t].data();
    const int64_t n = dst[t].numel(), chunks = (n + (1 << 14) - 1) >> 14;
    std::vector<uint8_t> chunk_finite(size_t(chunks), 1);  // one writer per chunk: no shared flag
    parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c)
        for (int64_t i = c << 14, e = std::min(n, (c + 1) << 14); i < e; ++i) {
          po[i] = cast<To>(double(float(pi[i])) * factor);
          if (!std::isfinite(double(po[i]))) chunk_finite[size_t(c)] = 0;
        }
    });
    finite = finite && std::all_of(chunk_finite.begin(), chunk_finite.end(), [](uint8_t f) { return f != 0; });
  }
  return finite;
}

}  // namespace impl
}  // namespace ctmllm::ops
