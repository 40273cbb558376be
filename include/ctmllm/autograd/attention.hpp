#pragma once
// Autograd for attention: one node for the whole fused op. It saves q, k, v, the output and the row
// logsumexps (O(seq) beyond the inputs), and the backward recomputes the softmax blockwise.
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/attention.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> attention(const Variable<T, D>& q, const Variable<T, D>& k, const Variable<T, D>& v,
                         const ops::AttentionOptions<D>& opts = {}) {
  const Tensor<T, D> qv = q.value(), kv = k.value(), vv = v.value();
  ops::AttentionResult<T, D> fwd = ops::attention(qv, kv, vv, opts);
  Tensor<T, D> out = fwd.out;
  return record(std::move(out), "attention", {q, k, v}, [qv, kv, vv, fwd, opts](const Tensor<T, D>& dy) {
    ops::AttentionGrads<T, D> g = ops::attention_backward(dy, qv, kv, vv, fwd, opts);
    return std::vector<Tensor<T, D>>{std::move(g.dq), std::move(g.dk), std::move(g.dv)};
  });
}

}  // namespace ctmllm::autograd
