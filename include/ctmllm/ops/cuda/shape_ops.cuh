#pragma once
// concat and index_copy on the GPU (the Tensor<T, Cuda> overloads of ops/cpu/shape_ops.hpp's):
// concat puts each input into its slab of the output through the device's strided copy (copy.cuh),
// one launch per input, any input strides and any element type; index_copy is one grid-stride copy
// whose destination rows are read from the index tensor on the device.
#include <vector>

#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cpu/shape_ops.hpp"
#include "ctmllm/ops/cuda/copy.cuh"
#include "ctmllm/ops/cuda/index_check.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// dst [outer, rows, inner] row index[i] = src [outer, n, inner] row i; rows outside [0, rows) are
// skipped (only reachable where the range check is not due: under a graph capture, or where the
// caller checked the rows).
template <class T>
__global__ void index_copy_kernel(T* __restrict__ dst, const T* __restrict__ src, const int64_t* __restrict__ index,
                                  int64_t outer, int64_t rows, int64_t n, int64_t inner) {
  for (int64_t e = global_thread(); e < outer * n * inner; e += grid_threads()) {
    const int64_t c = e % inner, i = e / inner % n, o = e / (inner * n), r = index[i];
    if (r >= 0 && r < rows) dst[(o * rows + r) * inner + c] = src[e];
  }
}

}  // namespace cuda_impl

namespace impl {

// out = the xs joined along dim; out contiguous, xs of out's shape except along dim.
template <class T>
void concat(const std::vector<Tensor<T, Cuda>>& xs, int dim, const Tensor<T, Cuda>& out) {
  int64_t offset = 0;
  for (const auto& x : xs) {
    const Tensor<T, Cuda> slab = out.slice(dim, offset, offset + x.size(dim));
    cuda_impl::launch_strided_copy(slab.data(), slab.strides(), x.data(), x.strides(), slab.shape(), sizeof(T));
    offset += x.size(dim);
  }
}

// dst.select(dim, index[i]) = src.select(dim, i); dst, index and src contiguous. Any element type
// (elements are copied, not computed on).
template <class T>
void index_copy(const Tensor<T, Cuda>& dst, int dim, const Tensor<int64_t, Cuda>& index, const Tensor<T, Cuda>& src) {
  const int64_t rows = dst.size(dim), n = index.numel();
  if (cuda_impl::device_index_check_due() && cuda_impl::any_index_out_of_range(index, rows))
    check_index_copy_rows(index.template to_device<Cpu>(), rows);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= dst.size(d);
  for (int d = dim + 1; d < dst.rank(); ++d) inner *= dst.size(d);
  if (outer * n * inner == 0) return;
  cuda_impl::index_copy_kernel<<<cuda_impl::grid_for(outer * n * inner), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      dst.data(), src.data(), index.data(), outer, rows, n, inner);
  cuda::check_launch("index_copy_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
