#pragma once
// Scaled dot-product attention over [batch, heads, seq, head_dim] tensors:
//   out = softmax(scale · q kᵀ over the visible keys) v,
// with grouped key/value heads (MHA, GQA, MQA: query head h reads kv head h / (Hq / Hkv)), an
// optional key keep mask [batch, Sk] (padding) and causal masking aligned to the end of the keys:
// query i of Sq sees keys j <= i + (Sk − Sq), so a decode step over a KV cache (Sq < Sk) sees the
// whole cache. A query that sees no key at all gets out = 0 (PyTorch's softmax would give NaN).
// The forward also returns the row logsumexps, which the backward uses to recompute the softmax
// blockwise instead of keeping an Sq×Sk matrix.
#include <cmath>
#include <optional>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/attention.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/attention.cuh"
#endif

namespace ctmllm::ops {

template <class D = Cpu>
struct AttentionOptions {
  bool causal = false;
  std::optional<double> scale = std::nullopt;  // 1 / sqrt(head_dim) when not given
  Tensor<uint8_t, D> key_keep_mask = {};  // [batch, Sk], nonzero = attend; undefined = every key
};

template <class T, class D>
struct AttentionResult {
  Tensor<T, D> out;  // [B, Hq, Sq, Dv]
  Tensor<acc_t<T>, D> lse;  // [B, Hq, Sq]: log Σ_visible j exp(scale · q_i·k_j); −inf where nothing is visible
};

template <class T, class D>
struct AttentionGrads {
  Tensor<T, D> dq, dk, dv;
};

namespace detail {
// Validates q, k, v and the options for `op`; returns the scale.
template <class T, class D>
double check_attention(const char* op, const Tensor<T, D>& q, const Tensor<T, D>& k, const Tensor<T, D>& v,
                       const AttentionOptions<D>& o) {
  check_defined(q, op, "q");
  check_defined(k, op, "k");
  check_defined(v, op, "v");
  check_rank(q, 4, op, "q");
  check_rank(k, 4, op, "k");
  check_rank(v, 4, op, "v");
  CTMLLM_CHECK(k.size(0) == q.size(0) && k.size(3) == q.size(3), op, ": k ", k.describe(),
               " must match q ", q.describe(), " in batch and head_dim");
  CTMLLM_CHECK(v.size(0) == k.size(0) && v.size(1) == k.size(1) && v.size(2) == k.size(2), op, ": v ", v.describe(),
               " must match k ", k.describe(), " in batch, heads and keys");
  CTMLLM_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, op, ": the ", q.size(1), " query heads of q ", q.describe(),
               " are not a multiple of the ", k.size(1), " kv heads of k ", k.describe());
  CTMLLM_CHECK(q.size(3) > 0, op, ": q ", q.describe(), " has an empty head_dim");
  if (o.key_keep_mask.defined()) check_shape(o.key_keep_mask, Shape{q.size(0), k.size(2)}, op, "key_keep_mask");
  const double scale = o.scale.value_or(1.0 / std::sqrt(double(q.size(3))));
  CTMLLM_CHECK(std::isfinite(scale), op, ": scale must be finite, got ", scale);
  return scale;
}

// The kernels take any outer strides (a [B, S, H, D] projection permuted to [B, H, S, D] is read in
// place) but need unit-stride, non-overlapping rows.
template <class T, class D>
Tensor<T, D> unit_rows(const Tensor<T, D>& t) {
  return t.stride(3) == 1 && t.stride(2) >= t.size(3) ? t : t.contiguous();
}
template <class D>
Tensor<uint8_t, D> keep_mask(const AttentionOptions<D>& o) {
  return o.key_keep_mask.defined() ? o.key_keep_mask.contiguous() : Tensor<uint8_t, D>();
}
}  // namespace detail

template <class T, class D>
AttentionResult<T, D> attention(const Tensor<T, D>& q, const Tensor<T, D>& k, const Tensor<T, D>& v,
                                const AttentionOptions<D>& opts = {}) {
  CTMLLM_REQUIRE_KERNELS(D, "attention");
  const double scale = detail::check_attention("attention", q, k, v, opts);
  AttentionResult<T, D> r{Tensor<T, D>::empty({q.size(0), q.size(1), q.size(2), v.size(3)}),
                          Tensor<acc_t<T>, D>::empty({q.size(0), q.size(1), q.size(2)})};
  impl::attention_forward(detail::unit_rows(q), detail::unit_rows(k), detail::unit_rows(v), detail::keep_mask(opts),
                          opts.causal, scale, r.out, r.lse);
  return r;
}

// Gradients with respect to q, k and v given dy [B, Hq, Sq, Dv] and the forward's result; the kv
// heads' gradients sum over the query heads that share them.
template <class T, class D>
AttentionGrads<T, D> attention_backward(const Tensor<T, D>& dy, const Tensor<T, D>& q, const Tensor<T, D>& k,
                                        const Tensor<T, D>& v, const AttentionResult<T, D>& fwd,
                                        const AttentionOptions<D>& opts = {}) {
  CTMLLM_REQUIRE_KERNELS(D, "attention_backward");
  const double scale = detail::check_attention("attention_backward", q, k, v, opts);
  const Shape out_shape{q.size(0), q.size(1), q.size(2), v.size(3)};
  check_shape(dy, out_shape, "attention_backward", "dy");
  check_shape(fwd.out, out_shape, "attention_backward", "out");
  check_shape(fwd.lse, Shape{q.size(0), q.size(1), q.size(2)}, "attention_backward", "lse");
  AttentionGrads<T, D> g{Tensor<T, D>::empty(q.shape()), Tensor<T, D>::empty(k.shape()), Tensor<T, D>::empty(v.shape())};
  impl::attention_backward(detail::unit_rows(dy), detail::unit_rows(q), detail::unit_rows(k), detail::unit_rows(v),
                           detail::unit_rows(fwd.out), fwd.lse.contiguous(), detail::keep_mask(opts), opts.causal, scale,
                           g.dq, g.dk, g.dv);
  return g;
}

}  // namespace ctmllm::ops
