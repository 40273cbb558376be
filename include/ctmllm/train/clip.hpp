#pragma once
// Global gradient norm and torch's clip_grad_norm_.
//
//   norm = ‖(g_1, …, g_n)‖₂ over every parameter that has a gradient (summed in double)
//   g_i ← g_i · min(1, max_norm / (norm + 1e-6))
//
// A non-finite norm (an inf or NaN gradient) is returned with the gradients left as they are:
// torch (error_if_nonfinite=False) would multiply them all into NaN; here the caller sees the norm
// and skips the step (the loss scaler and the trainer do).
#include <cmath>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/core/parallel.hpp"

namespace ctmllm::train {

namespace detail {
// Σ x² of a contiguous block in double, over fixed 64K-element blocks summed in order, so the
// result does not depend on the thread count.
template <class T>
double sum_of_squares(const T* p, int64_t n) {
  constexpr int64_t kBlock = 1 << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
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
}  // namespace detail

// ‖all gradients‖₂; parameters without a gradient count as zero.
template <class T>
double grad_norm(const std::vector<autograd::Variable<T, Cpu>>& params) {
  double sq = 0;
  for (const auto& p : params) {
    const Tensor<T, Cpu>& g = p.grad();
    if (!g.defined()) continue;
    const Tensor<T, Cpu> gc = g.contiguous();
    sq += detail::sum_of_squares(gc.data(), gc.numel());
  }
  return std::sqrt(sq);
}

// Multiplies every gradient by `factor` in place (leaf gradients own their storage).
template <class T>
void scale_grads(const std::vector<autograd::Variable<T, Cpu>>& params, double factor) {
  CTMLLM_CHECK(std::isfinite(factor), "scale_grads: factor must be finite, got ", factor);
  for (const auto& p : params) {
    const Tensor<T, Cpu>& g = p.grad();
    if (!g.defined()) continue;
    CTMLLM_CHECK(g.is_contiguous(), "scale_grads: the gradient of '", p.name(), "' is not contiguous: ", g.describe());
    T* pg = g.data();
    parallel_for(0, g.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) pg[i] = cast<T>(double(pg[i]) * factor);
    });
  }
}

// torch.nn.utils.clip_grad_norm_: returns the total norm before clipping. Gradients are scaled
// only when the norm is finite and above max_norm.
template <class T>
double clip_grad_norm(const std::vector<autograd::Variable<T, Cpu>>& params, double max_norm) {
  CTMLLM_CHECK(max_norm > 0 && std::isfinite(max_norm), "clip_grad_norm: max_norm must be finite and > 0, got ", max_norm);
  const double norm = grad_norm(params);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1) scale_grads(params, coef);
  return norm;
}

}  // namespace ctmllm::train
