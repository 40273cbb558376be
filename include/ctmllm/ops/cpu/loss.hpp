#pragma once
// CPU kernels for cross_entropy over the last dimension: logits [N, C] and targets [N] (int64)
// contiguous. The forward saves one logsumexp per row, never a softmax copy: vocabularies are up to
// 128k wide, so backward recomputes exp(x - lse) in the same pass that writes dlogits.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cpu/row_exp.hpp"

namespace ctmllm::ops::impl {

// Number of targets that are not ignore_index; any other target outside [0, C) is an Error naming
// the first such value and its row-major index (checked serially, so the message is deterministic).
inline int64_t cross_entropy_kept(const Tensor<int64_t, Cpu>& targets, int64_t C, int64_t ignore_index, const char* op) {
  const int64_t* t = targets.data();
  int64_t kept = 0;
  for (int64_t i = 0; i < targets.numel(); ++i) {
    if (t[i] == ignore_index) continue;
    CTMLLM_CHECK(t[i] >= 0 && t[i] < C, op, ": target ", t[i], " at index ", i, " (row-major) of targets ",
                 targets.describe(), " is outside [0, ", C, ") and is not ignore_index ", ignore_index);
    ++kept;
  }
  return kept;
}

// loss[0] = mean over kept rows of (lse - x[target]), lse = log Σ exp(x); lse[r] is written for every
// row (0 for ignored ones). With no kept target the loss is 0, not PyTorch's 0/0 = nan: a batch
// whose labels are all masked (a prompt-only chunk) must not poison the accumulated gradients.
template <class T>
void cross_entropy_forward(const Tensor<T, Cpu>& logits, const Tensor<int64_t, Cpu>& targets, int64_t ignore_index,
                           const Tensor<T, Cpu>& loss, const Tensor<acc_t<T>, Cpu>& lse) {
  using A = acc_t<T>;
  const int64_t C = logits.shape().back(), N = targets.numel();
  const int64_t kept = cross_entropy_kept(targets, C, ignore_index, "cross_entropy");
  const T* px = logits.data();
  const int64_t* pt = targets.data();
  A* plse = lse.data();
  std::vector<A> row_loss(size_t(N), A(0));
  parallel_for(0, N, std::max<int64_t>(1, 8192 / C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      if (pt[r] == ignore_index) {
        plse[r] = 0;
        continue;
      }
      const T* xr = px + r * C;
      A m = -std::numeric_limits<A>::infinity();
#pragma omp simd reduction(max : m)
      for (int64_t c = 0; c < C; ++c) m = std::max(m, A(xr[c]));
      plse[r] = m + std::log(sum_exp(xr, C, m));
      row_loss[size_t(r)] = plse[r] - A(xr[pt[r]]);
    }
  });
  double total = 0;  // rows in order, in double: the same sum for every thread count
  for (int64_t r = 0; r < N; ++r) total += double(row_loss[size_t(r)]);
  loss.data()[0] = cast<T>(kept ? total / double(kept) : 0.0);
}

// dlogits = (softmax(x) - onehot(target)) * dloss / n_kept on kept rows, 0 on ignored rows.
template <class T>
void cross_entropy_backward(const Tensor<T, Cpu>& dloss, const Tensor<T, Cpu>& logits,
                            const Tensor<int64_t, Cpu>& targets, const Tensor<acc_t<T>, Cpu>& lse, int64_t ignore_index,
                            const Tensor<T, Cpu>& dlogits) {
  using A = acc_t<T>;
  const int64_t C = logits.shape().back(), N = targets.numel();
  const int64_t kept = cross_entropy_kept(targets, C, ignore_index, "cross_entropy_backward");
  const A scale = kept ? A(dloss.item()) / A(kept) : A(0);
  const T* px = logits.data();
  const int64_t* pt = targets.data();
  const A* plse = lse.data();
  T* pg = dlogits.data();
  parallel_for(0, N, std::max<int64_t>(1, 8192 / C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      T* gr = pg + r * C;
      if (pt[r] == ignore_index) {
        std::fill_n(gr, C, cast<T>(0));
        continue;
      }
      const T* xr = px + r * C;
      const A l = plse[r];
      const int64_t t = pt[r];
      exp_shifted(xr, gr, C, l, scale);
      gr[t] = cast<T>((std::exp(A(xr[t]) - l) - A(1)) * scale);
    }
  });
}

}  // namespace ctmllm::ops::impl
