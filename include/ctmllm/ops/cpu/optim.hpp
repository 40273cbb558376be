#pragma once
// CPU kernels of the optimizer steps (train/adamw.hpp, train/clip.hpp, train/mixed_precision.hpp):
// the AdamW update of a parameter (or a list of them), Σ x² of a gradient, scaling a gradient in
// place, and scaled conversions between element types. Per element in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

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
template <class T>
void adamw_update(const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& g, const Tensor<float, Cpu>& m,
                  const Tensor<float, Cpu>& v, const AdamWCoefficients& c) {
  T* pw = w.data();
  const T* pg = g.data();
  float* pm = m.data();
  float* pv = v.data();
  parallel_for(0, w.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const double gi = double(pg[i]);
      double x = double(pw[i]) * (1 - c.lr * c.weight_decay);
      const double mi = c.beta1 * double(pm[i]) + (1 - c.beta1) * gi;
      const double vi = c.beta2 * double(pv[i]) + (1 - c.beta2) * gi * gi;
      x -= c.lr / c.c1 * mi / (std::sqrt(vi) / c.sc2 + c.eps);
      pm[i] = float(mi);
      pv[i] = float(vi);
      pw[i] = cast<T>(x);
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
// result does not depend on the thread count.
template <class T>
double sum_of_squares(const Tensor<T, Cpu>& t) {
  constexpr int64_t kBlock = 1 << 16;
  const T* p = t.data();
  const int64_t n = t.numel(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(size_t(blocks), 0.0);
  parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      double s = 0;
      for (int64_t i = b * kBlock, e = std::min(n, i + kBlock); i < e; ++i) s += double(p[i]) * double(p[i]);
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

// t ← t · factor in place (contiguous), in double.
template <class T>
void scale_(const Tensor<T, Cpu>& t, double factor) {
  T* p = t.data();
  parallel_for(0, t.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) p[i] = cast<T>(double(p[i]) * factor);
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
