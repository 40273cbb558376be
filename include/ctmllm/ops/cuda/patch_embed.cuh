#pragma once
// Patch embedding on the GPU (the Tensor<T, Cuda> overloads of ops/cpu/patch_embed.hpp). patchify
// and unpatchify are one strided copy each (copy.cuh): the volume [B, C, D, H, W], any strides, seen
// as the 8-d view [B, gd, gh, gw, C, p1, p2, p3] (channel_first) or [B, gd, gh, gw, p1, p2, p3, C]
// (channel_last) is exactly the patch rows [B, N, P] in row-major order. The projection is linear
// and its backward on cuBLASLt (matmul.cuh).
#include <array>

#include "ctmllm/ops/cpu/patch_embed.hpp"
#include "ctmllm/ops/cuda/copy.cuh"
#include "ctmllm/ops/cuda/matmul.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// The shape and strides of `volume` viewed in patch-row order (see above).
template <class T>
void patch_order_view(const Tensor<T, Cuda>& volume, std::array<int64_t, 3> patch, PatchOrder order, Shape& shape,
                      Shape& strides) {
  const Shape& st = volume.strides();
  const int64_t B = volume.size(0), C = volume.size(1);
  const int64_t gd = volume.size(2) / patch[0], gh = volume.size(3) / patch[1], gw = volume.size(4) / patch[2];
  shape = Shape{B, gd, gh, gw};
  strides = Shape{st[0], patch[0] * st[2], patch[1] * st[3], patch[2] * st[4]};
  if (order == PatchOrder::channel_first) {
    shape.push_back(C);
    strides.push_back(st[1]);
  }
  for (int i = 0; i < 3; ++i) {
    shape.push_back(patch[size_t(i)]);
    strides.push_back(st[2 + i]);
  }
  if (order == PatchOrder::channel_last) {
    shape.push_back(C);
    strides.push_back(st[1]);
  }
}

// Copies between a volume (any strides) and its patch rows [B, N, P] (contiguous).
template <bool kToPatches, class T>
void patch_copy(const Tensor<T, Cuda>& volume, const Tensor<T, Cuda>& patches, std::array<int64_t, 3> patch,
                PatchOrder order) {
  Shape shape, strides;
  patch_order_view(volume, patch, order, shape, strides);
  const Shape rows = contiguous_strides(shape);
  if constexpr (kToPatches) launch_strided_copy(patches.data(), rows, volume.data(), strides, shape, sizeof(T));
  else launch_strided_copy(volume.data(), strides, patches.data(), rows, shape, sizeof(T));
}

// A [M, K] view of contiguous [..., K] rows, or undefined.
template <class T>
Tensor<T, Cuda> as_rows(const Tensor<T, Cuda>& t, int64_t K) {
  return t.defined() ? t.reshape({-1, K}) : t;
}

}  // namespace cuda_impl

namespace impl {

// patches [B, N, P] = rows of x [B, C, D, H, W] (any strides).
template <class T>
void patchify(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& patches, std::array<int64_t, 3> patch, PatchOrder order) {
  cuda_impl::patch_copy<true>(x, patches, patch, order);
}

// volume [B, C, D, H, W] (any strides) = the inverse placement of patches [B, N, P].
template <class T>
void unpatchify(const Tensor<T, Cuda>& patches, const Tensor<T, Cuda>& volume, std::array<int64_t, 3> patch,
                PatchOrder order) {
  cuda_impl::patch_copy<false>(volume, patches, patch, order);
}

// out [M, E] = patches [M, P] · weight [E, P]ᵀ + bias [E]; contiguous, bias may be undefined.
template <class T>
void patch_linear_forward(const Tensor<T, Cuda>& patches, const Tensor<T, Cuda>& weight, const Tensor<T, Cuda>& bias,
                          const Tensor<T, Cuda>& out) {
  linear(cuda_impl::as_rows(patches, weight.size(1)), weight, bias, cuda_impl::as_rows(out, weight.size(0)));
}

// Given dy [M, E]: dpatches [M, P] = dy · weight (skipped when undefined), dweight [E, P] = dyᵀ ·
// patches, dbias [E] = Σ_m dy. All contiguous.
template <class T>
void patch_linear_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& patches, const Tensor<T, Cuda>& weight,
                           const Tensor<T, Cuda>& dpatches, const Tensor<T, Cuda>& dweight, const Tensor<T, Cuda>& dbias) {
  const int64_t E = weight.size(0), P = weight.size(1);
  linear_backward(cuda_impl::as_rows(dy, E), cuda_impl::as_rows(patches, P), weight, cuda_impl::as_rows(dpatches, P),
                  dweight, dbias);
}

}  // namespace impl
}  // namespace ctmllm::ops
