#pragma once
// Autograd for gelu / silu (saves the input, recomputes f'(x) in backward) and for the gated
// f(gate) · up (saves gate and up, recomputes f and f' in backward).
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/activation.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> activation(const Variable<T, D>& x, ops::Activation kind) {
  Tensor<T, D> xv = x.value();
  return record(ops::activation(xv, kind), "activation", {x}, [xv, kind](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::activation_backward(dy, xv, kind)};
  });
}
template <class T, class D>
Variable<T, D> gated_activation(const Variable<T, D>& gate, const Variable<T, D>& up, ops::Activation kind) {
  Tensor<T, D> g = gate.value(), u = up.value();
  return record(ops::gated_activation(g, u, kind), "gated_activation", {gate, up},
                [g, u, kind](const Tensor<T, D>& dy) {
                  auto grads = ops::gated_activation_backward(dy, g, u, kind);
                  return std::vector<Tensor<T, D>>{grads.gate, grads.up};
                });
}
template <class T, class D>
Variable<T, D> gelu(const Variable<T, D>& x, bool tanh_approximation = false) {
  return activation(x, tanh_approximation ? ops::Activation::gelu_tanh : ops::Activation::gelu_erf);
}
template <class T, class D>
Variable<T, D> silu(const Variable<T, D>& x) {
  return activation(x, ops::Activation::silu);
}

}  // namespace ctmllm::autograd
