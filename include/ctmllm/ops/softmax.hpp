#pragma once
// softmax and log_softmax along any dimension (default the last), numerically stable (the slice
// maximum is subtracted before exp). Any shape of rank ≥ 1; the result is contiguous. The backward
// functions take the forward output y, not x.
#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/softmax.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/softmax.cuh"
#endif

namespace ctmllm::ops {

namespace detail {
// [outer, n, inner] around dimension `dim` of `s`.
struct SoftmaxExtents {
  int64_t outer = 1, n = 1, inner = 1;
};
inline SoftmaxExtents softmax_extents(const Shape& s, int dim, const char* op) {
  const int d = normalize_dim(dim, s.rank(), op);
  SoftmaxExtents e;
  for (int i = 0; i < d; ++i) e.outer *= s[i];
  e.n = s[d];
  for (int i = d + 1; i < s.rank(); ++i) e.inner *= s[i];
  return e;
}

template <class T, class D>
Tensor<T, D> run_softmax(const Tensor<T, D>& x, int dim, bool log, const char* op) {
  CTMLLM_REQUIRE_KERNELS(D, "softmax / log_softmax");
  check_defined(x, op, "x");
  const auto e = softmax_extents(x.shape(), dim, op);
  Tensor<T, D> y = Tensor<T, D>::empty(x.shape());
  impl::softmax_forward(x.contiguous(), y, e.outer, e.n, e.inner, log);
  return y;
}

template <class T, class D>
Tensor<T, D> run_softmax_backward(const Tensor<T, D>& dy, const Tensor<T, D>& y, int dim, bool log, const char* op) {
  CTMLLM_REQUIRE_KERNELS(D, "softmax_backward / log_softmax_backward");
  check_defined(y, op, "y");
  check_defined(dy, op, "dy");
  check_shape(dy, y.shape(), op, "dy");
  const auto e = softmax_extents(y.shape(), dim, op);
  Tensor<T, D> dx = Tensor<T, D>::empty(y.shape());
  impl::softmax_backward(dy.contiguous(), y.contiguous(), dx, e.outer, e.n, e.inner, log);
  return dx;
}
}  // namespace detail

template <class T, class D>
Tensor<T, D> softmax(const Tensor<T, D>& x, int dim = -1) {
  return detail::run_softmax(x, dim, false, "softmax");
}
template <class T, class D>
Tensor<T, D> log_softmax(const Tensor<T, D>& x, int dim = -1) {
  return detail::run_softmax(x, dim, true, "log_softmax");
}

// dx from dy and y = softmax(x, dim).
template <class T, class D>
Tensor<T, D> softmax_backward(const Tensor<T, D>& dy, const Tensor<T, D>& y, int dim = -1) {
  return detail::run_softmax_backward(dy, y, dim, false, "softmax_backward");
}
// dx from dy and y = log_softmax(x, dim).
template <class T, class D>
Tensor<T, D> log_softmax_backward(const Tensor<T, D>& dy, const Tensor<T, D>& y, int dim = -1) {
  return detail::run_softmax_backward(dy, y, dim, true, "log_softmax_backward");
}

}  // namespace ctmllm::ops
