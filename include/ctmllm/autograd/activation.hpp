#pragma once
// Autograd for gelu / silu: saves the input, recomputes f'(x) in backward.
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
Variable<T, D> gelu(const Variable<T, D>& x, bool tanh_approximation = false) {
  return activation(x, tanh_approximation ? ops::Activation::gelu_tanh : ops::Activation::gelu_erf);
}
template <class T, class D>
Variable<T, D> silu(const Variable<T, D>& x) {
  return activation(x, ops::Activation::silu);
}

}  // namespace ctmllm::autograd
