#pragma once
// Autograd for softmax and log_softmax: saves the output y, from which backward is computed.
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/softmax.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> softmax(const Variable<T, D>& x, int dim = -1) {
  Tensor<T, D> y = ops::softmax(x.value(), dim);
  return record(y, "softmax", {x}, [y, dim](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::softmax_backward(dy, y, dim)};
  });
}

template <class T, class D>
Variable<T, D> log_softmax(const Variable<T, D>& x, int dim = -1) {
  Tensor<T, D> y = ops::log_softmax(x.value(), dim);
  return record(y, "log_softmax", {x}, [y, dim](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::log_softmax_backward(dy, y, dim)};
  });
}

}  // namespace ctmllm::autograd
