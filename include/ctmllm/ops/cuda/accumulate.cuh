#pragma once
// dst += src for two Cuda tensors of one shape (any strides; dst never broadcasts, so each of its
// elements has one writer): the gradient-accumulation primitive on the GPU.
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

template <class T>
__global__ void accumulate_kernel(T* dst, const T* __restrict__ src, int64_t n, StridedOffsets<2> s) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    s.at(i, off);
    dst[off[0]] = from_float<T>(to_float(dst[off[0]]) + to_float(src[off[1]]));
  }
}

}  // namespace cuda_impl

template <class T>
void accumulate(Cuda, const Tensor<T, Cuda>& dst, const Tensor<T, Cuda>& src) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "accumulate");
  const int64_t n = dst.numel();
  if (n == 0) return;
  const Shape strides[2] = {dst.strides(), src.strides()};
  cuda_impl::accumulate_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      dst.data(), src.data(), n, cuda_impl::strided_offsets(dst.shape(), strides));
  cuda::check_launch("accumulate_kernel");
}

}  // namespace ctmllm::ops
