#pragma once
// Activation recomputation (torch.utils.checkpoint): run a block without recording its graph, keep
// only its inputs, and in the backward pass run it again with gradients on and backpropagate through
// that fresh graph. Memory for the block's activations is traded for one more forward.
//
// The block must be deterministic given its inputs (seeded dropout is: its mask depends on a seed
// and counter, not on call order). Parameters the block captures receive their gradients from the
// inner backward pass, accumulated like any other.
#include <functional>
#include <vector>

#include "ctmllm/autograd/backward.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> checkpoint(const std::function<Variable<T, D>(const std::vector<Variable<T, D>>&)>& block,
                          const std::vector<Variable<T, D>>& inputs) {
  std::vector<Variable<T, D>> detached;
  for (const auto& v : inputs) detached.push_back(v.defined() ? v.detach() : v);
  Tensor<T, D> out;
  {
    NoGradGuard no_grad;
    out = block(detached).value();
  }
  if (!grad_mode()) return Variable<T, D>(out);
  // The node must exist even when no input needs a gradient: parameters inside the block may.
  auto node = std::make_shared<Node<T, D>>();
  node->op = "checkpoint";
  for (const auto& v : inputs) node->inputs.push_back(v.defined() ? v.state() : nullptr);
  node->backward = [block, inputs](const Tensor<T, D>& g) {
    std::vector<Variable<T, D>> fresh;
    for (const auto& v : inputs)
      fresh.push_back(v.defined() ? Variable<T, D>(v.value(), v.requires_grad()) : v);
    EnableGradGuard with_grad;
    Variable<T, D> y = block(fresh);
    if (y.requires_grad()) y.backward(g);
    std::vector<Tensor<T, D>> grads;
    for (const auto& v : fresh) grads.push_back(v.defined() ? v.grad() : Tensor<T, D>());
    return grads;
  };
  return Variable<T, D>::from_node(std::move(out), std::move(node));
}

}  // namespace ctmllm::autograd
