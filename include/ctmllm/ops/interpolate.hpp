#pragma once
// Volume resampling as F.interpolate on [B, C, D, H, W]:
//  - trilinear (align_corners false or true);
//  - area (= adaptive_avg_pool3d to the output size);
//  - nearest (the legacy 'nearest', not 'nearest-exact').
// Give exactly one of size {d, h, w} or scale_factor {d, h, w}. With a scale factor the output is
// ⌊in·scale_factor⌋ and, as in PyTorch with recompute_scale_factor unset, trilinear and nearest map
// coordinates with 1/scale_factor rather than in/out (position-table resampling relies on it).
#include <array>
#include <cmath>
#include <optional>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/interpolate.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/interpolate.cuh"
#endif

namespace ctmllm::ops {

enum class InterpolateMode { trilinear, area, nearest };

struct InterpolateOptions {
  InterpolateMode mode = InterpolateMode::trilinear;
  std::optional<std::array<int64_t, 3>> size;
  std::optional<std::array<double, 3>> scale_factor;
  bool align_corners = false;  // trilinear only
};

// The output shape for an input shape, or an Error naming what is wrong with the request.
inline Shape interpolate_output_shape(const Shape& input, const InterpolateOptions& o, const char* op = "interpolate") {
  CTMLLM_CHECK(input.rank() == 5, op, ": the input must have rank 5 [B, C, D, H, W], got shape ", input);
  CTMLLM_CHECK(o.size.has_value() != o.scale_factor.has_value(), op,
               ": give exactly one of size and scale_factor (got ", o.size ? "both" : "neither", ")");
  CTMLLM_CHECK(!o.align_corners || o.mode == InterpolateMode::trilinear, op,
               ": align_corners can only be set with mode trilinear");
  Shape out{input[0], input[1], 0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    CTMLLM_CHECK(input[2 + i] > 0, op, ": input shape ", input, " has an empty spatial dimension ", 2 + i);
    if (o.size) {
      const int64_t s = (*o.size)[i];
      CTMLLM_CHECK(s > 0, op, ": size must be positive, got ", s, " for dimension ", 2 + i);
      out[2 + i] = s;
    } else {
      const double f = (*o.scale_factor)[i];
      CTMLLM_CHECK(std::isfinite(f) && f > 0, op, ": scale_factor ", f, " for dimension ", 2 + i, " must be positive");
      out[2 + i] = int64_t(std::floor(double(input[2 + i]) * f));
      CTMLLM_CHECK(out[2 + i] > 0, op, ": scale_factor ", f, " turns dimension ", 2 + i, " of input shape ", input,
                   " into an empty one");
    }
  }
  return out;
}

namespace detail {
// The per-axis weights of the resampling from `input` to `output` (shapes already validated).
template <class T>
impl::ResampleAxes<T> interpolate_axes(const Shape& input, const Shape& output, const InterpolateOptions& o) {
  using A = acc_t<T>;
  impl::ResampleAxes<T> axes;
  for (int i = 0; i < 3; ++i) {
    const int64_t in = input[2 + i], out = output[2 + i];
    const std::optional<double> f = o.scale_factor ? std::optional<double>((*o.scale_factor)[i]) : std::nullopt;
    switch (o.mode) {
      case InterpolateMode::trilinear: axes[i] = impl::linear_axis<A>(in, out, o.align_corners, f); break;
      case InterpolateMode::nearest: axes[i] = impl::nearest_axis<A>(in, out, f); break;
      case InterpolateMode::area: axes[i] = impl::area_axis<A>(in, out); break;
    }
  }
  return axes;
}
}  // namespace detail

template <class T, class D>
Tensor<T, D> interpolate(const Tensor<T, D>& x, const InterpolateOptions& options) {
  CTMLLM_REQUIRE_KERNELS(D, "interpolate");
  check_defined(x, "interpolate", "x");
  CTMLLM_CHECK(x.rank() == 5, "interpolate: x must have rank 5 [B, C, D, H, W], got ", x.describe());
  const Shape out_shape = interpolate_output_shape(x.shape(), options);
  Tensor<T, D> y = Tensor<T, D>::empty(out_shape);
  impl::resample_forward(x, y, detail::interpolate_axes<T>(x.shape(), out_shape, options));
  return y;
}

// Gradient with respect to the input of shape `input_shape`, given dy of the output's shape.
template <class T, class D>
Tensor<T, D> interpolate_backward(const Tensor<T, D>& dy, const Shape& input_shape, const InterpolateOptions& options) {
  CTMLLM_REQUIRE_KERNELS(D, "interpolate_backward");
  check_defined(dy, "interpolate_backward", "dy");
  const Shape out_shape = interpolate_output_shape(input_shape, options, "interpolate_backward");
  check_shape(dy, out_shape, "interpolate_backward", "dy");
  Tensor<T, D> dx = Tensor<T, D>::empty(input_shape);
  impl::resample_backward(dy.contiguous(), dx, detail::interpolate_axes<T>(input_shape, out_shape, options));
  return dx;
}

}  // namespace ctmllm::ops
