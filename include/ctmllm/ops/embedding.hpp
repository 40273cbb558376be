#pragma once
// embedding(weight [V, H], ids int64 [...]) -> [..., H]: row lookup, as F.embedding. An id outside
// [0, V) is an Error naming the id and V (on the GPU, unless the caller checked the ids:
// ops/caller_checked_indices.hpp, or under a graph capture; such an id's row is then zeros). The
// backward is a deterministic scatter-add into a dense dweight [V, H]; on the GPU it checks the ids
// the same way and, unchecked, leaves out a bad id's tokens.
#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/embedding.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/embedding.cuh"
#endif

namespace ctmllm::ops {

template <class T, class D>
Tensor<T, D> embedding(const Tensor<T, D>& weight, const Tensor<int64_t, D>& ids) {
  CTMLLM_REQUIRE_KERNELS(D, "embedding");
  check_defined(weight, "embedding", "weight");
  check_defined(ids, "embedding", "ids");
  check_rank(weight, 2, "embedding", "weight");
  CTMLLM_CHECK(ids.rank() < kMaxRank, "embedding: ids ", ids.describe(), " leave no room for the hidden dimension");
  Shape out = ids.shape();
  out.push_back(weight.size(1));
  Tensor<T, D> y = Tensor<T, D>::empty(out);
  impl::embedding_forward(weight.contiguous(), ids.contiguous(), y);
  return y;
}

// dweight [num_embeddings, H] from dy [..., H] (ids' shape plus H).
template <class T, class D>
Tensor<T, D> embedding_backward(const Tensor<T, D>& dy, const Tensor<int64_t, D>& ids, int64_t num_embeddings) {
  CTMLLM_REQUIRE_KERNELS(D, "embedding_backward");
  check_defined(dy, "embedding_backward", "dy");
  check_defined(ids, "embedding_backward", "ids");
  CTMLLM_CHECK(num_embeddings >= 0, "embedding_backward: num_embeddings must be non-negative, got ", num_embeddings);
  CTMLLM_CHECK(dy.rank() == ids.rank() + 1, "embedding_backward: dy must be ids' shape ", ids.shape(),
               " plus the hidden dimension, got ", dy.describe());
  Shape expect = ids.shape();
  expect.push_back(dy.shape().back());
  check_shape(dy, expect, "embedding_backward", "dy");
  Tensor<T, D> dweight = Tensor<T, D>::empty({num_embeddings, dy.shape().back()});
  impl::embedding_backward(dy.contiguous(), ids.contiguous(), dweight);
  return dweight;
}

}  // namespace ctmllm::ops
