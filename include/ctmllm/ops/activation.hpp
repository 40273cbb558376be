#pragma once
// Pointwise activations: gelu (exact erf form, as nn.GELU(); tanh form, as approximate="tanh") and
// silu (x·σ(x)), alone or gating a second input (gated_activation: the hidden layer of SwiGLU and
// GeGLU MLPs). Any shape; the result is contiguous.
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

// y = f(gate) · up, the gated MLP's hidden activation, in one pass over gate and up where the two ops
// take three (f, then the product) and keep one tensor more for backward. f(gate) is rounded to T
// before the product, as activation's output is: y equals mul(activation(gate, kind), up) bit for
// bit, and so do the gradients. gate and up: one shape, any strides.
template <class T, class D>
Tensor<T, D> gated_activation(const Tensor<T, D>& gate, const Tensor<T, D>& up, Activation kind) {
  CTMLLM_REQUIRE_KERNELS(D, "gated_activation");
  check_defined(gate, "gated_activation", "gate");
  check_defined(up, "gated_activation", "up");
  check_shape(up, gate.shape(), "gated_activation", "up");
  Tensor<T, D> y = Tensor<T, D>::empty(gate.shape());
  impl::gated_activation_forward(gate, up, y, kind);
  return y;
}

template <class T, class D>
struct GatedActivationGrads {
  Tensor<T, D> gate, up;
};

// The gradients of gated_activation given dy (gate's shape): dgate = dy · up · f'(gate) and
// dup = dy · f(gate), rounded as mul's and activation's backward round them.
template <class T, class D>
GatedActivationGrads<T, D> gated_activation_backward(const Tensor<T, D>& dy, const Tensor<T, D>& gate,
                                                     const Tensor<T, D>& up, Activation kind) {
  CTMLLM_REQUIRE_KERNELS(D, "gated_activation_backward");
  check_defined(gate, "gated_activation_backward", "gate");
  check_shape(up, gate.shape(), "gated_activation_backward", "up");
  check_shape(dy, gate.shape(), "gated_activation_backward", "dy");
  GatedActivationGrads<T, D> g{Tensor<T, D>::empty(gate.shape()), Tensor<T, D>::empty(gate.shape())};
  impl::gated_activation_backward(dy.contiguous(), gate.contiguous(), up.contiguous(), g.gate, g.up, kind);
  return g;
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
