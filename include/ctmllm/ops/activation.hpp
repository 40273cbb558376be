#pragma once
// Pointwise activations: gelu (exact erf form, as nn.GELU(); tanh form, as approximate="tanh") and
// silu (x·σ(x)). Any shape; the result is contiguous.
#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/activation.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/activation.cuh"
#endif

namespace ctmllm::ops {

template <class T, class D>
Tensor<T, D> activation(const Tensor<T, D>& x, Activation kind) {
  CTMLLM_REQUIRE_KERNELS(D, "activation");
  check_defined(x, "activation", "x");
  const Tensor<T, D> xc = x.contiguous();
  Tensor<T, D> y = Tensor<T, D>::empty(x.shape());
  impl::activation_forward(xc, y, kind);
  return y;
}

// Gradient with respect to x, given dy (same shape as x).
template <class T, class D>
Tensor<T, D> activation_backward(const Tensor<T, D>& dy, const Tensor<T, D>& x, Activation kind) {
  CTMLLM_REQUIRE_KERNELS(D, "activation_backward");
  check_shape(dy, x.shape(), "activation_backward", "dy");
  Tensor<T, D> dx = Tensor<T, D>::empty(x.shape());
  impl::activation_backward(dy.contiguous(), x.contiguous(), dx, kind);
  return dx;
}

template <class T, class D>
Tensor<T, D> gelu(const Tensor<T, D>& x, bool tanh_approximation = false) {
  return activation(x, tanh_approximation ? Activation::gelu_tanh : Activation::gelu_erf);
}
template <class T, class D>
Tensor<T, D> silu(const Tensor<T, D>& x) {
  return activation(x, Activation::silu);
}

}  // namespace ctmllm::ops
