#pragma once
// Normalisation over the last dimension: layer_norm (nn.LayerNorm, weight and bias optional) and
// rms_norm (Llama's RMSNorm, or Gemma's with weight_offset = 1: x̂ · (1 + w)), and add_rms_norm (a
// residual update with the norm after it, for inference). x is [..., C]; the
// forward returns y (contiguous, x's shape) with the per-row statistics backward needs, [...] in the
// accumulation type (float for 16-bit T).
#include <cmath>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/norm.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/norm.cuh"
#endif

namespace ctmllm::ops {

namespace detail {
// x's shape without the normalised (last) dimension, after checking x is [..., C] with C > 0.
template <class T, class D>
Shape norm_rows_shape(const Tensor<T, D>& x, const char* op) {
  check_defined(x, op, "x");
  CTMLLM_CHECK(x.rank() >= 1 && x.shape().back() > 0, op, ": x must have a non-empty last dimension, got ",
               x.describe());
  Shape rows = x.shape();
  rows.erase(rows.rank() - 1);
  return rows;
}
template <class T, class D>
void check_norm_param(const Tensor<T, D>& p, int64_t C, const char* op, const char* name) {
  if (p.defined()) check_shape(p, Shape{C}, op, name);
}
inline void check_eps(double eps, const char* op) {
  CTMLLM_CHECK(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and non-negative, got ", eps);
}
}  // namespace detail

template <class T, class D>
struct LayerNormResult {
  Tensor<T, D> y;              // [..., C]
  Tensor<acc_t<T>, D> mean;    // [...]
  Tensor<acc_t<T>, D> rstd;    // [...]: 1 / sqrt(var + eps)
};

// y = (x - mean) / sqrt(var + eps) * weight + bias; weight and bias [C] may each be undefined.
template <class T, class D>
LayerNormResult<T, D> layer_norm(const Tensor<T, D>& x, const Tensor<T, D>& weight, const Tensor<T, D>& bias,
                                 double eps = 1e-5) {
  CTMLLM_REQUIRE_KERNELS(D, "layer_norm");
  const Shape rows = detail::norm_rows_shape(x, "layer_norm");
  const int64_t C = x.shape().back();
  detail::check_norm_param(weight, C, "layer_norm", "weight");
  detail::check_norm_param(bias, C, "layer_norm", "bias");
  detail::check_eps(eps, "layer_norm");
  LayerNormResult<T, D> r{Tensor<T, D>::empty(x.shape()), Tensor<acc_t<T>, D>::empty(rows),
                          Tensor<acc_t<T>, D>::empty(rows)};
  const Tensor<T, D> w = weight.defined() ? weight.contiguous() : weight, b = bias.defined() ? bias.contiguous() : bias;
  impl::layer_norm_forward(x.contiguous(), w, b, r.y, r.mean, r.rstd, eps);
  return r;
}

template <class T, class D>
struct LayerNormGrads {
  Tensor<T, D> dx;  // [..., C]
  Tensor<T, D> dw;  // [C], undefined without weight
  Tensor<T, D> db;  // [C], undefined unless with_bias
};

// Gradients of layer_norm from dy and the saved statistics; `with_bias` asks for db.
template <class T, class D>
LayerNormGrads<T, D> layer_norm_backward(const Tensor<T, D>& dy, const Tensor<T, D>& x, const Tensor<acc_t<T>, D>& mean,
                                         const Tensor<acc_t<T>, D>& rstd, const Tensor<T, D>& weight, bool with_bias) {
  CTMLLM_REQUIRE_KERNELS(D, "layer_norm_backward");
  const Shape rows = detail::norm_rows_shape(x, "layer_norm_backward");
  const int64_t C = x.shape().back();
  check_defined(dy, "layer_norm_backward", "dy");
  check_shape(dy, x.shape(), "layer_norm_backward", "dy");
  check_defined(mean, "layer_norm_backward", "mean");
  check_shape(mean, rows, "layer_norm_backward", "mean");
  check_defined(rstd, "layer_norm_backward", "rstd");
  check_shape(rstd, rows, "layer_norm_backward", "rstd");
  detail::check_norm_param(weight, C, "layer_norm_backward", "weight");
  LayerNormGrads<T, D> g{Tensor<T, D>::empty(x.shape()), weight.defined() ? Tensor<T, D>::empty({C}) : Tensor<T, D>(),
                         with_bias ? Tensor<T, D>::empty({C}) : Tensor<T, D>()};
  impl::layer_norm_backward(dy.contiguous(), x.contiguous(), mean.contiguous(), rstd.contiguous(),
                            weight.defined() ? weight.contiguous() : weight, g.dx, g.dw, g.db);
  return g;
}

template <class T, class D>
struct RmsNormResult {
  Tensor<T, D> y;            // [..., C]
  Tensor<acc_t<T>, D> rstd;  // [...]: 1 / sqrt(mean(x²) + eps)
};

// y = x / sqrt(mean(x²) + eps) * (weight + weight_offset); weight [C]; offset 0 (Llama) or 1 (Gemma).
template <class T, class D>
RmsNormResult<T, D> rms_norm(const Tensor<T, D>& x, const Tensor<T, D>& weight, double eps = 1e-6,
                             double weight_offset = 0.0) {
  CTMLLM_REQUIRE_KERNELS(D, "rms_norm");
  const Shape rows = detail::norm_rows_shape(x, "rms_norm");
  check_defined(weight, "rms_norm", "weight");
  detail::check_norm_param(weight, x.shape().back(), "rms_norm", "weight");
  detail::check_eps(eps, "rms_norm");
  RmsNormResult<T, D> r{Tensor<T, D>::empty(x.shape()), Tensor<acc_t<T>, D>::empty(rows)};
  impl::rms_norm_forward(x.contiguous(), weight.contiguous(), weight_offset, r.y, r.rstd, eps);
  return r;
}

template <class T, class D>
struct AddRmsNormResult {
  Tensor<T, D> sum;          // x + residual, [..., C]
  Tensor<T, D> y;            // rms_norm(sum), [..., C]
  Tensor<acc_t<T>, D> rstd;  // [...]
};

// A residual update and the norm after it in one pass, for inference (the decoder uses it where no
// graph is recorded): sum = x + residual, rounded to T as add rounds it, and y = rms_norm(sum),
// equal bit for bit to add then rms_norm. x and residual: one shape [..., C]. Not differentiable: a
// recorded forward runs the two ops, whose gradients are this form's.
template <class T, class D>
AddRmsNormResult<T, D> add_rms_norm(const Tensor<T, D>& x, const Tensor<T, D>& residual, const Tensor<T, D>& weight,
                                    double eps = 1e-6, double weight_offset = 0.0) {
  CTMLLM_REQUIRE_KERNELS(D, "add_rms_norm");
  const Shape rows = detail::norm_rows_shape(x, "add_rms_norm");
  check_defined(residual, "add_rms_norm", "residual");
  check_shape(residual, x.shape(), "add_rms_norm", "residual");
  check_defined(weight, "add_rms_norm", "weight");
  detail::check_norm_param(weight, x.shape().back(), "add_rms_norm", "weight");
  detail::check_eps(eps, "add_rms_norm");
  AddRmsNormResult<T, D> r{Tensor<T, D>::empty(x.shape()), Tensor<T, D>::empty(x.shape()),
                           Tensor<acc_t<T>, D>::empty(rows)};
  impl::add_rms_norm_forward(x.contiguous(), residual.contiguous(), weight.contiguous(), weight_offset, r.sum, r.y,
                             r.rstd, eps);
  return r;
}

template <class T, class D>
struct RmsNormGrads {
  Tensor<T, D> dx;  // [..., C]
  Tensor<T, D> dw;  // [C]
};

template <class T, class D>
RmsNormGrads<T, D> rms_norm_backward(const Tensor<T, D>& dy, const Tensor<T, D>& x, const Tensor<acc_t<T>, D>& rstd,
                                     const Tensor<T, D>& weight, double weight_offset = 0.0) {
  CTMLLM_REQUIRE_KERNELS(D, "rms_norm_backward");
  const Shape rows = detail::norm_rows_shape(x, "rms_norm_backward");
  const int64_t C = x.shape().back();
  check_defined(dy, "rms_norm_backward", "dy");
  check_shape(dy, x.shape(), "rms_norm_backward", "dy");
  check_defined(rstd, "rms_norm_backward", "rstd");
  check_shape(rstd, rows, "rms_norm_backward", "rstd");
  check_defined(weight, "rms_norm_backward", "weight");
  detail::check_norm_param(weight, C, "rms_norm_backward", "weight");
  RmsNormGrads<T, D> g{Tensor<T, D>::empty(x.shape()), Tensor<T, D>::empty({C})};
  impl::rms_norm_backward(dy.contiguous(), x.contiguous(), rstd.contiguous(), weight.contiguous(), weight_offset, g.dx,
                          g.dw);
  return g;
}

}  // namespace ctmllm::ops
