#pragma once
// Matrix products on the GPU (the Tensor<T, Cuda> overloads of ops/cpu/matmul.hpp): batched matmul
// over strided, broadcast operands and linear with its backward, all through cuBLASLt (gemm.cuh).
// Batch dimensions that fold into one stride per operand become one strided-batched call; the rest
// (say an operand broadcast along one batch dimension but not the next) loop on the host.
#include <array>
#include <cstdint>

#include "ctmllm/ops/cpu/matmul.hpp"
#include "ctmllm/ops/cuda/gemm.cuh"
#include "ctmllm/ops/cuda/reduce.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// t itself when cuBLASLt can read its trailing two dimensions in place, else a contiguous copy.
template <class T>
Tensor<T, Cuda> readable_or_copy(const Tensor<T, Cuda>& t) {
  const int r = t.rank();
  return layout_of(t.size(r - 2), t.size(r - 1), t.stride(r - 2), t.stride(r - 1)) ? t : t.contiguous();
}

template <class T>
Mat<T> mat_of(const Tensor<T, Cuda>& t, int64_t offset, int64_t batch_stride) {
  const int r = t.rank();
  return Mat<T>{t.data() + offset, t.size(r - 2), t.size(r - 1), t.stride(r - 2), t.stride(r - 1), batch_stride};
}

}  // namespace cuda_impl

namespace impl {

// c [batch..., m, n] (contiguous) = a [batch..., m, k] · b [batch..., k, n], operands expanded to
// c's batch shape with any strides.
template <class T>
void matmul(const Tensor<T, Cuda>& a_in, const Tensor<T, Cuda>& b_in, const Tensor<T, Cuda>& c) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "matmul");
  const int r = c.rank();
  const int64_t m = c.size(r - 2), n = c.size(r - 1), k = a_in.size(r - 1);
  if (c.numel() == 0) return;
  if (k == 0) {  // an empty sum: zeros (all-zero bits are 0 in every float type)
    CTMLLM_CUDA_CHECK(cudaMemsetAsync(c.data(), 0, size_t(c.numel()) * sizeof(T), cuda::current_stream()));
    return;
  }
  const Tensor<T, Cuda> a = cuda_impl::readable_or_copy(a_in), b = cuda_impl::readable_or_copy(b_in);
  // Fold batch dimensions, innermost first, while each operand keeps one stride across them.
  int split = r - 2;
  int64_t count = 1, sa = 0, sb = 0;
  while (split > 0) {
    const int d = split - 1;
    const int64_t z = c.size(d);
    if (z != 1) {
      if (count == 1) {
        sa = a.stride(d);
        sb = b.stride(d);
      } else if (a.stride(d) != sa * count || b.stride(d) != sb * count) {
        break;
      }
      count *= z;
    }
    --split;
  }
  // Host loop over the batch dimensions [0, split) that did not fold.
  Shape outer;
  for (int d = 0; d < split; ++d) outer.push_back(c.size(d));
  for (int64_t o = 0; o < outer.numel(); ++o) {
    int64_t oa = 0, ob = 0, rest = o;
    for (int d = split - 1; d >= 0; --d) {
      const int64_t i = rest % outer[d];
      rest /= outer[d];
      oa += i * a.stride(d);
      ob += i * b.stride(d);
    }
    cuda_impl::lt_matmul(cuda_impl::mat_of(a, oa, sa), cuda_impl::mat_of(b, ob, sb), c.data() + o * count * m * n, count,
                         m * n, static_cast<const T*>(nullptr));
  }
}

// y [n, out] (contiguous) = x [n, in] · wᵀ (+ b [out]); any strides.
template <class T>
void linear(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& w, const Tensor<T, Cuda>& b, const Tensor<T, Cuda>& y) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "linear");
  const int64_t rows = y.size(0), out = y.size(1);
  if (y.numel() == 0) return;
  Tensor<T, Cuda> bias = b.defined() ? b.contiguous() : b;
  // cuBLASLt's alignment preferences cover A-D, not the epilogue's bias, and its kernels may assume a
  // 16-byte aligned bias: a bias sliced from a packed one (TokenPacker3D's in_proj) gets its own copy.
  if (bias.defined() && reinterpret_cast<uintptr_t>(bias.data()) % 16 != 0) bias = bias.clone();
  if (x.size(1) == 0) {  // no inputs: y is the bias (or zeros)
    if (bias.defined()) broadcast_scaled(bias.expand(y.shape()), 1.0f, y);
    else CTMLLM_CUDA_CHECK(cudaMemsetAsync(y.data(), 0, size_t(y.numel()) * sizeof(T), cuda::current_stream()));
    return;
  }
  const Tensor<T, Cuda> xm = cuda_impl::readable_or_copy(x), wt = cuda_impl::readable_or_copy(w.transpose(0, 1));
  cuda_impl::lt_matmul(cuda_impl::mat_of(xm, 0, 0), cuda_impl::mat_of(wt, 0, 0), y.data(), 1, rows * out,
                       bias.defined() ? bias.data() : nullptr);
}

// dx = dy·w [n, in], dw = dyᵀ·x [out, in], db = Σ_rows dy [out]: each only when defined
// (contiguous). dy [n, out], x [n, in], w [out, in]: any strides.
template <class T>
void linear_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& w,
                     const Tensor<T, Cuda>& dx, const Tensor<T, Cuda>& dw, const Tensor<T, Cuda>& db) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "linear_backward");
  if (dx.defined()) matmul(dy, w, dx);
  if (dw.defined()) matmul(dy.transpose(0, 1), x, dw);
  if (db.defined()) {
    std::array<bool, kMaxRank> rows{};
    rows[0] = true;
    sum(dy, rows, 1.0f, db);
  }
}

}  // namespace impl
}  // namespace ctmllm::ops
