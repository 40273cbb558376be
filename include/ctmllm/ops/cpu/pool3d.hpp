#pragma once
// CPU kernels for avg_pool3d: a separable resampling whose per-axis lists are the pooling windows,
// run by the resampling kernels of interpolate.
#include <array>

#include "ctmllm/ops/cpu/interpolate.hpp"

namespace ctmllm::ops::impl {

// Output o averages inputs [o·stride, o·stride + kernel); ⌊(in − kernel) / stride⌋ + 1 outputs.
template <class A>
ResampleAxis<A> pool_axis(int64_t in, int64_t kernel, int64_t stride) {
  ResampleAxis<A> a;
  a.in = in;
  for (int64_t o = 0; o < (in - kernel) / stride + 1; ++o) {
    for (int64_t i = o * stride; i < o * stride + kernel; ++i) a.add(i, A(1) / A(kernel));
    a.end_output();
  }
  return a;
}

template <class T>
ResampleAxes<T> pool_axes(const Shape& input, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride) {
  using A = acc_t<T>;
  return {pool_axis<A>(input[2], kernel[0], stride[0]), pool_axis<A>(input[3], kernel[1], stride[1]),
          pool_axis<A>(input[4], kernel[2], stride[2])};
}

// y [B, C, Do, Ho, Wo] (contiguous) = window means of x [B, C, D, H, W] (any layout).
template <class T>
void avg_pool3d_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& y, std::array<int64_t, 3> kernel,
                        std::array<int64_t, 3> stride) {
  resample_forward(x, y, pool_axes<T>(x.shape(), kernel, stride));
}

// dx [B, C, D, H, W] from dy [B, C, Do, Ho, Wo]; both contiguous.
template <class T>
void avg_pool3d_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& dx, std::array<int64_t, 3> kernel,
                         std::array<int64_t, 3> stride) {
  resample_backward(dy, dx, pool_axes<T>(dx.shape(), kernel, stride));
}

}  // namespace ctmllm::ops::impl
