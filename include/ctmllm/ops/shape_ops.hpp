#pragma once
// Shape ops that are not plain views: concat and split (split returns views), index_copy_ (rows
// written at indices held in a tensor), and the backward of the view ops that pick elements out
// (slice, select, split): the gradient placed into zeros of the input's shape. The other views (reshape, permute, transpose, squeeze, unsqueeze, expand) are
// Tensor methods; their gradients are views of dy (see autograd/shape_ops.hpp).
#include <vector>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/shape_ops.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/shape_ops.cuh"
#endif

namespace ctmllm::ops {

// Joins xs along dim: same rank, same extents except along dim (non-empty list).
template <class T, class D>
Tensor<T, D> concat(const std::vector<Tensor<T, D>>& xs, int dim) {
  CTMLLM_REQUIRE_KERNELS(D, "concat");
  CTMLLM_CHECK(!xs.empty(), "concat: no tensors given");
  for (size_t i = 0; i < xs.size(); ++i) CTMLLM_CHECK(xs[i].defined(), "concat: tensor ", i, " is undefined");
  const Tensor<T, D>& first = xs[0];
  dim = normalize_dim(dim, first.rank(), "concat");
  Shape shape = first.shape();
  shape[dim] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    bool match = xs[i].rank() == first.rank();
    for (int d = 0; match && d < first.rank(); ++d) match = d == dim || xs[i].size(d) == first.size(d);
    CTMLLM_CHECK(match, "concat: tensor ", i, " ", xs[i].describe(), " does not match tensor 0 ", first.describe(),
                 " outside dimension ", dim);
    shape[dim] += xs[i].size(dim);
  }
  Tensor<T, D> y = Tensor<T, D>::empty(shape);
  impl::concat(xs, dim, y);
  return y;
}

// In place: dst.select(dim, index[i]) = src.select(dim, i) for every i. dst is contiguous; src has
// dst's shape except index.numel() along dim; index is int64 [n] on dst's device, its values distinct
// (with repeats each row gets one of its sources; on the GPU which one is unspecified). An index
// outside [0, dst.size(dim)) is an Error naming the first one; on the GPU that check reads a flag
// back, except while the stream is captured into a graph or inside an IndicesCheckedByCaller scope
// (ops/caller_checked_indices.hpp), where the kernel skips such rows instead.
// The indices live in a tensor so that a device-side index can change between replays of a captured
// graph: the KV cache writes each decode step's keys this way (llm/kv_cache.hpp). Not differentiable.
template <class T, class D>
void index_copy_(const Tensor<T, D>& dst, int dim, const Tensor<int64_t, D>& index, const Tensor<T, D>& src) {
  CTMLLM_REQUIRE_KERNELS(D, "index_copy_");
  check_defined(dst, "index_copy_", "dst");
  check_defined(index, "index_copy_", "index");
  check_defined(src, "index_copy_", "src");
  dim = normalize_dim(dim, dst.rank(), "index_copy_");
  CTMLLM_CHECK(dst.is_contiguous(), "index_copy_: dst ", dst.describe(), " must be contiguous");
  check_rank(index, 1, "index_copy_", "index");
  Shape expected = dst.shape();
  expected[dim] = index.size(0);
  check_shape(src, expected, "index_copy_", "src");
  impl::index_copy(dst, dim, index.contiguous(), dst.memory_overlaps(src) ? src.clone() : src.contiguous());
}

namespace shape_impl {

// Views of x cut along dim into pieces of the given sizes, which must add up to x.size(dim).
template <class T, class D>
std::vector<Tensor<T, D>> cut(const Tensor<T, D>& x, const std::vector<int64_t>& sizes, int dim, const char* op) {
  check_defined(x, op, "x");
  dim = normalize_dim(dim, x.rank(), op);
  int64_t total = 0;
  for (int64_t s : sizes) {
    CTMLLM_CHECK(s >= 0, op, ": negative size ", s);
    total += s;
  }
  CTMLLM_CHECK(total == x.size(dim), op, ": sizes add up to ", total, ", but dimension ", dim, " of ", x.describe(),
               " is ", x.size(dim));
  std::vector<Tensor<T, D>> pieces;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    pieces.push_back(x.slice(dim, offset, offset + s));
    offset += s;
  }
  return pieces;
}

}  // namespace shape_impl

// Gradients of concat: dy cut back into the inputs' pieces (views of dy); sizes are the inputs'
// extents along dim.
template <class T, class D>
std::vector<Tensor<T, D>> concat_backward(const Tensor<T, D>& dy, const std::vector<int64_t>& sizes, int dim) {
  return shape_impl::cut(dy, sizes, dim, "concat_backward");
}

// Views of x cut along dim into pieces of the given sizes (which must add up to x.size(dim)).
template <class T, class D>
std::vector<Tensor<T, D>> split(const Tensor<T, D>& x, const std::vector<int64_t>& sizes, int dim) {
  return shape_impl::cut(x, sizes, dim, "split");
}

// Gradient of split: the pieces' gradients joined along dim; an undefined one counts as zeros.
template <class T, class D>
Tensor<T, D> split_backward(const std::vector<Tensor<T, D>>& grads, const Shape& x_shape, const std::vector<int64_t>& sizes,
                            int dim) {
  dim = normalize_dim(dim, x_shape.rank(), "split_backward");
  CTMLLM_CHECK(grads.size() == sizes.size(), "split_backward: ", grads.size(), " gradients for ", sizes.size(), " pieces");
  int64_t total = 0;
  bool all_defined = true;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Shape piece = x_shape;
    piece[dim] = sizes[i];
    if (grads[i].defined()) check_shape(grads[i], piece, "split_backward", "a piece's gradient");
    all_defined = all_defined && grads[i].defined();
    total += sizes[i];
  }
  CTMLLM_CHECK(total == x_shape[dim], "split_backward: sizes add up to ", total, ", but dimension ", dim, " of ", x_shape,
               " is ", x_shape[dim]);
  if (all_defined && !grads.empty()) return concat(grads, dim);
  Tensor<T, D> dx = Tensor<T, D>::zeros(x_shape);
  int64_t offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (grads[i].defined()) dx.slice(dim, offset, offset + sizes[i]).copy_from(grads[i]);
    offset += sizes[i];
  }
  return dx;
}

// Gradient of x.slice(dim, start, stop, step): dy in the sliced positions, zeros elsewhere.
template <class T, class D>
Tensor<T, D> slice_backward(const Tensor<T, D>& dy, const Shape& x_shape, int dim, int64_t start, int64_t stop,
                            int64_t step = 1) {
  check_defined(dy, "slice_backward", "dy");
  Tensor<T, D> dx = Tensor<T, D>::zeros(x_shape);
  const Tensor<T, D> window = dx.slice(dim, start, stop, step);  // validates the range
  check_shape(dy, window.shape(), "slice_backward", "dy");
  window.copy_from(dy);
  return dx;
}

// Gradient of x.select(dim, index): dy in that position, zeros elsewhere.
template <class T, class D>
Tensor<T, D> select_backward(const Tensor<T, D>& dy, const Shape& x_shape, int dim, int64_t index) {
  check_defined(dy, "select_backward", "dy");
  Tensor<T, D> dx = Tensor<T, D>::zeros(x_shape);
  const Tensor<T, D> window = dx.select(dim, index);  // validates the index
  check_shape(dy, window.shape(), "select_backward", "dy");
  window.copy_from(dy);
  return dx;
}

}  // namespace ctmllm::ops
