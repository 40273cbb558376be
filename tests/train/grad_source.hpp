#pragma once
// Gives a parameter a chosen gradient through a real backward pass: ∂/∂w Σ(w · g) = g.
#include <initializer_list>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/reduce.hpp"

namespace ctmllm::testing {

template <class T>
void backward_with_grad(const autograd::Variable<T, Cpu>& w, const Tensor<T, Cpu>& g) {
  autograd::sum(autograd::mul(w, autograd::Variable<T, Cpu>(g))).backward();
}

inline Tensor<double, Cpu> vec(std::initializer_list<double> v) {
  return Tensor<double, Cpu>::from(v, {int64_t(v.size())});
}

}  // namespace ctmllm::testing
