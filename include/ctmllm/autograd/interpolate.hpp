#pragma once
// Autograd for interpolate: the backward needs only the input shape and the options.
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/interpolate.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> interpolate(const Variable<T, D>& x, const ops::InterpolateOptions& options) {
  const Shape shape = x.shape();
  return record(ops::interpolate(x.value(), options), "interpolate", {x}, [shape, options](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::interpolate_backward(dy, shape, options)};
  });
}

}  // namespace ctmllm::autograd
