#pragma once
// CPU kernels for the general conv3d: per batch item, vol2col of a chunk of output positions into
// col [K, n] (K = Cin·kd·kh·kw) and one GEMM with the weight [Cout, K]; backward recomputes col for
// dw and scatters Wᵀ·dy back with col2vol. Chunks bound the col buffer to kConvColumnBudget elements.
#include <algorithm>
#include <array>

#include "ctmllm/ops/cpu/patch_embed.hpp"

namespace ctmllm::ops {

// Sizes of one conv3d: input [C, D, H, W] per batch item, kernel, stride, padding, output [Do, Ho, Wo].
struct Conv3dGeometry {
  int64_t C, D, H, W;
  std::array<int64_t, 3> kernel, stride, padding;
  int64_t Do, Ho, Wo;

  int64_t K() const { return C * kernel[0] * kernel[1] * kernel[2]; }
  int64_t L() const { return Do * Ho * Wo; }
};

namespace impl {

inline constexpr int64_t kConvColumnBudget = int64_t(1) << 21;  // 8 MiB of float columns

// Output positions per chunk: fixed by the shape, so results do not depend on the thread count.
inline int64_t conv_chunk(const Conv3dGeometry& g) {
  return std::clamp<int64_t>(kConvColumnBudget / g.K(), 1, g.L());
}

// Calls f(od, oh, ow_begin, ow_end, q) for each output row (od, oh) that meets the flat output range
// [begin, end); q is the position of (od, oh, ow_begin) relative to `base`.
template <class F>
void for_each_output_run(const Conv3dGeometry& g, int64_t begin, int64_t end, int64_t base, F&& f) {
  for (int64_t row = begin / g.Wo; row * g.Wo < end; ++row) {
    const int64_t a = std::max(begin, row * g.Wo), b = std::min(end, (row + 1) * g.Wo);
    f(row / g.Ho, row % g.Ho, a - row * g.Wo, b - row * g.Wo, a - base);
  }
}

// col [K, l1 - l0] = the input voxels under each kernel offset k = (c, i, j, l) for output positions
// [l0, l1); zero where the window reaches into the padding. x [C, D, H, W] contiguous.
template <class T>
void vol2col(const T* x, const Conv3dGeometry& g, int64_t l0, int64_t l1, T* col) {
  const auto [kd, kh, kw] = g.kernel;
  const auto [sd, sh, sw] = g.stride;
  const auto [pd, ph, pw] = g.padding;
  const int64_t n = l1 - l0;
  parallel_for(0, g.K(), std::max<int64_t>(1, 4096 / n), [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) {
      const int64_t c = k / (kd * kh * kw), i = k / (kh * kw) % kd, j = k / kw % kh, l = k % kw;
      const T* src = x + c * g.D * g.H * g.W;
      T* dst = col + k * n;
      for_each_output_run(g, l0, l1, l0, [&](int64_t od, int64_t oh, int64_t ow0, int64_t ow1, int64_t q) {
        const int64_t id = od * sd - pd + i, ih = oh * sh - ph + j;
        if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) {
          std::fill_n(dst + q, ow1 - ow0, T(0));
          return;
        }
        const T* row = src + (id * g.H + ih) * g.W;
        for (int64_t ow = ow0; ow < ow1; ++ow) {
          const int64_t iw = ow * sw - pw + l;
          dst[q + ow - ow0] = iw >= 0 && iw < g.W ? row[iw] : T(0);
        }
      });
    }
  });
}

// dx [C, D, H, W] += the columns of dcol [K, l1 - l0] scattered back to the voxels they read. Each
// task owns one input plane (c, id) and gathers every column that touches it, in a fixed order.
template <class T>
void col2vol(const T* dcol, const Conv3dGeometry& g, int64_t l0, int64_t l1, T* dx) {
  const auto [kd, kh, kw] = g.kernel;
  const auto [sd, sh, sw] = g.stride;
  const auto [pd, ph, pw] = g.padding;
  const int64_t n = l1 - l0, plane_size = g.Ho * g.Wo;
  parallel_for(0, g.C * g.D, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t c = p / g.D, id = p % g.D;
      T* plane = dx + p * g.H * g.W;
      for (int64_t i = 0; i < kd; ++i) {
        const int64_t t = id + pd - i;
        if (t < 0 || t % sd != 0 || t / sd >= g.Do) continue;
        const int64_t od = t / sd, begin = std::max(l0, od * plane_size), end = std::min(l1, (od + 1) * plane_size);
        if (begin >= end) continue;
        for (int64_t j = 0; j < kh; ++j)
          for (int64_t l = 0; l < kw; ++l) {
            const T* src = dcol + (((c * kd + i) * kh + j) * kw + l) * n;
            for_each_output_run(g, begin, end, l0, [&](int64_t, int64_t oh, int64_t ow0, int64_t ow1, int64_t q) {
              const int64_t ih = oh * sh - ph + j;
              if (ih < 0 || ih >= g.H) return;
              T* row = plane + ih * g.W;
              for (int64_t ow = ow0; ow < ow1; ++ow) {
                const int64_t iw = ow * sw - pw + l;
                if (iw >= 0 && iw < g.W) row[iw] += src[q + ow - ow0];
              }
            });
          }
      }
    }
  });
}

// y [B, Cout, Do, Ho, Wo] = conv(x [B, C, D, H, W], w [Cout, K]) + b [Cout] (b may be undefined).
template <class T>
void conv3d_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& b, const Tensor<T, Cpu>& y,
                    const Conv3dGeometry& g) {
  const int64_t B = x.size(0), Cout = w.size(0), K = g.K(), L = g.L(), chunk = conv_chunk(g);
  std::vector<T> col(size_t(K * chunk));
  const ConstVolumeMap<T> wm(w.data(), Cout, K, Eigen::OuterStride<>(K));
  for (int64_t bi = 0; bi < B; ++bi) {
    T* yb = y.data() + bi * Cout * L;
    if (b.defined())
      for (int64_t co = 0; co < Cout; ++co) std::fill_n(yb + co * L, L, b.data()[co]);
    for (int64_t l0 = 0; l0 < L; l0 += chunk) {
      const int64_t n = std::min(chunk, L - l0);
      vol2col(x.data() + bi * g.C * g.D * g.H * g.W, g, l0, l0 + n, col.data());
      // yᵀ[l0:l0+n, :] = colᵀ · wᵀ: rows are output positions, plenty to split even for few channels.
      volume_gemm(VolumeMap<T>(yb + l0, Cout, n, Eigen::OuterStride<>(L)).transpose(),
                  ConstVolumeMap<T>(col.data(), K, n, Eigen::OuterStride<>(n)).transpose(), wm.transpose(),
                  b.defined());
    }
  }
}

// Given dy [B, Cout, Do, Ho, Wo]: dx (skipped when undefined), dw [Cout, K], db [Cout].
template <class T>
void conv3d_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w,
                     const Tensor<T, Cpu>& dx, const Tensor<T, Cpu>& dw, const Tensor<T, Cpu>& db,
                     const Conv3dGeometry& g) {
  using A = acc_t<T>;
  const int64_t B = x.size(0), Cout = w.size(0), K = g.K(), L = g.L(), chunk = conv_chunk(g);
  const int64_t volume = g.C * g.D * g.H * g.W;
  std::vector<T> col(size_t(K * chunk)), dcol(dx.defined() ? size_t(K * chunk) : 0);
  const ConstVolumeMap<T> wm(w.data(), Cout, K, Eigen::OuterStride<>(K));
  VolumeMap<T> dwm(dw.data(), Cout, K, Eigen::OuterStride<>(K));
  std::fill_n(dw.data(), dw.numel(), T(0));
  if (dx.defined()) std::fill_n(dx.data(), dx.numel(), T(0));
  for (int64_t bi = 0; bi < B; ++bi) {
    const T* gb = dy.data() + bi * Cout * L;
    for (int64_t l0 = 0; l0 < L; l0 += chunk) {
      const int64_t n = std::min(chunk, L - l0);
      const ConstVolumeMap<T> gm(gb + l0, Cout, n, Eigen::OuterStride<>(L));
      vol2col(x.data() + bi * volume, g, l0, l0 + n, col.data());
      const ConstVolumeMap<T> cm(col.data(), K, n, Eigen::OuterStride<>(n));
      // dwᵀ [K, Cout] += col · dyᵀ, summed over chunks and batch items in order.
      volume_gemm(dwm.transpose(), cm, gm.transpose(), true);
      if (dx.defined()) {
        volume_gemm(VolumeMap<T>(dcol.data(), K, n, Eigen::OuterStride<>(n)), wm.transpose(), gm, false);
        col2vol(dcol.data(), g, l0, l0 + n, dx.data() + bi * volume);
      }
    }
  }
  parallel_for(0, Cout, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t co = lo; co < hi; ++co) {
      A s(0);
      for (int64_t bi = 0; bi < B; ++bi) {
        const T* gr = dy.data() + (bi * Cout + co) * L;
        for (int64_t l = 0; l < L; ++l) s += A(gr[l]);
      }
      db.data()[co] = cast<T>(s);
    }
  });
}

}  // namespace impl
}  // namespace ctmllm::ops
