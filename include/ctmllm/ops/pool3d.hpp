#pragma once
// Average pooling over volumes as F.avg_pool3d(x, kernel, stride) without padding: x [B, C, D, H, W]
// -> [B, C, Do, Ho, Wo], Do = ⌊(D − kd) / sd⌋ + 1 (likewise H, W); each output is its window's mean.
#include <array>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/pool3d.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/pool3d.cuh"
#endif

namespace ctmllm::ops {

// The pooled shape of `input`, or an Error naming the op, the shape and the offending window.
inline Shape avg_pool3d_output_shape(const Shape& input, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride,
                                     const char* op = "avg_pool3d") {
  CTMLLM_CHECK(input.rank() == 5, op, ": the input must have rank 5 [B, C, D, H, W], got shape ", input);
  for (int i = 0; i < 3; ++i)
    CTMLLM_CHECK(kernel[i] > 0 && stride[i] > 0, op, ": kernel ", kernel[i], " and stride ", stride[i],
                 " must be positive (dimension ", 2 + i, ")");
  Shape out{input[0], input[1], 0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    CTMLLM_CHECK(input[2 + i] >= kernel[i], op, ": kernel ", Shape{kernel[0], kernel[1], kernel[2]},
                 " is larger than the input shape ", input, " (dimension ", 2 + i, ")");
    out[2 + i] = (input[2 + i] - kernel[i]) / stride[i] + 1;
  }
  return out;
}

template <class T, class D>
Tensor<T, D> avg_pool3d(const Tensor<T, D>& x, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride) {
  CTMLLM_REQUIRE_KERNELS(D, "avg_pool3d");
  check_defined(x, "avg_pool3d", "x");
  CTMLLM_CHECK(x.rank() == 5, "avg_pool3d: x must have rank 5 [B, C, D, H, W], got ", x.describe());
  Tensor<T, D> y = Tensor<T, D>::empty(avg_pool3d_output_shape(x.shape(), kernel, stride));
  impl::avg_pool3d_forward(x, y, kernel, stride);
  return y;
}

// Gradient with respect to the input of shape `input_shape`, given dy of the pooled shape.
template <class T, class D>
Tensor<T, D> avg_pool3d_backward(const Tensor<T, D>& dy, const Shape& input_shape, std::array<int64_t, 3> kernel,
                                 std::array<int64_t, 3> stride) {
  CTMLLM_REQUIRE_KERNELS(D, "avg_pool3d_backward");
  check_defined(dy, "avg_pool3d_backward", "dy");
  check_shape(dy, avg_pool3d_output_shape(input_shape, kernel, stride, "avg_pool3d_backward"), "avg_pool3d_backward",
              "dy");
  Tensor<T, D> dx = Tensor<T, D>::empty(input_shape);
  impl::avg_pool3d_backward(dy.contiguous(), dx, kernel, stride);
  return dx;
}

}  // namespace ctmllm::ops
