#pragma once
// CPU kernels for patch embedding: patchify / unpatchify (a strided copy between a volume and its
// patch rows) and the one GEMM that projects the rows. Also the row-blocked GEMM the volume ops share.
#include <algorithm>
#include <array>
#include <vector>

#include <Eigen/Core>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops {

// Element order inside one patch row. channel_last is (p1 p2 p3 c), the M3D/MONAI "perceptron"
// flattening; channel_first is (c p1 p2 p3), the order of a Conv3d weight [E, C, p1, p2, p3].
enum class PatchOrder { channel_last, channel_first };

namespace impl {

// Row-major matrix views over tensor memory.
template <class T>
using VolumeMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using VolumeMap = Eigen::Map<VolumeMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstVolumeMap = Eigen::Map<const VolumeMatrix<T>, 0, Eigen::OuterStride<>>;

inline constexpr int64_t kVolumeGemmRows = 256;

// c = a·b, or c += a·b, for Eigen expressions. Eigen's own threading splits a product by the thread
// count and that changes the rounding, so c's rows are cut into blocks fixed by the shape alone,
// each a single-threaded Eigen product. There are at least two blocks, so with several threads they
// always run inside a parallel region, where Eigen does not spawn threads of its own.
template <class C, class A, class B>
void volume_gemm(C c, const A& a, const B& b, bool accumulate) {
  const int64_t m = c.rows();
  const int64_t blocks = m < 2 ? 1 : std::max<int64_t>(2, (m + kVolumeGemmRows - 1) / kVolumeGemmRows);
  parallel_for(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t r0 = m * i / blocks, rows = m * (i + 1) / blocks - r0;
      auto dst = c.middleRows(r0, rows);
      if (accumulate) dst.noalias() += a.middleRows(r0, rows) * b;
      else dst.noalias() = a.middleRows(r0, rows) * b;
    }
  });
}

// Copies between a volume [B, C, D, H, W] (any strides) and its patch rows [B, N, P] (contiguous):
// token n = (zd, zh, zw) runs row-major over the grid [D/p1, H/p2, W/p3], P = C·p1·p2·p3.
// Each row is one patch, so rows are independent in both directions.
template <bool kToPatches, class T>
void patch_copy(const Tensor<T, Cpu>& volume, const Tensor<T, Cpu>& patches, std::array<int64_t, 3> patch,
                PatchOrder order) {
  const auto [p1, p2, p3] = patch;
  const int64_t C = volume.size(1), gh = volume.size(3) / p2, gw = volume.size(4) / p3;
  const int64_t N = patches.size(1), P = patches.size(2);
  const Shape& st = volume.strides();
  T* vol = volume.data();
  T* rows = patches.data();
  // channel_last interleaves channels innermost: a run along W lands every C-th element.
  const bool first = order == PatchOrder::channel_first;
  const int64_t step = first ? 1 : C;
  const bool contiguous_runs = st[4] == 1 && step == 1;
  parallel_for(0, patches.size(0) * N, std::max<int64_t>(1, 16384 / P), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / N, n = r % N, zd = n / (gh * gw), zh = n / gw % gh, zw = n % gw;
      T* row = rows + r * P;
      T* corner = vol + b * st[0] + zd * p1 * st[2] + zh * p2 * st[3] + zw * p3 * st[4];
      for (int64_t c = 0; c < C; ++c)
        for (int64_t a = 0; a < p1; ++a)
          for (int64_t e = 0; e < p2; ++e) {
            T* v = corner + c * st[1] + a * st[2] + e * st[3];  // p3 voxels along W
            T* p = row + (first ? ((c * p1 + a) * p2 + e) * p3 : (a * p2 + e) * p3 * C + c);
            if (contiguous_runs) {
              if constexpr (kToPatches) std::copy_n(v, p3, p);
              else std::copy_n(p, p3, v);
            } else {
              for (int64_t f = 0; f < p3; ++f) {
                if constexpr (kToPatches) p[f * step] = v[f * st[4]];
                else v[f * st[4]] = p[f * step];
              }
            }
          }
    }
  });
}

// patches [B, N, P] = rows of x [B, C, D, H, W] (any strides).
template <class T>
void patchify(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& patches, std::array<int64_t, 3> patch, PatchOrder order) {
  patch_copy<true>(x, patches, patch, order);
}
// volume [B, C, D, H, W] (any strides) = the inverse placement of patches [B, N, P].
template <class T>
void unpatchify(const Tensor<T, Cpu>& patches, const Tensor<T, Cpu>& volume, std::array<int64_t, 3> patch,
                PatchOrder order) {
  patch_copy<false>(volume, patches, patch, order);
}

// out [M, E] = patches [M, P] · weight [E, P]ᵀ + bias [E]; contiguous, bias may be undefined.
template <class T>
void patch_linear_forward(const Tensor<T, Cpu>& patches, const Tensor<T, Cpu>& weight, const Tensor<T, Cpu>& bias,
                          const Tensor<T, Cpu>& out) {
  const int64_t E = weight.size(0), P = weight.size(1), M = patches.numel() / P;
  VolumeMap<T> y(out.data(), M, E, Eigen::OuterStride<>(E));
  if (bias.defined()) {
    const T* bv = bias.data();
    parallel_for(0, M, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, E)), [&](int64_t lo, int64_t hi) {
      for (int64_t m = lo; m < hi; ++m) std::copy_n(bv, E, out.data() + m * E);
    });
  }
  volume_gemm(y, ConstVolumeMap<T>(patches.data(), M, P, Eigen::OuterStride<>(P)),
              ConstVolumeMap<T>(weight.data(), E, P, Eigen::OuterStride<>(P)).transpose(), bias.defined());
}

// Given dy [M, E]: dpatches [M, P] = dy · weight (skipped when undefined), dweight [E, P] = dyᵀ · patches,
// dbias [E] = Σ_m dy. All contiguous.
template <class T>
void patch_linear_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& patches, const Tensor<T, Cpu>& weight,
                           const Tensor<T, Cpu>& dpatches, const Tensor<T, Cpu>& dweight, const Tensor<T, Cpu>& dbias) {
  using A = acc_t<T>;
  const int64_t E = weight.size(0), P = weight.size(1), M = dy.numel() / E;
  const ConstVolumeMap<T> g(dy.data(), M, E, Eigen::OuterStride<>(E));
  const ConstVolumeMap<T> rows(patches.data(), M, P, Eigen::OuterStride<>(P));
  if (dpatches.defined())
    volume_gemm(VolumeMap<T>(dpatches.data(), M, P, Eigen::OuterStride<>(P)), g,
                ConstVolumeMap<T>(weight.data(), E, P, Eigen::OuterStride<>(P)), false);
  volume_gemm(VolumeMap<T>(dweight.data(), E, P, Eigen::OuterStride<>(P)), g.transpose(), rows, false);
  // Column sums in blocks of columns, rows in order: the same sum whatever the split.
  const T* gy = dy.data();
  parallel_for(0, E, 64, [&](int64_t lo, int64_t hi) {
    std::vector<A> sum(size_t(hi - lo), A(0));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t e = lo; e < hi; ++e) sum[size_t(e - lo)] += A(gy[m * E + e]);
    for (int64_t e = lo; e < hi; ++e) dbias.data()[e] = cast<T>(sum[size_t(e - lo)]);
  });
}

}  // namespace impl
}  // namespace ctmllm::ops
