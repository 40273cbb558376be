#pragma once
// Autograd for embedding: weight is a Variable, ids a plain int64 tensor (saved for backward).
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/embedding.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> embedding(const Variable<T, D>& weight, const Tensor<int64_t, D>& ids) {
  Tensor<T, D> y = ops::embedding(weight.value(), ids);
  const int64_t V = weight.size(0);
  return record(std::move(y), "embedding", {weight}, [ids, V](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::embedding_backward(dy, ids, V)};
  });
}

}  // namespace ctmllm::autograd
