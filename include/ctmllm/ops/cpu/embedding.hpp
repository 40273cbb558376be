#pragma once
// CPU kernels for embedding: a row gather (forward) and a scatter-add of the output gradient rows
// (backward). weight / dweight [V, H], ids [N] (int64), y / dy [N, H], all contiguous.
#include <algorithm>
#include <cstring>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops::impl {

// Every id must lie in [0, V); the first one that does not is an Error naming it, its row-major
// index and V (checked serially, so the message is deterministic).
inline void check_embedding_ids(const Tensor<int64_t, Cpu>& ids, int64_t V, const char* op) {
  const int64_t* p = ids.data();
  for (int64_t i = 0; i < ids.numel(); ++i)
    CTMLLM_CHECK(p[i] >= 0 && p[i] < V, op, ": id ", p[i], " at index ", i, " (row-major) of ids ", ids.describe(),
                 " is outside [0, ", V, ") for an embedding table of ", V, " rows");
}

// y[n] = weight[ids[n]]
template <class T>
void embedding_forward(const Tensor<T, Cpu>& weight, const Tensor<int64_t, Cpu>& ids, const Tensor<T, Cpu>& y) {
  const int64_t V = weight.size(0), H = weight.size(1);
  check_embedding_ids(ids, V, "embedding");
  const T* w = weight.data();
  const int64_t* p = ids.data();
  T* out = y.data();
  parallel_for(0, ids.numel(), std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) std::memcpy(out + n * H, w + p[n] * H, size_t(H) * sizeof(T));
  });
}

// dweight = 0, then dweight[ids[n]] += dy[n] for n in order. Threads split the hidden dimension, not
// the tokens: each element is summed by one thread in token order, so repeated ids give the same
// result for every thread count, with no atomics.
template <class T>
void embedding_backward(const Tensor<T, Cpu>& dy, const Tensor<int64_t, Cpu>& ids, const Tensor<T, Cpu>& dweight) {
  using A = acc_t<T>;
  const int64_t V = dweight.size(0), H = dweight.size(1), N = ids.numel();
  check_embedding_ids(ids, V, "embedding_backward");
  const T* g = dy.data();
  const int64_t* p = ids.data();
  T* dw = dweight.data();
  parallel_for(0, V * H, 65536, [&](int64_t lo, int64_t hi) { std::fill(dw + lo, dw + hi, cast<T>(0)); });
  parallel_for(0, H, 64, [&](int64_t h0, int64_t h1) {
    for (int64_t n = 0; n < N; ++n) {
      T* d = dw + p[n] * H;
      const T* s = g + n * H;
      for (int64_t h = h0; h < h1; ++h) d[h] = cast<T>(A(d[h]) + A(s[h]));
    }
  });
}

}  // namespace ctmllm::ops::impl
