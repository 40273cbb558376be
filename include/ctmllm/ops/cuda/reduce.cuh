#pragma once
// CUDA kernels for sum/mean over any set of dimensions (the Tensor<T, Cuda> overloads of
// ops/cpu/reduce.hpp's sum and broadcast_scaled). A sum over the leading dimensions of a contiguous
// tensor (a bias gradient: dy [rows, out] summed over rows) gives each column a thread, so a warp
// reads consecutive elements of a row, and splits the rows into chunks whose partial sums a second
// kernel adds in chunk order. Any other sum gives each output element one block, whose threads
// stride over the reduced elements and meet in a block reduction. Float accumulation and a fixed
// order either way, so results repeat exactly from run to run.
#include <algorithm>
#include <array>

#include "ctmllm/ops/cuda/block_reduce.cuh"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// y[o] = scale · Σ_r x[kept(o) + reduced(r)] over `count` reduced elements per output.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    sum_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outputs, int64_t count, StridedOffsets<1> kept,
               StridedOffsets<1> reduced, float scale) {
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

// partial[chunk][c] = Σ x[r·n + c] over the rows r of chunk blockIdx.y (x [count, n] row-major).
template <class T>
__global__ void column_sum_partial_kernel(const T* __restrict__ x, float* __restrict__ partial, int64_t count,
                                          int64_t n, int64_t chunks) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= n) return;
  const int64_t chunk = blockIdx.y, r0 = count * chunk / chunks, r1 = count * (chunk + 1) / chunks;
  float s = 0.0f;
  for (int64_t r = r0; r < r1; ++r) s += to_float(x[r * n + c]);
  partial[chunk * n + c] = s;
}

// out[c] = scale · Σ_chunk partial[chunk][first + c], in chunk order.
template <class T>
__global__ void sum_partials_kernel(const float* __restrict__ partial, T* __restrict__ out, int64_t first, int64_t n,
                                    int64_t width, int64_t chunks, float scale) {
  for (int64_t c = global_thread(); c < n; c += grid_threads()) {
    float s = 0.0f;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * width + first + c];
    out[c] = from_float<T>(s * scale);
  }
}

// Row chunks for a column sum over `rows`: at least 16 rows each, at most 256 chunks.
inline int64_t row_chunks(int64_t rows) { return std::clamp<int64_t>(rows / 16, 1, 256); }

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
  // Reduced dimensions that lead a contiguous x: x is [count, outputs] row-major. Below a warp's
  // worth of columns the block-per-output kernel keeps more threads busy.
  int lead = 0;
  while (lead < x.rank() && reduce[lead]) ++lead;
  bool leading = x.is_contiguous() && lead > 0 && outputs >= 32;
  for (int d = lead; d < x.rank(); ++d) leading = leading && !reduce[d];
  if (leading) {
    const cudaStream_t stream = cuda::current_stream();
    const int64_t chunks = cuda_impl::row_chunks(count);
    const Tensor<float, Cuda> partial = Tensor<float, Cuda>::empty({chunks, outputs});
    const dim3 grid(unsigned((outputs + cuda_impl::kThreads - 1) / cuda_impl::kThreads), unsigned(chunks));
    cuda_impl::column_sum_partial_kernel<<<grid, cuda_impl::kThreads, 0, stream>>>(x.data(), partial.data(), count,
                                                                                  outputs, chunks);
    cuda::check_launch("column_sum_partial_kernel");
    cuda_impl::sum_partials_kernel<<<cuda_impl::grid_for(outputs), cuda_impl::kThreads, 0, stream>>>(
        partial.data(), y.data(), 0, outputs, outputs, chunks, float(scale));
    cuda::check_launch("sum_partials_kernel");
    return;
  }
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
