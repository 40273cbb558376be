#pragma once
// CUDA kernels for sum/mean over any set of dimensions (the Tensor<T, Cuda> overloads of
// ops/cpu/reduce.hpp's sum and broadcast_scaled). A sum gives each output element one block, whose
// threads stride over the reduced elements and meet in a block reduction: float accumulation, and a
// fixed order, so results repeat exactly from run to run.
#include <array>

#include "ctmllm/ops/cuda/block_reduce.cuh"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// y[o] = scale · Σ_r x[kept(o) + reduced(r)] over `count` reduced elements per output.
template <class T>
__global__ void sum_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outputs, int64_t count,
                           StridedOffsets<1> kept, StridedOffsets<1> reduced, float scale) {
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    int64_t base[1];
    kept.at(o, base);
    float s = 0.0f;
    for (int64_t r = threadIdx.x; r < count; r += blockDim.x) {
      int64_t off[1];
      reduced.at(r, off);
      s += to_float(x[base[0] + off[0]]);
    }
    s = block_reduce(s, SumOp{});
    if (threadIdx.x == 0) y[o] = from_float<T>(s * scale);
  }
}

// dst[i] = src[strided i] · scale, dst contiguous.
template <class T>
__global__ void broadcast_scaled_kernel(const T* __restrict__ src, T* __restrict__ dst, int64_t n, StridedOffsets<1> s,
                                        float scale) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[1];
    s.at(i, off);
    dst[i] = from_float<T>(to_float(src[off[0]]) * scale);
  }
}

}  // namespace cuda_impl

namespace impl {

// y (contiguous, the kept dimensions in order) = scale · the sum of x over the dimensions in `reduce`.
template <class T>
void sum(const Tensor<T, Cuda>& x, const std::array<bool, kMaxRank>& reduce, acc_t<T> scale, const Tensor<T, Cuda>& y) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "sum");
  Shape kept_shape, kept_strides, red_shape, red_strides;
  for (int d = 0; d < x.rank(); ++d) {
    (reduce[d] ? red_shape : kept_shape).push_back(x.size(d));
    (reduce[d] ? red_strides : kept_strides).push_back(x.stride(d));
  }
  const int64_t outputs = kept_shape.numel(), count = red_shape.numel();
  if (outputs == 0) return;
  const Shape ks[1] = {kept_strides}, rs[1] = {red_strides};
  cuda_impl::sum_kernel<<<cuda_impl::grid_rows(outputs), cuda_impl::threads_for_row(count, 4), 0, cuda::current_stream()>>>(
      x.data(), y.data(), outputs, count, cuda_impl::strided_offsets(kept_shape, ks),
      cuda_impl::strided_offsets(red_shape, rs), float(scale));
  cuda::check_launch("sum_kernel");
}

// dst (contiguous) = src (expanded to dst's shape) · scale.
template <class T>
void broadcast_scaled(const Tensor<T, Cuda>& src, acc_t<T> scale, const Tensor<T, Cuda>& dst) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "broadcast_scaled");
  const int64_t n = dst.numel();
  if (n == 0) return;
  const Shape st[1] = {src.strides()};
  cuda_impl::broadcast_scaled_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      src.data(), dst.data(), n, cuda_impl::strided_offsets(dst.shape(), st), float(scale));
  cuda::check_launch("broadcast_scaled_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
