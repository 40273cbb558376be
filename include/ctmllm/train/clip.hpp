#pragma once
// Global gradient norm and torch's clip_grad_norm_.
//
//   norm = ‖(g_1, …, g_n)‖₂ over every parameter that has a gradient (summed in double)
//   g_i ← g_i · min(1, max_norm / (norm + 1e-6))
//
// A non-finite norm (an inf or NaN gradient) is returned with the gradients left as they are:
// torch (error_if_nonfinite=False) would multiply them all into NaN; here the caller sees the norm
// and skips the step (the loss scaler and the trainer do). On the GPU (from .cu files) the squares
// are summed and the gradients scaled on the device (ops/optim.hpp); only the norm comes back.
#include <cmath>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/optim.hpp"

namespace ctmllm::train {

// ‖all gradients‖₂; parameters without a gradient count as zero.
template <class T, class D = Cpu>
double grad_norm(const std::vector<autograd::Variable<T, D>>& params) {
  std::vector<Tensor<T, D>> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  return std::sqrt(ops::sum_of_squares(grads));
}

// Multiplies every gradient by `factor` in place (leaf gradients own their storage).
template <class T, class D = Cpu>
void scale_grads(const std::vector<autograd::Variable<T, D>>& params, double factor) {
  CTMLLM_CHECK(std::isfinite(factor), "scale_grads: factor must be finite, got ", factor);
  for (const auto& p : params) {
    const Tensor<T, D>& g = p.grad();
    if (!g.defined()) continue;
    CTMLLM_CHECK(g.is_contiguous(), "scale_grads: the gradient of '", p.name(), "' is not contiguous: ", g.describe());
    ops::scale_(g, factor);
  }
}

// torch.nn.utils.clip_grad_norm_: returns the total norm before clipping. Gradients are scaled
// only when the norm is finite and above max_norm.
template <class T, class D = Cpu>
double clip_grad_norm(const std::vector<autograd::Variable<T, D>>& params, double max_norm) {
  CTMLLM_CHECK(max_norm > 0 && std::isfinite(max_norm), "clip_grad_norm: max_norm must be finite and > 0, got ", max_norm);
  const double norm = grad_norm(params);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1) scale_grads(params, coef);
  return norm;
}

}  // namespace ctmllm::train
