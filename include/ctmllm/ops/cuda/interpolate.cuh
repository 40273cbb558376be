#pragma once
// CUDA kernels for separable volume resampling (the Tensor<T, Cuda> overloads of
// ops/cpu/interpolate.hpp's resample_forward / resample_backward): trilinear, nearest and area
// interpolation and average pooling, whose per-axis input lists the host builds exactly as for the
// CPU and copies over (two transfers per call). One thread per output voxel sums its lists in the
// CPU's order. The backward is the same gather over the transposed lists (each input voxel sums the
// outputs that read it): deterministic, no atomics.
#include <vector>

#include "ctmllm/ops/cpu/interpolate.hpp"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// One axis in device memory: output o reads index[t] with weight[t], t in [begin[o], begin[o + 1]).
struct DeviceAxis {
  const int64_t* begin;
  const int64_t* index;
  const float* weight;
  int64_t in, out;
};

// The three axes of a resampling, copied to the device.
struct DeviceAxes {
  Tensor<int64_t, Cuda> ints;  // each axis's begin then index
  Tensor<float, Cuda> weights;
  DeviceAxis axis[3];

  explicit DeviceAxes(const std::array<impl::ResampleAxis<float>, 3>& axes) {
    std::vector<int64_t> i;
    std::vector<float> w;
    size_t at_i[3], at_w[3];
    for (int a = 0; a < 3; ++a) {
      at_i[a] = i.size();
      at_w[a] = w.size();
      i.insert(i.end(), axes[a].begin.begin(), axes[a].begin.end());
      i.insert(i.end(), axes[a].index.begin(), axes[a].index.end());
      w.insert(w.end(), axes[a].weight.begin(), axes[a].weight.end());
    }
    ints = Tensor<int64_t, Cuda>::from(std::span<const int64_t>(i), Shape{int64_t(i.size())});
    weights = Tensor<float, Cuda>::from(std::span<const float>(w), Shape{int64_t(w.size())});
    for (int a = 0; a < 3; ++a) {
      const int64_t* begin = ints.data() + at_i[a];
      axis[a] = DeviceAxis{begin, begin + axes[a].begin.size(), weights.data() + at_w[a], axes[a].in, axes[a].out()};
    }
  }
};

// y [planes, Do, Ho, Wo] = Σ_d wd Σ_h wh Σ_w ww x[plane, d, h, w] over x [planes, D, H, W].
template <class T>
__global__ void resample_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t total, DeviceAxis ad, DeviceAxis ah,
                                DeviceAxis aw) {
  const int64_t Do = ad.out, Ho = ah.out, Wo = aw.out, plane_in = ad.in * ah.in * aw.in;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t ow = e % Wo, oh = e / Wo % Ho, od = e / (Wo * Ho) % Do, p = e / (Wo * Ho * Do);
    const T* xn = x + p * plane_in;
    float sd = 0.0f;
    for (int64_t td = ad.begin[od]; td < ad.begin[od + 1]; ++td) {
      const T* slab = xn + ad.index[td] * ah.in * aw.in;
      float sh = 0.0f;
      for (int64_t th = ah.begin[oh]; th < ah.begin[oh + 1]; ++th) {
        const T* row = slab + ah.index[th] * aw.in;
        float sw = 0.0f;
        for (int64_t tw = aw.begin[ow]; tw < aw.begin[ow + 1]; ++tw) sw += aw.weight[tw] * to_float(row[aw.index[tw]]);
        sh += ah.weight[th] * sw;
      }
      sd += ad.weight[td] * sh;
    }
    y[e] = from_float<T>(sd);
  }
}

template <class T>
void resample(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& y, const std::array<impl::ResampleAxis<float>, 3>& axes) {
  const int64_t total = y.numel();
  if (total == 0) return;
  const DeviceAxes dev(axes);
  resample_kernel<<<grid_for(total), kThreads, 0, cuda::current_stream()>>>(x.data(), y.data(), total, dev.axis[0],
                                                                           dev.axis[1], dev.axis[2]);
  cuda::check_launch("resample_kernel");
}

}  // namespace cuda_impl

namespace impl {

// y [B, C, Do, Ho, Wo] (contiguous) from x [B, C, D, H, W] (any layout: a contiguous copy is read);
// the axes map D->Do, H->Ho, W->Wo.
template <class T>
void resample_forward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& y, const ResampleAxes<T>& axes) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "resample");
  cuda_impl::resample(x.contiguous(), y, axes);
}

// dx [B, C, D, H, W] from dy [B, C, Do, Ho, Wo], both contiguous.
template <class T>
void resample_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& dx, const ResampleAxes<T>& axes) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "resample_backward");
  cuda_impl::resample(dy, dx, {transpose_axis(axes[0]), transpose_axis(axes[1]), transpose_axis(axes[2])});
}

}  // namespace impl
}  // namespace ctmllm::ops
