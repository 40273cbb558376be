#pragma once
// 3D convolution as F.conv3d (no groups, no dilation): x [B, Cin, D, H, W], w [Cout, Cin, kd, kh, kw],
// b [Cout] or undefined -> y [B, Cout, Do, Ho, Wo], Do = ⌊(D + 2·pd − kd) / sd⌋ + 1 (likewise H, W).
// A kernel equal to the stride with no padding (a patch embedding) runs as patchify + one GEMM;
// every other case as vol2col + GEMM on the CPU, cuDNN's convolution on the GPU.
#include <array>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/conv3d.hpp"
#include "ctmllm/ops/patch_embed.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/conv3d.cuh"
#endif

namespace ctmllm::ops {

namespace detail {

// Validates x, w, stride and padding for `op` and returns the sizes.
template <class T, class D>
Conv3dGeometry conv3d_geometry(const Tensor<T, D>& x, const Tensor<T, D>& w, std::array<int64_t, 3> stride,
                               std::array<int64_t, 3> padding, const char* op) {
  check_defined(x, op, "x");
  check_defined(w, op, "w");
  check_rank(x, 5, op, "x");
  check_rank(w, 5, op, "w");
  CTMLLM_CHECK(x.size(1) > 0, op, ": x ", x.describe(), " has no channels");
  CTMLLM_CHECK(w.size(1) == x.size(1), op, ": w ", w.describe(), " expects ", w.size(1), " input channels but x ",
               x.describe(), " has ", x.size(1));
  Conv3dGeometry g{x.size(1), x.size(2), x.size(3), x.size(4), {w.size(2), w.size(3), w.size(4)}, stride, padding, 0, 0, 0};
  int64_t out[3];
  for (int i = 0; i < 3; ++i) {
    CTMLLM_CHECK(stride[i] > 0, op, ": the stride must be positive, got ", stride[i], " for dimension ", 2 + i);
    CTMLLM_CHECK(padding[i] >= 0, op, ": the padding must not be negative, got ", padding[i], " for dimension ", 2 + i);
    CTMLLM_CHECK(g.kernel[i] > 0, op, ": w ", w.describe(), " has an empty kernel");
    const int64_t span = x.size(2 + i) + 2 * padding[i];
    CTMLLM_CHECK(span >= g.kernel[i], op, ": kernel of w ", w.describe(), " does not fit the padded input x ", x.describe(),
                 " (dimension ", 2 + i, ": ", span, " < ", g.kernel[i], ")");
    out[i] = (span - g.kernel[i]) / stride[i] + 1;
  }
  g.Do = out[0];
  g.Ho = out[1];
  g.Wo = out[2];
  return g;
}

// Kernel == stride and no padding: non-overlapping windows, i.e. patches.
inline bool is_patch_conv(const Conv3dGeometry& g) {
  return g.kernel == g.stride && g.padding == std::array<int64_t, 3>{0, 0, 0};
}

// The part of a volume that the patch windows cover (the trailing remainder is never read).
template <class T, class D>
Tensor<T, D> patch_region(const Tensor<T, D>& v, const Conv3dGeometry& g) {
  return v.slice(2, 0, g.Do * g.kernel[0]).slice(3, 0, g.Ho * g.kernel[1]).slice(4, 0, g.Wo * g.kernel[2]);
}

}  // namespace detail

template <class T, class D>
Tensor<T, D> conv3d(const Tensor<T, D>& x, const Tensor<T, D>& w, const Tensor<T, D>& b = Tensor<T, D>(),
                    std::array<int64_t, 3> stride = {1, 1, 1}, std::array<int64_t, 3> padding = {0, 0, 0}) {
  CTMLLM_REQUIRE_KERNELS(D, "conv3d");
  const Conv3dGeometry g = detail::conv3d_geometry(x, w, stride, padding, "conv3d");
  const int64_t B = x.size(0), Cout = w.size(0);
  if (b.defined()) check_shape(b, {Cout}, "conv3d", "b");
  if (detail::is_patch_conv(g)) {
    // [B, N, Cout] with N over the output grid -> [B, Cout, Do, Ho, Wo].
    const Tensor<T, D> rows =
        patch_embed(detail::patch_region(x, g), w.reshape({Cout, -1}), b, g.kernel, PatchOrder::channel_first);
    return rows.reshape({B, g.Do, g.Ho, g.Wo, Cout}).permute({0, 4, 1, 2, 3}).contiguous();
  }
  Tensor<T, D> y = Tensor<T, D>::empty({B, Cout, g.Do, g.Ho, g.Wo});
  impl::conv3d_forward(x.contiguous(), w.contiguous(), b.defined() ? b.contiguous() : b, y, g);
  return y;
}

template <class T, class D>
struct Conv3dGrads {
  Tensor<T, D> dx;  // like x; undefined when not asked for
  Tensor<T, D> dw;  // like w
  Tensor<T, D> db;  // [Cout]: Σ dy over all but the channel axis (ignore it without a bias)
};

// Gradients of conv3d given dy [B, Cout, Do, Ho, Wo]. need_dx = false skips dx (pixels need no gradient).
template <class T, class D>
Conv3dGrads<T, D> conv3d_backward(const Tensor<T, D>& dy, const Tensor<T, D>& x, const Tensor<T, D>& w,
                                  std::array<int64_t, 3> stride = {1, 1, 1}, std::array<int64_t, 3> padding = {0, 0, 0},
                                  bool need_dx = true) {
  CTMLLM_REQUIRE_KERNELS(D, "conv3d_backward");
  const Conv3dGeometry g = detail::conv3d_geometry(x, w, stride, padding, "conv3d_backward");
  const int64_t B = x.size(0), Cout = w.size(0);
  check_defined(dy, "conv3d_backward", "dy");
  check_shape(dy, {B, Cout, g.Do, g.Ho, g.Wo}, "conv3d_backward", "dy");
  Conv3dGrads<T, D> r;
  if (detail::is_patch_conv(g)) {
    const Tensor<T, D> rows_grad = dy.permute({0, 2, 3, 4, 1}).reshape({B, g.L(), Cout});
    const Tensor<T, D> region = detail::patch_region(x, g);
    auto pg = patch_embed_backward(rows_grad, region, w.reshape({Cout, -1}), g.kernel, PatchOrder::channel_first, need_dx);
    r.dw = pg.dweight.reshape(w.shape());
    r.db = pg.dbias;
    if (need_dx && region.shape() == x.shape()) {
      r.dx = pg.dx;
    } else if (need_dx) {
      r.dx = Tensor<T, D>::zeros(x.shape());
      detail::patch_region(r.dx, g).copy_from(pg.dx);
    }
    return r;
  }
  if (need_dx) r.dx = Tensor<T, D>::empty(x.shape());
  r.dw = Tensor<T, D>::empty(w.shape());
  r.db = Tensor<T, D>::empty({Cout});
  impl::conv3d_backward(dy.contiguous(), x.contiguous(), w.contiguous(), r.dx, r.dw, r.db, g);
  return r;
}

}  // namespace ctmllm::ops
