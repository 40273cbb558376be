#pragma once
// CPU kernels for separable resampling of volumes [B, C, D, H, W]: every output voxel is
// Σ_i wd(i) Σ_j wh(j) Σ_l ww(l) x[i, j, l] over a short list of inputs per axis. Trilinear, nearest
// and area interpolation (and average pooling) differ only in those lists, built here as PyTorch's
// UpSample.h and AdaptiveAveragePooling3d.cpp compute them.
#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops::impl {

// One axis: output o reads inputs index[t] with weights weight[t], t in [begin[o], begin[o + 1]).
template <class A>
struct ResampleAxis {
  int64_t in = 0;
  std::vector<int64_t> begin{0}, index;
  std::vector<A> weight;

  int64_t out() const { return int64_t(begin.size()) - 1; }
  void add(int64_t i, A w) {
    index.push_back(i);
    weight.push_back(w);
  }
  void end_output() { begin.push_back(int64_t(index.size())); }
};

// The same weights listed per input: input i feeds outputs index[t] (ascending) with weight[t].
template <class A>
ResampleAxis<A> transpose_axis(const ResampleAxis<A>& a) {
  ResampleAxis<A> t;
  t.in = a.out();
  t.begin.assign(size_t(a.in + 1), 0);
  for (int64_t i : a.index) ++t.begin[size_t(i + 1)];
  for (int64_t i = 0; i < a.in; ++i) t.begin[size_t(i + 1)] += t.begin[size_t(i)];
  t.index.resize(a.index.size());
  t.weight.resize(a.index.size());
  std::vector<int64_t> next(t.begin.begin(), t.begin.end() - 1);
  for (int64_t o = 0; o < a.out(); ++o)
    for (int64_t k = a.begin[size_t(o)]; k < a.begin[size_t(o + 1)]; ++k) {
      const int64_t pos = next[size_t(a.index[size_t(k)])]++;
      t.index[size_t(pos)] = o;
      t.weight[size_t(pos)] = a.weight[size_t(k)];
    }
  return t;
}

// s + w·x, rounded alike in both forward kernels below: one fused multiply-add where the target has
// FMA, a multiply then an add where it has none. Left to the compiler, a vectorized loop and a scalar
// one were contracted differently (an AVX2 build fused one and not the other, an AVX-512 build both),
// so the channels-last kernel's result differed from the planar one in the last bit.
template <class A>
A resample_mul_add(A w, A x, A s) {
#if defined(__FMA__) || defined(__aarch64__)
  return std::fma(w, x, s);
#else
  return w * x + s;
#endif
}

// PyTorch's compute_scales_value: 1/scale_factor when a scale factor was given, else in/out.
template <class A>
A resample_scale(int64_t in, int64_t out, std::optional<double> scale_factor) {
  return scale_factor ? A(1.0 / *scale_factor) : A(in) / A(out);
}

// Linear interpolation (compute_source_index_and_lambda): equal sizes copy; otherwise the source
// coordinate is scale·o (align_corners) or scale·(o + ½) − ½ clamped at 0, between two neighbours.
template <class A>
ResampleAxis<A> linear_axis(int64_t in, int64_t out, bool align_corners, std::optional<double> scale_factor) {
  ResampleAxis<A> a;
  a.in = in;
  const A scale = align_corners ? (out > 1 ? A(in - 1) / A(out - 1) : A(0)) : resample_scale<A>(in, out, scale_factor);
  for (int64_t o = 0; o < out; ++o) {
    if (in == out) {
      a.add(o, A(1));
    } else {
      const A src = align_corners ? scale * A(o) : std::max(scale * (A(o) + A(0.5)) - A(0.5), A(0));
      const int64_t i0 = std::min(int64_t(std::floor(src)), in - 1);
      const A l1 = std::clamp(src - A(i0), A(0), A(1));
      a.add(i0, A(1) - l1);
      a.add(i0 < in - 1 ? i0 + 1 : i0, l1);
    }
    a.end_output();
  }
  return a;
}

// Legacy 'nearest' (nearest_neighbor_compute_source_index): min(⌊o·scale⌋, in − 1), computed in
// float32 as PyTorch does. Unlike linear there is no equal-size special case: a scale factor of 1.1
// on 4 voxels reads 0, 0, 1, 2.
template <class A>
ResampleAxis<A> nearest_axis(int64_t in, int64_t out, std::optional<double> scale_factor) {
  ResampleAxis<A> a;
  a.in = in;
  const float scale = resample_scale<float>(in, out, scale_factor);
  for (int64_t o = 0; o < out; ++o) {
    a.add(std::min(int64_t(std::floor(float(o) * scale)), in - 1), A(1));
    a.end_output();
  }
  return a;
}

// 'area' = adaptive average pooling: output o averages inputs [⌊o·in/out⌋, ⌈(o+1)·in/out⌉).
template <class A>
ResampleAxis<A> area_axis(int64_t in, int64_t out) {
  ResampleAxis<A> a;
  a.in = in;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t lo = o * in / out, hi = ((o + 1) * in + out - 1) / out;
    for (int64_t i = lo; i < hi; ++i) a.add(i, A(1) / A(hi - lo));
    a.end_output();
  }
  return a;
}

template <class T>
using ResampleAxes = std::array<ResampleAxis<acc_t<T>>, 3>;

// Whether x [B, C, D, H, W] lies channels-last: a view of a contiguous [B, D, H, W, C], as the
// SPP projector's token grid does (tokens [B, N, C] transposed and reshaped).
template <class T>
bool is_channels_last_3d(const Tensor<T, Cpu>& x) {
  return x.rank() == 5 && x.size(1) > 1 && x.permute({0, 2, 3, 4, 1}).is_contiguous();
}

// resample_forward for a channels-last x: each output voxel sums whole channel vectors, in the same
// order as the planar kernel (innermost axis first), so no transposing copy of x is needed.
template <class T>
void resample_forward_channels_last(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& y, const ResampleAxes<T>& axes) {
  using A = acc_t<T>;
  const auto& [ad, ah, aw] = axes;
  const int64_t C = x.size(1), H = ah.in, W = aw.in, Do = ad.out(), Ho = ah.out(), Wo = aw.out();
  const int64_t voxels = Do * Ho * Wo, outputs = x.size(0) * voxels;
  parallel_for(0, outputs, std::max<int64_t>(1, 16384 / C), [&](int64_t lo, int64_t hi) {
    const size_t channels = static_cast<size_t>(C);  // not size_t(C): nvcc reads that as a function declaration
    std::vector<A> sd(channels), sh(channels), sw(channels);
    for (int64_t v = lo; v < hi; ++v) {
      const int64_t b = v / voxels, od = v / (Ho * Wo) % Do, oh = v / Wo % Ho, ow = v % Wo;
      const T* xb = x.data() + b * x.stride(0);
      std::fill(sd.begin(), sd.end(), A(0));
      for (int64_t td = ad.begin[size_t(od)]; td < ad.begin[size_t(od + 1)]; ++td) {
        std::fill(sh.begin(), sh.end(), A(0));
        for (int64_t th = ah.begin[size_t(oh)]; th < ah.begin[size_t(oh + 1)]; ++th) {
          std::fill(sw.begin(), sw.end(), A(0));
          for (int64_t tw = aw.begin[size_t(ow)]; tw < aw.begin[size_t(ow + 1)]; ++tw) {
            const T* in = xb + ((ad.index[size_t(td)] * H + ah.index[size_t(th)]) * W + aw.index[size_t(tw)]) * C;
            const A w = aw.weight[size_t(tw)];
            for (int64_t c = 0; c < C; ++c) sw[size_t(c)] = resample_mul_add(w, A(in[c]), sw[size_t(c)]);
          }
          const A w = ah.weight[size_t(th)];
          for (int64_t c = 0; c < C; ++c) sh[size_t(c)] = resample_mul_add(w, sw[size_t(c)], sh[size_t(c)]);
        }
        const A w = ad.weight[size_t(td)];
        for (int64_t c = 0; c < C; ++c) sd[size_t(c)] = resample_mul_add(w, sh[size_t(c)], sd[size_t(c)]);
      }
      T* out = y.data() + b * C * voxels + v % voxels;
      for (int64_t c = 0; c < C; ++c) out[c * voxels] = cast<T>(sd[size_t(c)]);
    }
  });
}

// y [B, C, Do, Ho, Wo] (contiguous) from x [B, C, D, H, W]; the axes map D->Do, H->Ho, W->Wo. A
// channels-last x is read in place, any other layout from a contiguous copy.
template <class T>
void resample_forward(const Tensor<T, Cpu>& x_in, const Tensor<T, Cpu>& y, const ResampleAxes<T>& axes) {
  if (is_channels_last_3d(x_in)) return resample_forward_channels_last(x_in, y, axes);
  const Tensor<T, Cpu> x = x_in.contiguous();
  using A = acc_t<T>;
  const auto& [ad, ah, aw] = axes;
  const int64_t D = ad.in, H = ah.in, W = aw.in, Do = ad.out(), Ho = ah.out(), Wo = aw.out();
  const int64_t planes = x.size(0) * x.size(1) * Do;
  parallel_for(0, planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, Ho * Wo)), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t od = p % Do;
      const T* xn = x.data() + p / Do * D * H * W;
      T* out = y.data() + p * Ho * Wo;
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          A sd(0);
          for (int64_t td = ad.begin[size_t(od)]; td < ad.begin[size_t(od + 1)]; ++td) {
            const T* plane = xn + ad.index[size_t(td)] * H * W;
            A sh(0);
            for (int64_t th = ah.begin[size_t(oh)]; th < ah.begin[size_t(oh + 1)]; ++th) {
              const T* row = plane + ah.index[size_t(th)] * W;
              A sw(0);
              for (int64_t tw = aw.begin[size_t(ow)]; tw < aw.begin[size_t(ow + 1)]; ++tw)
                sw = resample_mul_add(aw.weight[size_t(tw)], A(row[aw.index[size_t(tw)]]), sw);
              sh = resample_mul_add(ah.weight[size_t(th)], sw, sh);
            }
            sd = resample_mul_add(ad.weight[size_t(td)], sh, sd);
          }
          out[oh * Wo + ow] = cast<T>(sd);
        }
    }
  });
}

// dx [B, C, D, H, W] from dy [B, C, Do, Ho, Wo], both contiguous. Each task owns one input plane
// (b, c, id), gathers the output planes that read it and scatters within the plane in a fixed order.
template <class T>
void resample_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& dx, const ResampleAxes<T>& axes) {
  using A = acc_t<T>;
  const auto& [ad, ah, aw] = axes;
  const ResampleAxis<A> feeds = transpose_axis(ad);
  const int64_t D = ad.in, H = ah.in, W = aw.in, Do = ad.out(), Ho = ah.out(), Wo = aw.out();
  const int64_t planes = dx.size(0) * dx.size(1) * D;
  parallel_for(0, planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, H * W)), [&](int64_t lo, int64_t hi) {
    std::vector<A> acc(size_t(H * W));
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t id = p % D;
      const T* gn = dy.data() + p / D * Do * Ho * Wo;
      std::fill(acc.begin(), acc.end(), A(0));
      for (int64_t td = feeds.begin[size_t(id)]; td < feeds.begin[size_t(id + 1)]; ++td) {
        const T* g = gn + feeds.index[size_t(td)] * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; ++oh)
          for (int64_t th = ah.begin[size_t(oh)]; th < ah.begin[size_t(oh + 1)]; ++th) {
            A* row = acc.data() + ah.index[size_t(th)] * W;
            const A wdh = feeds.weight[size_t(td)] * ah.weight[size_t(th)];
            for (int64_t ow = 0; ow < Wo; ++ow) {
              const A v = wdh * A(g[oh * Wo + ow]);
              for (int64_t tw = aw.begin[size_t(ow)]; tw < aw.begin[size_t(ow + 1)]; ++tw)
                row[aw.index[size_t(tw)]] += v * aw.weight[size_t(tw)];
            }
          }
      }
      T* out = dx.data() + p * H * W;
      for (int64_t i = 0; i < H * W; ++i) out[i] = cast<T>(acc[size_t(i)]);
    }
  });
}

}  // namespace ctmllm::ops::impl
