#pragma once
// Reductions: sum and mean over a list of dimensions (keepdim as in PyTorch) or over all elements
// (a rank-0 result), max/argmax along one dimension (values + int64 indices), and sum_to_shape, the
// gradient of broadcasting. Results are contiguous; inputs may have any strides.
#include <array>
#include <vector>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/reduce.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/max.cuh"
#include "ctmllm/ops/cuda/reduce.cuh"
#endif

namespace ctmllm::ops {

// Which dimensions of a rank-`rank` tensor `dims` names (negative counts from the end); dims must be
// non-empty and free of repeats.
inline std::array<bool, kMaxRank> reduce_mask(const std::vector<int>& dims, int rank, const char* op) {
  CTMLLM_CHECK(!dims.empty(), op, ": no dimensions given (reduce over all elements with the overload without dims)");
  std::array<bool, kMaxRank> mask{};
  for (int d : dims) {
    const int n = normalize_dim(d, rank, op);
    CTMLLM_CHECK(!mask[n], op, ": dimension ", d, " given twice");
    mask[n] = true;
  }
  return mask;
}

// `s` with the masked dimensions removed, or kept as 1 when keepdim.
inline Shape reduced_shape(const Shape& s, const std::array<bool, kMaxRank>& mask, bool keepdim) {
  Shape out;
  for (int d = 0; d < s.rank(); ++d) {
    if (!mask[d]) out.push_back(s[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

namespace reduce_impl {

// Product of the extents s[lo], ..., s[hi - 1].
inline int64_t extent(const Shape& s, int lo, int hi) {
  int64_t n = 1;
  for (int d = lo; d < hi; ++d) n *= s[d];
  return n;
}

template <class T, class D>
Tensor<T, D> sum_or_mean(const Tensor<T, D>& x, const std::array<bool, kMaxRank>& mask, bool keepdim, bool mean) {
  CTMLLM_REQUIRE_KERNELS(D, "sum / mean");
  int64_t count = 1;
  for (int d = 0; d < x.rank(); ++d)
    if (mask[d]) count *= x.size(d);
  Tensor<T, D> y = Tensor<T, D>::empty(reduced_shape(x.shape(), mask, keepdim));
  impl::sum(x, mask, mean ? acc_t<T>(1) / acc_t<T>(count) : acc_t<T>(1), y);
  return y;
}

// dx (x_shape) = scale · dy broadcast back over the reduced dimensions.
template <class T, class D>
Tensor<T, D> sum_or_mean_backward(const Tensor<T, D>& dy, const Shape& x_shape, const std::array<bool, kMaxRank>& mask,
                                  bool keepdim, bool mean, const char* op) {
  CTMLLM_REQUIRE_KERNELS(D, "sum_backward / mean_backward");
  check_shape(dy, reduced_shape(x_shape, mask, keepdim), op, "dy");
  int64_t count = 1;
  for (int d = 0; d < x_shape.rank(); ++d)
    if (mask[d]) count *= x_shape[d];
  const Tensor<T, D> dy_keep = dy.reshape(reduced_shape(x_shape, mask, true));
  Tensor<T, D> dx = Tensor<T, D>::empty(x_shape);
  impl::broadcast_scaled(dy_keep.expand(x_shape), mean ? acc_t<T>(1) / acc_t<T>(count) : acc_t<T>(1), dx);
  return dx;
}

inline std::array<bool, kMaxRank> all_dims(int rank) {
  std::array<bool, kMaxRank> mask{};
  for (int d = 0; d < rank; ++d) mask[d] = true;
  return mask;
}

}  // namespace reduce_impl

template <class T, class D>
Tensor<T, D> sum(const Tensor<T, D>& x, const std::vector<int>& dims, bool keepdim = false) {
  check_defined(x, "sum", "x");
  return reduce_impl::sum_or_mean(x, reduce_mask(dims, x.rank(), "sum"), keepdim, false);
}
template <class T, class D>
Tensor<T, D> mean(const Tensor<T, D>& x, const std::vector<int>& dims, bool keepdim = false) {
  check_defined(x, "mean", "x");
  return reduce_impl::sum_or_mean(x, reduce_mask(dims, x.rank(), "mean"), keepdim, true);
}
// Over all elements: shape [].
template <class T, class D>
Tensor<T, D> sum(const Tensor<T, D>& x) {
  check_defined(x, "sum", "x");
  return reduce_impl::sum_or_mean(x, reduce_impl::all_dims(x.rank()), false, false);
}
template <class T, class D>
Tensor<T, D> mean(const Tensor<T, D>& x) {
  check_defined(x, "mean", "x");
  return reduce_impl::sum_or_mean(x, reduce_impl::all_dims(x.rank()), false, true);
}

// Gradients with respect to x (shape x_shape), given dy of the reduced shape.
template <class T, class D>
Tensor<T, D> sum_backward(const Tensor<T, D>& dy, const Shape& x_shape, const std::vector<int>& dims, bool keepdim = false) {
  return reduce_impl::sum_or_mean_backward(dy, x_shape, reduce_mask(dims, x_shape.rank(), "sum_backward"), keepdim, false,
                                           "sum_backward");
}
template <class T, class D>
Tensor<T, D> mean_backward(const Tensor<T, D>& dy, const Shape& x_shape, const std::vector<int>& dims, bool keepdim = false) {
  return reduce_impl::sum_or_mean_backward(dy, x_shape, reduce_mask(dims, x_shape.rank(), "mean_backward"), keepdim, true,
                                           "mean_backward");
}
template <class T, class D>
Tensor<T, D> sum_backward(const Tensor<T, D>& dy, const Shape& x_shape) {
  return reduce_impl::sum_or_mean_backward(dy, x_shape, reduce_impl::all_dims(x_shape.rank()), false, false, "sum_backward");
}
template <class T, class D>
Tensor<T, D> mean_backward(const Tensor<T, D>& dy, const Shape& x_shape) {
  return reduce_impl::sum_or_mean_backward(dy, x_shape, reduce_impl::all_dims(x_shape.rank()), false, true, "mean_backward");
}

// Sums `g` down to `shape`, which must broadcast to g's shape: extra leading dimensions and
// dimensions where `shape` has 1 are summed. The gradient of any broadcast; g itself when the
// shapes already match.
template <class T, class D>
Tensor<T, D> sum_to_shape(const Tensor<T, D>& g, const Shape& shape) {
  CTMLLM_REQUIRE_KERNELS(D, "sum_to_shape");
  check_defined(g, "sum_to_shape", "g");
  if (g.shape() == shape) return g;
  CTMLLM_CHECK(shape.rank() <= g.rank() && broadcast_shapes(shape, g.shape(), "sum_to_shape") == g.shape(),
               "sum_to_shape: shape ", shape, " does not broadcast to ", g.describe());
  const int lead = g.rank() - shape.rank();
  std::array<bool, kMaxRank> mask{};
  for (int d = 0; d < g.rank(); ++d) mask[d] = d < lead || (shape[d - lead] == 1 && g.size(d) != 1);
  Tensor<T, D> out = Tensor<T, D>::empty(shape);
  impl::sum(g, mask, acc_t<T>(1), out);
  return out;
}

// Max along `dim`: values and the index of the first maximum (NaN counts as the largest).
template <class T, class D>
struct MaxResult {
  Tensor<T, D> values;
  Tensor<int64_t, D> indices;
};

template <class T, class D>
MaxResult<T, D> max(const Tensor<T, D>& x, int dim, bool keepdim = false) {
  CTMLLM_REQUIRE_KERNELS(D, "max");
  check_defined(x, "max", "x");
  dim = normalize_dim(dim, x.rank(), "max");
  CTMLLM_CHECK(x.size(dim) > 0, "max: dimension ", dim, " of ", x.describe(), " is empty");
  std::array<bool, kMaxRank> mask{};
  mask[dim] = true;
  const Shape out_shape = reduced_shape(x.shape(), mask, keepdim);
  MaxResult<T, D> r{Tensor<T, D>::empty(out_shape), Tensor<int64_t, D>::empty(out_shape)};
  impl::max(x.contiguous(), reduce_impl::extent(x.shape(), 0, dim), x.size(dim),
            reduce_impl::extent(x.shape(), dim + 1, x.rank()), r.values, r.indices);
  return r;
}
template <class T, class D>
Tensor<int64_t, D> argmax(const Tensor<T, D>& x, int dim, bool keepdim = false) {
  return max(x, dim, keepdim).indices;
}

// Gradient with respect to x: dy goes to the position each maximum came from (indices as returned
// by max; out-of-range indices are an Error, except on the GPU under a graph capture or in an
// IndicesCheckedByCaller scope, where such an index sends its dy nowhere).
template <class T, class D>
Tensor<T, D> max_backward(const Tensor<T, D>& dy, const Tensor<int64_t, D>& indices, const Shape& x_shape, int dim,
                          bool keepdim = false) {
  CTMLLM_REQUIRE_KERNELS(D, "max_backward");
  dim = normalize_dim(dim, x_shape.rank(), "max_backward");
  std::array<bool, kMaxRank> mask{};
  mask[dim] = true;
  const Shape out_shape = reduced_shape(x_shape, mask, keepdim);
  check_shape(dy, out_shape, "max_backward", "dy");
  check_shape(indices, out_shape, "max_backward", "indices");
  Tensor<T, D> dx = Tensor<T, D>::empty(x_shape);
  impl::max_backward(dy.contiguous(), indices.contiguous(), reduce_impl::extent(x_shape, 0, dim), x_shape[dim],
                     reduce_impl::extent(x_shape, dim + 1, x_shape.rank()), dx);
  return dx;
}

}  // namespace ctmllm::ops
