#pragma once
// Matrix products: matmul (torch.matmul for rank >= 2: [..., M, K] × [..., K, N] with broadcast batch
// dimensions; transpose_a / transpose_b use an operand's last two dimensions swapped, at no cost)
// and linear (F.linear: x [..., in] · w [out, in]ᵀ + b [out], b optional), each with its backward.
// Results are contiguous; inputs may have any strides.
#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/matmul.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/matmul.cuh"
#endif
#include "ctmllm/ops/reduce.hpp"

namespace ctmllm::ops {

namespace matmul_impl {

// s without its last `n` dimensions.
inline Shape drop_last(Shape s, int n) {
  for (int i = 0; i < n; ++i) s.erase(s.rank() - 1);
  return s;
}
// The operand as the product uses it: last two dimensions swapped when transposed (a view).
template <class T, class D>
Tensor<T, D> as_used(const Tensor<T, D>& t, bool transpose) {
  return transpose ? t.transpose(-1, -2) : t;
}

}  // namespace matmul_impl

template <class T, class D>
Tensor<T, D> matmul(const Tensor<T, D>& a, const Tensor<T, D>& b, bool transpose_a = false, bool transpose_b = false) {
  CTMLLM_REQUIRE_KERNELS(D, "matmul");
  using matmul_impl::drop_last;
  check_defined(a, "matmul", "a");
  check_defined(b, "matmul", "b");
  CTMLLM_CHECK(a.rank() >= 2, "matmul: a must have rank >= 2, got ", a.describe());
  CTMLLM_CHECK(b.rank() >= 2, "matmul: b must have rank >= 2, got ", b.describe());
  const Tensor<T, D> A = matmul_impl::as_used(a, transpose_a), B = matmul_impl::as_used(b, transpose_b);
  const int64_t m = A.size(-2), k = A.size(-1), n = B.size(-1);
  CTMLLM_CHECK(B.size(-2) == k, "matmul: inner dimensions differ: a ", a.describe(), transpose_a ? " transposed" : "",
               " against b ", b.describe(), transpose_b ? " transposed" : "");
  Shape shape = broadcast_shapes(drop_last(a.shape(), 2), drop_last(b.shape(), 2), "matmul (batch dimensions)");
  const Shape batch = shape;
  shape.push_back(m);
  shape.push_back(n);
  Tensor<T, D> y = Tensor<T, D>::empty(shape);
  if (y.numel() == 0) return y;
  if (drop_last(b.shape(), 2).numel() == 1 && !transpose_a) {
    // One b for the whole batch: a's rows stack into one matrix, and one GEMM does it all.
    impl::matmul(A.reshape({batch.numel() * m, k}), B.reshape({k, n}), y.reshape({batch.numel() * m, n}));
    return y;
  }
  Shape as = batch, bs = batch;
  as.push_back(m);
  as.push_back(k);
  bs.push_back(k);
  bs.push_back(n);
  impl::matmul(A.expand(as), B.expand(bs), y);
  return y;
}

template <class T, class D>
struct MatmulGrads {
  Tensor<T, D> da, db;  // undefined when not requested
};

// Gradients of y = matmul(a, b, transpose_a, transpose_b) given dy, each summed over the batch
// dimensions its operand was broadcast along.
template <class T, class D>
MatmulGrads<T, D> matmul_backward(const Tensor<T, D>& dy, const Tensor<T, D>& a, const Tensor<T, D>& b,
                                  bool transpose_a = false, bool transpose_b = false, bool need_da = true,
                                  bool need_db = true) {
  CTMLLM_REQUIRE_KERNELS(D, "matmul_backward");
  check_defined(dy, "matmul_backward", "dy");
  CTMLLM_CHECK(a.rank() >= 2 && b.rank() >= 2, "matmul_backward: a ", a.describe(), " and b ", b.describe(),
               " must have rank >= 2");
  {
    const Tensor<T, D> A = matmul_impl::as_used(a, transpose_a), B = matmul_impl::as_used(b, transpose_b);
    CTMLLM_CHECK(A.size(-1) == B.size(-2), "matmul_backward: inner dimensions differ: a ", a.describe(), " against b ",
                 b.describe());
    Shape shape = broadcast_shapes(matmul_impl::drop_last(a.shape(), 2), matmul_impl::drop_last(b.shape(), 2),
                                   "matmul_backward (batch dimensions)");
    shape.push_back(A.size(-2));
    shape.push_back(B.size(-1));
    check_shape(dy, shape, "matmul_backward", "dy");
  }
  // With A = op(a), B = op(b): dA = dy·Bᵀ and dB = Aᵀ·dy; a transposed operand gets the transpose,
  // computed directly as (dA)ᵀ = B·dyᵀ and (dB)ᵀ = dyᵀ·A.
  MatmulGrads<T, D> g;
  if (need_da) {
    const Tensor<T, D> full = transpose_a ? matmul(b, dy, transpose_b, true) : matmul(dy, b, false, !transpose_b);
    g.da = sum_to_shape(full, a.shape());
  }
  if (need_db) {
    if (matmul_impl::drop_last(b.shape(), 2).numel() == 1 && !transpose_a) {
      // b shared by the batch: stack the batch into rows so one GEMM does the sum over it.
      const int64_t rows = matmul_impl::drop_last(a.shape(), 1).numel();
      const Tensor<T, D> a2 = a.reshape({rows, a.size(-1)}), dy2 = dy.reshape({rows, dy.size(-1)});
      g.db = (transpose_b ? matmul(dy2, a2, true, false) : matmul(a2, dy2, true, false)).reshape(b.shape());
    } else {
      const Tensor<T, D> full = transpose_b ? matmul(dy, a, true, transpose_a) : matmul(a, dy, !transpose_a, false);
      g.db = sum_to_shape(full, b.shape());
    }
  }
  return g;
}

// y = x·wᵀ + b: x [..., in], w [out, in], b [out] or undefined (no bias); y [..., out].
template <class T, class D>
Tensor<T, D> linear(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& b = Tensor<T, D>()) {
  CTMLLM_REQUIRE_KERNELS(D, "linear");
  check_defined(x, "linear", "x");
  check_defined(w, "linear", "w");
  check_rank(w, 2, "linear", "w");
  CTMLLM_CHECK(x.rank() >= 1 && x.size(-1) == w.size(1), "linear: x ", x.describe(), " does not match w ", w.describe(),
               " (x's last dimension must be in_features = w.size(1))");
  if (b.defined()) check_shape(b, Shape{w.size(0)}, "linear", "b");
  Shape shape = x.shape();
  shape[shape.rank() - 1] = w.size(0);
  Tensor<T, D> y = Tensor<T, D>::empty(shape);
  const int64_t rows = matmul_impl::drop_last(x.shape(), 1).numel();
  impl::linear(x.reshape({rows, w.size(1)}), w, b, y.reshape({rows, w.size(0)}));
  return y;
}

template <class T, class D>
struct LinearGrads {
  Tensor<T, D> dx, dw, db;  // undefined when not requested
};

// Gradients of y = linear(x, w, b) given dy [..., out]: dx [..., in], dw [out, in], db [out]. Only
// dw reads x: without need_dw, x may be undefined (a frozen weight's layer need not keep its input).
template <class T, class D>
LinearGrads<T, D> linear_backward(const Tensor<T, D>& dy, const Tensor<T, D>& x, const Tensor<T, D>& w,
                                  bool need_dx = true, bool need_dw = true, bool need_db = true) {
  CTMLLM_REQUIRE_KERNELS(D, "linear_backward");
  check_defined(dy, "linear_backward", "dy");
  if (need_dw) check_defined(x, "linear_backward", "x");
  check_defined(w, "linear_backward", "w");
  check_rank(w, 2, "linear_backward", "w");
  CTMLLM_CHECK(dy.rank() >= 1 && dy.size(-1) == w.size(0), "linear_backward: dy ", dy.describe(), " does not match w ",
               w.describe());
  Shape x_shape = dy.shape();
  x_shape[x_shape.rank() - 1] = w.size(1);
  if (x.defined()) check_shape(x, x_shape, "linear_backward", "x");
  const int64_t rows = matmul_impl::drop_last(dy.shape(), 1).numel(), in = w.size(1), out = w.size(0);
  LinearGrads<T, D> g;
  if (need_dx) g.dx = Tensor<T, D>::empty(x_shape);
  if (need_dw) g.dw = Tensor<T, D>::empty(w.shape());
  if (need_db) g.db = Tensor<T, D>::empty(Shape{out});
  impl::linear_backward(dy.reshape({rows, out}), need_dw ? x.reshape({rows, in}) : Tensor<T, D>(), w,
                        need_dx ? g.dx.reshape({rows, in}) : Tensor<T, D>(), g.dw, g.db);
  return g;
}

}  // namespace ctmllm::ops
