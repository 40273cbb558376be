#pragma once
// avg_pool3d on the GPU (the Tensor<T, Cuda> overloads of ops/cpu/pool3d.hpp): the pooling windows
// as resampling lists, run by the resampling kernels of interpolate.cuh, as on the CPU.
#include <array>

#include "ctmllm/ops/cpu/pool3d.hpp"
#include "ctmllm/ops/cuda/interpolate.cuh"

namespace ctmllm::ops::impl {

// y [B, C, Do, Ho, Wo] (contiguous) = window means of x [B, C, D, H, W] (any layout).
template <class T>
void avg_pool3d_forward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& y, std::array<int64_t, 3> kernel,
                        std::array<int64_t, 3> stride) {
  resample_forward(x, y, pool_axes<T>(x.shape(), kernel, stride));
}

// dx [B, C, D, H, W] from dy [B, C, Do, Ho, Wo]; both contiguous.
template <class T>
void avg_pool3d_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& dx, std::array<int64_t, 3> kernel,
                         std::array<int64_t, 3> stride) {
  resample_backward(dy, dx, pool_axes<T>(dx.shape(), kernel, stride));
}

}  // namespace ctmllm::ops::impl
