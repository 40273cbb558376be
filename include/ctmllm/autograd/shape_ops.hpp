#pragma once
// Autograd for shape ops. The forward results are views sharing the input's storage (concat
// copies); the gradients are views of dy where the op only re-indexes (reshape, permute, transpose,
// squeeze, unsqueeze), a sum where it broadcast (expand), and dy placed into zeros where it picked
// elements out (slice, select, split).
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/reduce.hpp"
#include "ctmllm/ops/shape_ops.hpp"

namespace ctmllm::autograd {

// One extent may be -1; a view when the strides allow, a copy otherwise (like Tensor::reshape).
template <class T, class D>
Variable<T, D> reshape(const Variable<T, D>& x, const std::vector<int64_t>& dims) {
  const Shape in = x.shape();
  return record(x.value().reshape(std::span<const int64_t>(dims)), "reshape", {x},
                [in](const Tensor<T, D>& dy) { return std::vector<Tensor<T, D>>{dy.reshape(in)}; });
}

template <class T, class D>
Variable<T, D> permute(const Variable<T, D>& x, const std::vector<int>& order) {
  Tensor<T, D> y = x.value().permute(std::span<const int>(order));  // validates order
  std::vector<int> inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) inverse[size_t(normalize_dim(order[i], x.rank(), "permute"))] = int(i);
  return record(std::move(y), "permute", {x}, [inverse](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{dy.permute(std::span<const int>(inverse))};
  });
}

template <class T, class D>
Variable<T, D> transpose(const Variable<T, D>& x, int a, int b) {
  return record(x.value().transpose(a, b), "transpose", {x},
                [a, b](const Tensor<T, D>& dy) { return std::vector<Tensor<T, D>>{dy.transpose(a, b)}; });
}

template <class T, class D>
Variable<T, D> slice(const Variable<T, D>& x, int dim, int64_t start, int64_t stop, int64_t step = 1) {
  const Shape in = x.shape();
  return record(x.value().slice(dim, start, stop, step), "slice", {x}, [in, dim, start, stop, step](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::slice_backward(dy, in, dim, start, stop, step)};
  });
}

template <class T, class D>
Variable<T, D> select(const Variable<T, D>& x, int dim, int64_t index) {
  const Shape in = x.shape();
  return record(x.value().select(dim, index), "select", {x}, [in, dim, index](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::select_backward(dy, in, dim, index)};
  });
}

template <class T, class D>
Variable<T, D> unsqueeze(const Variable<T, D>& x, int dim) {
  const Shape in = x.shape();
  return record(x.value().unsqueeze(dim), "unsqueeze", {x},
                [in](const Tensor<T, D>& dy) { return std::vector<Tensor<T, D>>{dy.reshape(in)}; });
}

template <class T, class D>
Variable<T, D> squeeze(const Variable<T, D>& x, int dim) {
  const Shape in = x.shape();
  return record(x.value().squeeze(dim), "squeeze", {x},
                [in](const Tensor<T, D>& dy) { return std::vector<Tensor<T, D>>{dy.reshape(in)}; });
}

template <class T, class D>
Variable<T, D> expand(const Variable<T, D>& x, const Shape& target) {
  const Shape in = x.shape();
  return record(x.value().expand(target), "expand", {x},
                [in](const Tensor<T, D>& dy) { return std::vector<Tensor<T, D>>{ops::sum_to_shape(dy, in)}; });
}

template <class T, class D>
Variable<T, D> contiguous(const Variable<T, D>& x) {
  return record(x.value().contiguous(), "contiguous", {x},
                [](const Tensor<T, D>& dy) { return std::vector<Tensor<T, D>>{dy}; });
}

template <class T, class D>
Variable<T, D> concat(const std::vector<Variable<T, D>>& xs, int dim) {
  std::vector<Tensor<T, D>> values;
  std::vector<int64_t> sizes;
  for (const auto& x : xs) {
    CTMLLM_CHECK(x.defined(), "concat: an input Variable is undefined");
    values.push_back(x.value());
  }
  Tensor<T, D> y = ops::concat(values, dim);  // validates shapes and dim
  for (const auto& v : values) sizes.push_back(v.size(dim));
  return record(std::move(y), "concat", xs,
                [sizes, dim](const Tensor<T, D>& dy) { return ops::concat_backward(dy, sizes, dim); });
}

// One Variable per piece, each its own node: a piece's gradient lands in zeros of x's shape.
template <class T, class D>
std::vector<Variable<T, D>> split(const Variable<T, D>& x, const std::vector<int64_t>& sizes, int dim) {
  const std::vector<Tensor<T, D>> pieces = ops::split(x.value(), sizes, dim);  // validates
  const Shape in = x.shape();
  std::vector<Variable<T, D>> out;
  for (size_t i = 0; i < pieces.size(); ++i) {
    out.push_back(record(pieces[i], "split", {x}, [in, sizes, dim, i](const Tensor<T, D>& dy) {
      std::vector<Tensor<T, D>> grads(sizes.size());
      grads[i] = dy;
      return std::vector<Tensor<T, D>>{ops::split_backward(grads, in, sizes, dim)};
    }));
  }
  return out;
}

}  // namespace ctmllm::autograd
