#pragma once
// The backward engine: a topological walk from the output, calling each node's backward once with
// the sum of the gradients that reached its output, and accumulating into leaves.
#include <unordered_set>
#include <utility>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/elementwise.hpp"

namespace ctmllm::autograd {

namespace detail {

// g is a freshly computed gradient; take it over when nobody else holds its storage and it is
// laid out plainly, copy it otherwise (so later accumulation never writes into someone's tensor).
template <class T, class D>
void accumulate_grad(Tensor<T, D>& dst, Tensor<T, D>&& g) {
  if (!dst.defined()) {
    if (g.is_contiguous() && g.storage().use_count() == 1 && g.offset() == 0) dst = std::move(g);
    else dst = g.clone();
  } else {
    ops::add_(dst, g);
  }
}

// Nodes reachable from root, each after every node that consumes its output.
template <class T, class D>
std::vector<VariableState<T, D>*> topological_order(VariableState<T, D>* root) {
  std::vector<VariableState<T, D>*> post;
  std::unordered_set<VariableState<T, D>*> seen;
  std::vector<std::pair<VariableState<T, D>*, size_t>> stack{{root, 0}};
  seen.insert(root);
  while (!stack.empty()) {
    auto& [s, next] = stack.back();
    const auto* node = s->grad_fn.get();
    if (node && next < node->inputs.size()) {
      VariableState<T, D>* in = node->inputs[next++].get();
      if (in && in->requires_grad && seen.insert(in).second) stack.push_back({in, 0});
    } else {
      post.push_back(s);
      stack.pop_back();
    }
  }
  return {post.rbegin(), post.rend()};
}

}  // namespace detail

template <class T, class D>
void Variable<T, D>::backward(const Tensor<T, D>& grad_output) const {
  CTMLLM_CHECK(requires_grad(), "backward: the variable does not require a gradient (no trainable input reached it)");
  Tensor<T, D> seed = grad_output;
  if (!seed.defined()) {
    CTMLLM_CHECK(value().numel() == 1, "backward: an implicit gradient needs a one-element output, got ",
                 value().describe());
    seed = Tensor<T, D>::ones(value().shape());
  }
  check_shape(seed, value().shape(), "backward", "grad_output");
  const auto order = detail::topological_order(state_.get());
  detail::accumulate_grad(state_->grad, seed.clone());
  for (VariableState<T, D>* s : order) {
    if (!s->grad_fn) continue;  // a leaf: its grad stays
    Node<T, D>& node = *s->grad_fn;
    Tensor<T, D> g = std::move(s->grad);
    s->grad = Tensor<T, D>();
    if (!g.defined()) continue;
    CTMLLM_CHECK(node.backward, "backward: the graph through '", node.op,
                 "' was already used by a backward pass; run the forward again");
    auto grads = node.backward(g);
    CTMLLM_CHECK(grads.size() == node.inputs.size(), "backward: '", node.op, "' returned ", grads.size(),
                 " gradients for ", node.inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      VariableState<T, D>* in = node.inputs[i].get();
      if (!in || !in->requires_grad || !grads[i].defined()) continue;
      CTMLLM_CHECK(grads[i].shape() == in->value.shape(), "backward: '", node.op, "' returned a gradient ",
                   grads[i].describe(), " for input ", i, " of shape ", in->value.shape());
      detail::accumulate_grad(in->grad, std::move(grads[i]));
    }
    node.backward = nullptr;  // frees what the node saved for backward
  }
}

}  // namespace ctmllm::autograd
