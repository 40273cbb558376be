#pragma once
// Autograd for avg_pool3d: the backward needs only the input shape.
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/pool3d.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> avg_pool3d(const Variable<T, D>& x, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride) {
  const Shape shape = x.shape();
  return record(ops::avg_pool3d(x.value(), kernel, stride), "avg_pool3d", {x},
                [shape, kernel, stride](const Tensor<T, D>& dy) {
                  return std::vector<Tensor<T, D>>{ops::avg_pool3d_backward(dy, shape, kernel, stride)};
                });
}

}  // namespace ctmllm::autograd
