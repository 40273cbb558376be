#pragma once
// Autograd for reductions: sum and mean broadcast dy back; max sends dy to where each maximum was.
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/reduce.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> sum(const Variable<T, D>& x, const std::vector<int>& dims, bool keepdim = false) {
  const Shape in = x.shape();
  return record(ops::sum(x.value(), dims, keepdim), "sum", {x}, [in, dims, keepdim](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::sum_backward(dy, in, dims, keepdim)};
  });
}
template <class T, class D>
Variable<T, D> mean(const Variable<T, D>& x, const std::vector<int>& dims, bool keepdim = false) {
  const Shape in = x.shape();
  return record(ops::mean(x.value(), dims, keepdim), "mean", {x}, [in, dims, keepdim](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::mean_backward(dy, in, dims, keepdim)};
  });
}
// Over all elements: shape [].
template <class T, class D>
Variable<T, D> sum(const Variable<T, D>& x) {
  const Shape in = x.shape();
  return record(ops::sum(x.value()), "sum", {x},
                [in](const Tensor<T, D>& dy) { return std::vector<Tensor<T, D>>{ops::sum_backward(dy, in)}; });
}
template <class T, class D>
Variable<T, D> mean(const Variable<T, D>& x) {
  const Shape in = x.shape();
  return record(ops::mean(x.value()), "mean", {x},
                [in](const Tensor<T, D>& dy) { return std::vector<Tensor<T, D>>{ops::mean_backward(dy, in)}; });
}

template <class T, class D>
struct MaxVariable {
  Variable<T, D> values;
  Tensor<int64_t, D> indices;
};

template <class T, class D>
MaxVariable<T, D> max(const Variable<T, D>& x, int dim, bool keepdim = false) {
  auto r = ops::max(x.value(), dim, keepdim);
  const Shape in = x.shape();
  Tensor<int64_t, D> idx = r.indices;
  Variable<T, D> values = record(std::move(r.values), "max", {x}, [idx, in, dim, keepdim](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::max_backward(dy, idx, in, dim, keepdim)};
  });
  return {std::move(values), std::move(r.indices)};
}

}  // namespace ctmllm::autograd
