#pragma once
// Gradient accumulation: a batch split into micro-batches, each run forward and backward on its own,
// whose gradients sum in the parameters' grads (leaves accumulate, autograd/variable.hpp).
//
// The causal-LM loss is a mean over the batch's kept labels (N of them), so the full batch's
// gradient is Σ_k (n_k / N) · ∇loss_k where micro-batch k keeps n_k labels. token_weights() gives
// those n_k / N; seeding micro-batch k's backward with its weight reproduces the full batch exactly:
//
//   auto w = train::token_weights(counts);          // counts[k] = llm::causal_lm_target_count(labels_k)
//   for k: loss_k.backward(Tensor<T>::full({1}, w[k]));
//
// Averaging the micro-batch means instead (uniform_weights, or backward then scale_grads(params, 1/n))
// weights every micro-batch equally: the same only when each keeps the same number of labels.
#include <cstdint>
#include <vector>

#include "ctmllm/core/error.hpp"

namespace ctmllm::train {

// n_k / Σ n: the weight of each micro-batch's mean loss in the batch's mean.
inline std::vector<double> token_weights(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (int64_t n : counts) {
    CTMLLM_CHECK(n >= 0, "token_weights: a micro-batch's label count must be >= 0, got ", n);
    total += n;
  }
  CTMLLM_CHECK(total > 0, "token_weights: the micro-batches keep no label (every label is -100)");
  std::vector<double> w;
  for (int64_t n : counts) w.push_back(double(n) / double(total));
  return w;
}

// 1 / n for each of n micro-batches.
inline std::vector<double> uniform_weights(int64_t n) {
  CTMLLM_CHECK(n > 0, "uniform_weights: the number of micro-batches must be > 0, got ", n);
  return std::vector<double>(size_t(n), 1.0 / double(n));
}

}  // namespace ctmllm::train
