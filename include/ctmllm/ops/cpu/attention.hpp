#pragma once
// CPU kernels for scaled dot-product attention: a blocked online-softmax forward (flash-attention
// style) and a flash-attention-2 style backward that recomputes the probabilities block by block
// from q, k and the saved logsumexp. Extra memory is O(block²) per thread; no Sq×Sk matrix exists.
//
// The GEMMs run in the accumulation type A (float or double) over Eigen maps of the tensors' rows;
// other element types are converted to A first. Every output row is written by exactly one task,
// and partial sums are always added in the same order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops::impl {

namespace attention_detail {

inline constexpr int64_t kQueryBlock = 64;  // rows of q per task
inline constexpr int64_t kKeyBlock = 256;   // keys per score block: S is 64×256, 64 KB in float

template <class A>
using RowMat = Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class A>
using Block = Eigen::Map<RowMat<A>>;  // a contiguous scratch block
template <class A>
using Rows = Eigen::Map<RowMat<A>, 0, Eigen::OuterStride<>>;  // rows of one head of a tensor
// Scratch memory. Eigen's reductions peel unaligned heads off a row, so the summation order follows
// the address's alignment: a fixed (maximal) alignment keeps results identical across threads and runs.
template <class A>
using Buffer = std::vector<A, Eigen::aligned_allocator<A>>;

// A [B, H, S, D] tensor with unit inner stride seen per (batch, head) as a row-major S×D matrix.
template <class A>
struct Heads {
  A* data;
  int64_t sb, sh, ss, d;
  explicit Heads(const Tensor<A, Cpu>& t)
      : data(t.data()), sb(t.stride(0)), sh(t.stride(1)), ss(t.stride(2)), d(t.size(3)) {}
  Rows<A> rows(int64_t b, int64_t h, int64_t s0, int64_t n) const {
    return Rows<A>(data + b * sb + h * sh + s0 * ss, n, d, Eigen::OuterStride<>(ss));
  }
};

// Which keys each query sees: keep[b, j] != 0 (when a mask is given) and, when causal,
// j <= i + offset with offset = Sk − Sq (causal masking aligned to the end of the keys).
struct Visibility {
  const uint8_t* keep;  // contiguous [B, Sk], or null
  int64_t sk, offset;
  bool causal;

  // One past the last key query i may see.
  int64_t key_end(int64_t i) const { return causal ? std::clamp<int64_t>(i + offset + 1, 0, sk) : sk; }
  // The first query that sees key j.
  int64_t first_query(int64_t j) const { return causal ? std::max<int64_t>(0, j - offset) : 0; }
  bool all_hidden(int64_t b, int64_t j0, int64_t nk) const {
    return keep && std::all_of(keep + b * sk + j0, keep + b * sk + j0 + nk, [](uint8_t m) { return m == 0; });
  }
  // Sets the scores of hidden (query i0 + r, key j0 + c) pairs to −inf.
  template <class A>
  void apply(Block<A>& s, int64_t b, int64_t i0, int64_t j0) const {
    const int64_t nq = s.rows(), nk = s.cols();
    const uint8_t* kp = keep ? keep + b * sk + j0 : nullptr;
    const bool holes = kp && std::find(kp, kp + nk, uint8_t(0)) != kp + nk;
    if (!holes && key_end(i0) >= j0 + nk) return;  // the first row, hence every row, sees the whole block
    const A ninf = -std::numeric_limits<A>::infinity();
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t end = std::clamp<int64_t>(key_end(i0 + r) - j0, 0, nk);
      s.row(r).tail(nk - end).setConstant(ninf);
      if (holes)
        for (int64_t c = 0; c < end; ++c)
          if (kp[c] == 0) s(r, c) = ninf;
    }
  }
};

inline int64_t blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

// out [B, Hq, Sq, Dv] and lse [B, Hq, Sq], both contiguous.
template <class A>
void forward(const Tensor<A, Cpu>& q, const Tensor<A, Cpu>& k, const Tensor<A, Cpu>& v, const Visibility& vis,
             A scale, const Tensor<A, Cpu>& out, const Tensor<A, Cpu>& lse) {
  const int64_t B = q.size(0), Hq = q.size(1), Sq = q.size(2), Dh = q.size(3), Dv = v.size(3);
  const int64_t group = Hq / k.size(1), nqb = blocks(Sq, kQueryBlock);
  const Heads<A> Q(q), K(k), V(v), O(out);
  const A ninf = -std::numeric_limits<A>::infinity();
  parallel_for(0, B * Hq * nqb, 1, [&](int64_t lo, int64_t hi) {
    // Per-thread scratch, allocated once for all of this thread's tasks.
    Buffer<A> qs_buf(size_t(kQueryBlock * Dh)), s_buf(size_t(kQueryBlock * kKeyBlock)), acc_buf(size_t(kQueryBlock * Dv));
    std::vector<A> m(kQueryBlock), l(kQueryBlock);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / (Hq * nqb), h = t / nqb % Hq, i0 = t % nqb * kQueryBlock;
      const int64_t nq = std::min(kQueryBlock, Sq - i0), kvh = h / group;
      Block<A> qs(qs_buf.data(), nq, Dh), acc(acc_buf.data(), nq, Dv);
      qs = scale * Q.rows(b, h, i0, nq);  // scores are then plain dot products
      acc.setZero();
      std::fill_n(m.begin(), nq, ninf);
      std::fill_n(l.begin(), nq, A(0));
      const int64_t kend = vis.key_end(i0 + nq - 1);
      for (int64_t j0 = 0; j0 < kend; j0 += kKeyBlock) {
        const int64_t nk = std::min(kKeyBlock, kend - j0);
        if (vis.all_hidden(b, j0, nk)) continue;
        Block<A> s(s_buf.data(), nq, nk);
        s.noalias() = qs * K.rows(b, kvh, j0, nk).transpose();
        vis.apply(s, b, i0, j0);
        // Online softmax: rescale what was accumulated under the old running max.
        for (int64_t r = 0; r < nq; ++r) {
          auto row = s.row(r).array();
          const A mx = std::max(m[r], row.maxCoeff());
          if (mx == ninf) {  // nothing visible in this row yet
            row.setZero();
            continue;
          }
          const A alpha = std::exp(m[r] - mx);
          row = (row - mx).exp();
          l[r] = l[r] * alpha + row.sum();
          if (alpha != A(1)) acc.row(r) *= alpha;
          m[r] = mx;
        }
        acc.noalias() += s * V.rows(b, kvh, j0, nk);
      }
      auto o = O.rows(b, h, i0, nq);
      A* lse_row = lse.data() + (b * Hq + h) * Sq + i0;
      for (int64_t r = 0; r < nq; ++r) {
        if (m[r] == ninf) {  // no visible key: output 0 by convention
          o.row(r).setZero();
          lse_row[r] = ninf;
        } else {
          o.row(r) = acc.row(r) / l[r];
          lse_row[r] = m[r] + std::log(l[r]);
        }
      }
    }
  });
}

// The softmax of one (query block, key block) pair recomputed from the saved logsumexp, and its
// score gradient: p = exp(s − lse), ds = p ∘ (dO vᵀ − Drow). qs holds scale·q of the block.
template <class A>
void recompute(const Block<A>& qs, const Heads<A>& K, const Heads<A>& V, const Heads<A>& dO, const A* lse,
               const A* drow, const Visibility& vis, int64_t b, int64_t h, int64_t kvh, int64_t i0, int64_t j0,
               Block<A>& p, Block<A>& ds) {
  const int64_t nq = p.rows(), nk = p.cols();
  const A ninf = -std::numeric_limits<A>::infinity();
  p.noalias() = qs * K.rows(b, kvh, j0, nk).transpose();
  vis.apply(p, b, i0, j0);
  for (int64_t r = 0; r < nq; ++r) {
    if (lse[r] == ninf) p.row(r).setZero();
    else p.row(r).array() = (p.row(r).array() - lse[r]).exp();
  }
  ds.noalias() = dO.rows(b, h, i0, nq) * V.rows(b, kvh, j0, nk).transpose();
  for (int64_t r = 0; r < nq; ++r) ds.row(r).array() = p.row(r).array() * (ds.row(r).array() - drow[r]);
}

// dq, dk, dv contiguous, shaped like q, k, v.
template <class A>
void backward(const Tensor<A, Cpu>& dy, const Tensor<A, Cpu>& q, const Tensor<A, Cpu>& k, const Tensor<A, Cpu>& v,
              const Tensor<A, Cpu>& out, const Tensor<A, Cpu>& lse, const Visibility& vis, A scale,
              const Tensor<A, Cpu>& dq, const Tensor<A, Cpu>& dk, const Tensor<A, Cpu>& dv) {
  const int64_t B = q.size(0), Hq = q.size(1), Sq = q.size(2), Dh = q.size(3), Dv = v.size(3);
  const int64_t Hkv = k.size(1), Sk = k.size(2), group = Hq / Hkv;
  const int64_t nqb = blocks(Sq, kQueryBlock), nkb = blocks(Sk, kKeyBlock);
  const Heads<A> Q(q), K(k), V(v), dO(dy), O(out), dQ(dq), dK(dk), dV(dv);
  const A* lse_p = lse.data();

  // Drow[b, h, i] = dO_i · O_i: the softmax backward's row term.
  std::vector<A> drow(size_t(B * Hq * Sq));
  parallel_for(0, B * Hq * Sq, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / (Hq * Sq), h = r / Sq % Hq, i = r % Sq;
      drow[size_t(r)] = dO.rows(b, h, i, 1).cwiseProduct(O.rows(b, h, i, 1)).sum();
    }
  });

  // dk and dv: one task per (batch, kv head, key block), summing over the group's query heads and
  // the query blocks in a fixed order. Recomputing p and ds again for dq below (7 GEMMs per block
  // pair instead of 5) buys deterministic sums without atomics or per-task partial dq buffers.
  parallel_for(0, B * Hkv * nkb, 1, [&](int64_t lo, int64_t hi) {
    Buffer<A> qs_buf(size_t(kQueryBlock * Dh)), p_buf(size_t(kQueryBlock * kKeyBlock)),
        ds_buf(size_t(kQueryBlock * kKeyBlock)), dk_buf(size_t(kKeyBlock * Dh)), dv_buf(size_t(kKeyBlock * Dv));
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / (Hkv * nkb), kvh = t / nkb % Hkv, j0 = t % nkb * kKeyBlock;
      const int64_t nk = std::min(kKeyBlock, Sk - j0);
      Block<A> dka(dk_buf.data(), nk, Dh), dva(dv_buf.data(), nk, Dv);
      dka.setZero();
      dva.setZero();
      if (!vis.all_hidden(b, j0, nk)) {
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          const A* lse_h = lse_p + (b * Hq + h) * Sq;
          const A* drow_h = drow.data() + (b * Hq + h) * Sq;
          for (int64_t i0 = vis.first_query(j0) / kQueryBlock * kQueryBlock; i0 < Sq; i0 += kQueryBlock) {
            const int64_t nq = std::min(kQueryBlock, Sq - i0);
            Block<A> qs(qs_buf.data(), nq, Dh), p(p_buf.data(), nq, nk), ds(ds_buf.data(), nq, nk);
            qs = scale * Q.rows(b, h, i0, nq);
            recompute(qs, K, V, dO, lse_h + i0, drow_h + i0, vis, b, h, kvh, i0, j0, p, ds);
            dva.noalias() += p.transpose() * dO.rows(b, h, i0, nq);
            dka.noalias() += ds.transpose() * qs;  // dK = scale · dSᵀ Q
          }
        }
      }
      dK.rows(b, kvh, j0, nk) = dka;
      dV.rows(b, kvh, j0, nk) = dva;
    }
  });

  // dq: one task per (batch, head, query block), over the visible key blocks in order.
  parallel_for(0, B * Hq * nqb, 1, [&](int64_t lo, int64_t hi) {
    Buffer<A> qs_buf(size_t(kQueryBlock * Dh)), p_buf(size_t(kQueryBlock * kKeyBlock)),
        ds_buf(size_t(kQueryBlock * kKeyBlock)), dq_buf(size_t(kQueryBlock * Dh));
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / (Hq * nqb), h = t / nqb % Hq, i0 = t % nqb * kQueryBlock;
      const int64_t nq = std::min(kQueryBlock, Sq - i0), kvh = h / group;
      const A* lse_h = lse_p + (b * Hq + h) * Sq;
      const A* drow_h = drow.data() + (b * Hq + h) * Sq;
      Block<A> qs(qs_buf.data(), nq, Dh), dqa(dq_buf.data(), nq, Dh);
      qs = scale * Q.rows(b, h, i0, nq);
      dqa.setZero();
      const int64_t kend = vis.key_end(i0 + nq - 1);
      for (int64_t j0 = 0; j0 < kend; j0 += kKeyBlock) {
        const int64_t nk = std::min(kKeyBlock, kend - j0);
        if (vis.all_hidden(b, j0, nk)) continue;
        Block<A> p(p_buf.data(), nq, nk), ds(ds_buf.data(), nq, nk);
        recompute(qs, K, V, dO, lse_h + i0, drow_h + i0, vis, b, h, kvh, i0, j0, p, ds);
        dqa.noalias() += ds * K.rows(b, kvh, j0, nk);
      }
      dQ.rows(b, h, i0, nq) = scale * dqa;  // dQ = scale · dS K
    }
  });
}

}  // namespace attention_detail

// out = softmax(scale · q kᵀ over visible keys) v and lse = the row logsumexps; a row with no
// visible key gets out = 0 and lse = −inf. q [B, Hq, Sq, Dh], k [B, Hkv, Sk, Dh], v [B, Hkv, Sk, Dv]
// with unit inner stride; keep: contiguous uint8 [B, Sk] or undefined; out [B, Hq, Sq, Dv] and
// lse [B, Hq, Sq] contiguous.
template <class T>
void attention_forward(const Tensor<T, Cpu>& q, const Tensor<T, Cpu>& k, const Tensor<T, Cpu>& v,
                       const Tensor<uint8_t, Cpu>& keep, bool causal, double scale, const Tensor<T, Cpu>& out,
                       const Tensor<acc_t<T>, Cpu>& lse) {
  using A = acc_t<T>;
  const attention_detail::Visibility vis{keep.defined() ? keep.data() : nullptr, k.size(2), k.size(2) - q.size(2), causal};
  if constexpr (std::is_same_v<T, A>) {
    attention_detail::forward<A>(q, k, v, vis, A(scale), out, lse);
  } else {
    const Tensor<A, Cpu> o = Tensor<A, Cpu>::empty(out.shape());
    attention_detail::forward<A>(q.template to<A>(), k.template to<A>(), v.template to<A>(), vis, A(scale), o, lse);
    out.copy_from(o);
  }
}

// Gradients of out with respect to q, k and v given dy (dq, dk, dv contiguous, shaped like q, k, v),
// from the forward's out and lse. Same layout rules as attention_forward.
template <class T>
void attention_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& q, const Tensor<T, Cpu>& k,
                        const Tensor<T, Cpu>& v, const Tensor<T, Cpu>& out, const Tensor<acc_t<T>, Cpu>& lse,
                        const Tensor<uint8_t, Cpu>& keep, bool causal, double scale, const Tensor<T, Cpu>& dq,
                        const Tensor<T, Cpu>& dk, const Tensor<T, Cpu>& dv) {
  using A = acc_t<T>;
  const attention_detail::Visibility vis{keep.defined() ? keep.data() : nullptr, k.size(2), k.size(2) - q.size(2), causal};
  if constexpr (std::is_same_v<T, A>) {
    attention_detail::backward<A>(dy, q, k, v, out, lse, vis, A(scale), dq, dk, dv);
  } else {
    const auto up = [](const Tensor<T, Cpu>& t) { return t.template to<A>(); };
    const Tensor<A, Cpu> gq = Tensor<A, Cpu>::empty(dq.shape()), gk = Tensor<A, Cpu>::empty(dk.shape()),
                         gv = Tensor<A, Cpu>::empty(dv.shape());
    attention_detail::backward<A>(up(dy), up(q), up(k), up(v), up(out), lse, vis, A(scale), gq, gk, gv);
    dq.copy_from(gq);
    dk.copy_from(gk);
    dv.copy_from(gv);
  }
}

}  // namespace ctmllm::ops::impl
