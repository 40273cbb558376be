#pragma once
// cross_entropy(logits [..., C], targets int64 [...], ignore_index): the mean over kept targets of
// -log softmax(logits)[target], as F.cross_entropy with reduction="mean" (the Hugging Face causal-LM
// loss after the shift). With no kept target the loss and its gradient are 0 (PyTorch gives nan).
// A target outside [0, C) that is not ignore_index is an Error naming the value and its index (on
// the GPU a check that reads a flag back, skipped under a graph capture or in an
// IndicesCheckedByCaller scope, ops/caller_checked_indices.hpp, where the loss and that row's
// gradient are NaN instead).
#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/loss.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/loss.cuh"
#endif

namespace ctmllm::ops {

namespace detail {
template <class T, class D>
void check_cross_entropy_args(const Tensor<T, D>& logits, const Tensor<int64_t, D>& targets, const char* op) {
  check_defined(logits, op, "logits");
  check_defined(targets, op, "targets");
  CTMLLM_CHECK(logits.rank() >= 1 && logits.shape().back() > 0, op,
               ": logits must be [..., C] with C > 0 classes, got ", logits.describe());
  Shape rows = logits.shape();
  rows.erase(rows.rank() - 1);
  CTMLLM_CHECK(targets.shape() == rows, op, ": targets must have shape ", rows, " (logits ", logits.describe(),
               " without the class dimension), got ", targets.describe());
}
}  // namespace detail

template <class T, class D>
struct CrossEntropyResult {
  Tensor<T, D> loss;        // [1]
  Tensor<acc_t<T>, D> lse;  // [...] (targets' shape): log Σ_c exp(logits), 0 on ignored rows
};

template <class T, class D>
CrossEntropyResult<T, D> cross_entropy(const Tensor<T, D>& logits, const Tensor<int64_t, D>& targets,
                                       int64_t ignore_index = -100) {
  CTMLLM_REQUIRE_KERNELS(D, "cross_entropy");
  detail::check_cross_entropy_args(logits, targets, "cross_entropy");
  CrossEntropyResult<T, D> r{Tensor<T, D>::empty({1}), Tensor<acc_t<T>, D>::empty(targets.shape())};
  impl::cross_entropy_forward(logits.contiguous(), targets.contiguous(), ignore_index, r.loss, r.lse);
  return r;
}

// dlogits = (softmax(logits) - onehot(targets)) * dloss / n_kept, from the forward's lse.
template <class T, class D>
Tensor<T, D> cross_entropy_backward(const Tensor<T, D>& dloss, const Tensor<T, D>& logits,
                                    const Tensor<int64_t, D>& targets, const Tensor<acc_t<T>, D>& lse,
                                    int64_t ignore_index = -100) {
  CTMLLM_REQUIRE_KERNELS(D, "cross_entropy_backward");
  detail::check_cross_entropy_args(logits, targets, "cross_entropy_backward");
  check_defined(dloss, "cross_entropy_backward", "dloss");
  CTMLLM_CHECK(dloss.numel() == 1, "cross_entropy_backward: dloss must hold one element, got ", dloss.describe());
  check_defined(lse, "cross_entropy_backward", "lse");
  check_shape(lse, targets.shape(), "cross_entropy_backward", "lse");
  Tensor<T, D> dlogits = Tensor<T, D>::empty(logits.shape());
  impl::cross_entropy_backward(dloss, logits.contiguous(), targets.contiguous(), lse.contiguous(), ignore_index, dlogits);
  return dlogits;
}

}  // namespace ctmllm::ops
