#pragma once
// The Hugging Face causal-LM loss: logits at position t predict the label at t + 1; labels of −100
// (prompt, visual tokens, padding) are ignored; the mean runs over the kept labels of the batch.
//   loss = cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore −100)
#include "ctmllm/autograd/loss.hpp"
#include "ctmllm/autograd/shape_ops.hpp"

namespace ctmllm::llm {

// logits [B, S, V], labels int64 [B, S] -> loss [1]
template <class T, class D>
autograd::Variable<T, D> causal_lm_loss(const autograd::Variable<T, D>& logits, const Tensor<int64_t, D>& labels) {
  CTMLLM_CHECK(logits.rank() == 3, "causal_lm_loss: logits must be [B, S, V], got ", logits.value().describe());
  const int64_t B = logits.size(0), S = logits.size(1), V = logits.size(2);
  check_shape(labels, Shape{B, S}, "causal_lm_loss", "labels");
  CTMLLM_CHECK(S >= 2, "causal_lm_loss: a sequence of ", S, " token cannot predict a next token");
  const autograd::Variable<T, D> shifted = autograd::reshape(autograd::slice(logits, 1, 0, S - 1), {B * (S - 1), V});
  const Tensor<int64_t, D> targets = labels.slice(1, 1, S).contiguous().reshape({B * (S - 1)});
  return autograd::cross_entropy(shifted, targets, -100);
}

// The number of labels the loss averages over: labels[:, 1:] that are not −100. Gradient
// accumulation weights each micro-batch's loss by its share of the batch's count (train/accumulate.hpp).
inline int64_t causal_lm_target_count(const Tensor<int64_t, Cpu>& labels) {
  CTMLLM_CHECK(labels.rank() == 2, "causal_lm_target_count: labels must be [B, S], got ", labels.describe());
  int64_t n = 0;
  for (int64_t b = 0; b < labels.size(0); ++b)
    for (int64_t s = 1; s < labels.size(1); ++s) n += labels.at(b, s) != -100;
  return n;
}

}  // namespace ctmllm::llm
