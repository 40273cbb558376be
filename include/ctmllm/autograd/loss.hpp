#pragma once
// Autograd for cross_entropy: logits is a Variable, targets a plain int64 tensor; saves logits,
// targets and the per-row logsumexp.
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/loss.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> cross_entropy(const Variable<T, D>& logits, const Tensor<int64_t, D>& targets,
                             int64_t ignore_index = -100) {
  const Tensor<T, D> x = logits.value();
  auto r = ops::cross_entropy(x, targets, ignore_index);
  return record(std::move(r.loss), "cross_entropy", {logits},
                [x, targets, ignore_index, lse = r.lse](const Tensor<T, D>& dloss) {
                  return std::vector<Tensor<T, D>>{ops::cross_entropy_backward(dloss, x, targets, lse, ignore_index)};
                });
}

}  // namespace ctmllm::autograd
