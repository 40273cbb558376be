#pragma once
// Patch embedding as a reshape plus one GEMM: patchify cuts x [B, C, D, H, W] into non-overlapping
// p1×p2×p3 patches, one row each ([B, N, P], N = (D/p1)(H/p2)(W/p3), P = C·p1·p2·p3), and
// patch_embed projects the rows: [B, N, P] · weight [E, P]ᵀ + bias [E] -> [B, N, E].
#include <array>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/patch_embed.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/patch_embed.cuh"
#endif

namespace ctmllm::ops {

// The patch grid [D/p1, H/p2, W/p3] of a volume shape (the argument `name` of `op`); an Error naming
// both when a dimension does not divide or the patch is not positive.
inline std::array<int64_t, 3> patch_grid(const Shape& volume, std::array<int64_t, 3> patch, const char* op,
                                         const char* name) {
  CTMLLM_CHECK(volume.rank() == 5, op, ": ", name, " must have rank 5 [B, C, D, H, W], got shape ", volume);
  CTMLLM_CHECK(volume[1] > 0, op, ": ", name, " ", volume, " has no channels");
  for (int i = 0; i < 3; ++i)
    CTMLLM_CHECK(patch[i] > 0, op, ": the patch must be positive, got ", patch[i], " for dimension ", 2 + i);
  std::array<int64_t, 3> grid{};
  for (int i = 0; i < 3; ++i) {
    CTMLLM_CHECK(volume[2 + i] % patch[i] == 0, op, ": ", name, " ", volume, " is not divisible by patch ",
                 Shape{patch[0], patch[1], patch[2]}, " (dimension ", 2 + i, ": ", volume[2 + i], " % ", patch[i],
                 " != 0)");
    grid[i] = volume[2 + i] / patch[i];
  }
  return grid;
}

// x [B, C, D, H, W] -> [B, N, P] (a copy; x may be strided).
template <class T, class D>
Tensor<T, D> patchify(const Tensor<T, D>& x, std::array<int64_t, 3> patch, PatchOrder order = PatchOrder::channel_last) {
  CTMLLM_REQUIRE_KERNELS(D, "patchify");
  check_defined(x, "patchify", "x");
  const auto g = patch_grid(x.shape(), patch, "patchify", "x");
  Tensor<T, D> out = Tensor<T, D>::empty({x.size(0), g[0] * g[1] * g[2], x.size(1) * patch[0] * patch[1] * patch[2]});
  impl::patchify(x, out, patch, order);
  return out;
}

// The inverse of patchify (and its backward): patches [B, N, P] -> a volume of `volume_shape`.
template <class T, class D>
Tensor<T, D> unpatchify(const Tensor<T, D>& patches, const Shape& volume_shape, std::array<int64_t, 3> patch,
                        PatchOrder order = PatchOrder::channel_last) {
  CTMLLM_REQUIRE_KERNELS(D, "unpatchify");
  check_defined(patches, "unpatchify", "patches");
  const auto g = patch_grid(volume_shape, patch, "unpatchify", "volume_shape");
  check_shape(patches, {volume_shape[0], g[0] * g[1] * g[2], volume_shape[1] * patch[0] * patch[1] * patch[2]},
              "unpatchify", "patches");
  Tensor<T, D> out = Tensor<T, D>::empty(volume_shape);
  impl::unpatchify(patches.contiguous(), out, patch, order);
  return out;
}

namespace detail {
// Checks weight [E, P] against x and the patch for patch_embed and its backward.
template <class T, class D>
void check_patch_weight(const Tensor<T, D>& x, const Tensor<T, D>& weight, std::array<int64_t, 3> patch, const char* op) {
  check_defined(weight, op, "weight");
  check_rank(weight, 2, op, "weight");
  const int64_t P = x.size(1) * patch[0] * patch[1] * patch[2];
  CTMLLM_CHECK(weight.size(1) == P, op, ": weight ", weight.describe(), " must have P = C·p1·p2·p3 = ", P,
               " columns for x ", x.describe(), " and patch ", Shape{patch[0], patch[1], patch[2]});
}
}  // namespace detail

// x [B, C, D, H, W], weight [E, P], bias [E] or undefined -> [B, N, E].
template <class T, class D>
Tensor<T, D> patch_embed(const Tensor<T, D>& x, const Tensor<T, D>& weight, const Tensor<T, D>& bias,
                         std::array<int64_t, 3> patch, PatchOrder order = PatchOrder::channel_last) {
  CTMLLM_REQUIRE_KERNELS(D, "patch_embed");
  check_defined(x, "patch_embed", "x");
  patch_grid(x.shape(), patch, "patch_embed", "x");
  detail::check_patch_weight(x, weight, patch, "patch_embed");
  if (bias.defined()) check_shape(bias, {weight.size(0)}, "patch_embed", "bias");
  const Tensor<T, D> rows = patchify(x, patch, order);
  Tensor<T, D> out = Tensor<T, D>::empty({rows.size(0), rows.size(1), weight.size(0)});
  impl::patch_linear_forward(rows, weight.contiguous(), bias.defined() ? bias.contiguous() : bias, out);
  return out;
}

template <class T, class D>
struct PatchEmbedGrads {
  Tensor<T, D> dx;       // [B, C, D, H, W]; undefined when not asked for
  Tensor<T, D> dweight;  // [E, P]
  Tensor<T, D> dbias;    // [E]
};

// Gradients of patch_embed given dy [B, N, E]. need_dx = false skips dx (pixels need no gradient).
template <class T, class D>
PatchEmbedGrads<T, D> patch_embed_backward(const Tensor<T, D>& dy, const Tensor<T, D>& x, const Tensor<T, D>& weight,
                                           std::array<int64_t, 3> patch, PatchOrder order = PatchOrder::channel_last,
                                           bool need_dx = true) {
  CTMLLM_REQUIRE_KERNELS(D, "patch_embed_backward");
  check_defined(dy, "patch_embed_backward", "dy");
  check_defined(x, "patch_embed_backward", "x");
  patch_grid(x.shape(), patch, "patch_embed_backward", "x");
  detail::check_patch_weight(x, weight, patch, "patch_embed_backward");
  const Tensor<T, D> rows = patchify(x, patch, order);
  check_shape(dy, {rows.size(0), rows.size(1), weight.size(0)}, "patch_embed_backward", "dy");
  PatchEmbedGrads<T, D> g;
  Tensor<T, D> drows = need_dx ? Tensor<T, D>::empty(rows.shape()) : Tensor<T, D>();
  g.dweight = Tensor<T, D>::empty(weight.shape());
  g.dbias = Tensor<T, D>::empty({weight.size(0)});
  impl::patch_linear_backward(dy.contiguous(), rows, weight.contiguous(), drows, g.dweight, g.dbias);
  if (need_dx) g.dx = unpatchify(drows, x.shape(), patch, order);
  return g;
}

}  // namespace ctmllm::ops
