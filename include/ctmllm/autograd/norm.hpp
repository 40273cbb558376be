#pragma once
// Autograd for layer_norm and rms_norm: saves x and the per-row statistics (not y).
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/norm.hpp"

namespace ctmllm::autograd {

// weight and bias may be undefined Variables (no affine part, or no bias).
template <class T, class D>
Variable<T, D> layer_norm(const Variable<T, D>& x, const Variable<T, D>& weight, const Variable<T, D>& bias,
                          double eps = 1e-5) {
  const Tensor<T, D> xv = x.value(), wv = weight.defined() ? weight.value() : Tensor<T, D>();
  const bool with_bias = bias.defined();
  auto r = ops::layer_norm(xv, wv, with_bias ? bias.value() : Tensor<T, D>(), eps);
  return record(std::move(r.y), "layer_norm", {x, weight, bias},
                [xv, wv, with_bias, mean = r.mean, rstd = r.rstd](const Tensor<T, D>& dy) {
                  auto g = ops::layer_norm_backward(dy, xv, mean, rstd, wv, with_bias);
                  return std::vector<Tensor<T, D>>{std::move(g.dx), std::move(g.dw), std::move(g.db)};
                });
}

template <class T, class D>
Variable<T, D> rms_norm(const Variable<T, D>& x, const Variable<T, D>& weight, double eps = 1e-6,
                        double weight_offset = 0.0) {
  CTMLLM_CHECK(weight.defined(), "rms_norm: weight is an undefined Variable");
  const Tensor<T, D> xv = x.value(), wv = weight.value();
  auto r = ops::rms_norm(xv, wv, eps, weight_offset);
  return record(std::move(r.y), "rms_norm", {x, weight}, [xv, wv, weight_offset, rstd = r.rstd](const Tensor<T, D>& dy) {
    auto g = ops::rms_norm_backward(dy, xv, rstd, wv, weight_offset);
    return std::vector<Tensor<T, D>>{std::move(g.dx), std::move(g.dw)};
  });
}

}  // namespace ctmllm::autograd
