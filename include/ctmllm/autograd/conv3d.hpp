#pragma once
// Autograd for conv3d: saves x and w; dx is computed only when x needs it.
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/conv3d.hpp"

namespace ctmllm::autograd {

// b may be an undefined Variable (no bias).
template <class T, class D>
Variable<T, D> conv3d(const Variable<T, D>& x, const Variable<T, D>& w, const Variable<T, D>& b = Variable<T, D>(),
                      std::array<int64_t, 3> stride = {1, 1, 1}, std::array<int64_t, 3> padding = {0, 0, 0}) {
  const Tensor<T, D> xv = x.value(), wv = w.value();
  const bool has_bias = b.defined(), need_dx = x.requires_grad();
  Tensor<T, D> y = ops::conv3d(xv, wv, has_bias ? b.value() : Tensor<T, D>(), stride, padding);
  return record(std::move(y), "conv3d", {x, w, b}, [xv, wv, has_bias, need_dx, stride, padding](const Tensor<T, D>& dy) {
    auto g = ops::conv3d_backward(dy, xv, wv, stride, padding, need_dx);
    return std::vector<Tensor<T, D>>{g.dx, g.dw, has_bias ? g.db : Tensor<T, D>()};
  });
}

}  // namespace ctmllm::autograd
