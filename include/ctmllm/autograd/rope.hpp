#pragma once
// Autograd for rope: the backward needs only the positions (a rotation's transpose is its inverse).
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/rope.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> rope(const Variable<T, D>& x, const Tensor<int64_t, D>& positions, const ops::RopeConfig& cfg) {
  return record(ops::rope(x.value(), positions, cfg), "rope", {x}, [positions, cfg](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::rope_backward(dy, positions, cfg)};
  });
}

}  // namespace ctmllm::autograd
