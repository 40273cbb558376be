#pragma once
// CUDA kernels for rotary position embedding and its transpose (the Tensor<T, Cuda> overload of
// ops/cpu/rope.hpp's rope_rotate, same contract). As on the CPU, angles and their cos/sin are
// computed in double once per (batch, position, frequency) into a float table, then every head reads
// the table: float32 positions of tens of thousands would lose the angle's low bits. The inverse
// frequencies travel by value in the table kernel's parameters (no host-to-device copy, no sync).
#include <vector>

#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// Up to 256 frequencies: rotary dims up to 512, beyond every model's head dim.
struct RopeFrequencies {
  static constexpr int64_t kMax = 256;
  double f[kMax];
};

// table[r][i] = cos(p·f_i), table[r][h + i] = sign·sin(p·f_i) for row r = (b, s) and i < h, with
// p = positions[b, s] (any strides). (A template, as every kernel in a header: a plain __global__
// function would be defined once per .cu file.)
template <class Index>
__global__ void rope_table_kernel(const Index* __restrict__ positions, int64_t pos_sb, int64_t pos_ss, int64_t S,
                                  int64_t rows, int64_t h, RopeFrequencies freq, double sign, float* __restrict__ table) {
  for (int64_t k = global_thread(); k < rows * h; k += grid_threads()) {
    const int64_t r = k / h, i = k % h;
    const double a = double(positions[r / S * pos_sb + r % S * pos_ss]) * freq.f[i];
    double s, c;
    sincos(a, &s, &c);
    table[r * 2 * h + i] = float(c);
    table[r * 2 * h + h + i] = float(sign * s);
  }
}

// y[b, hd, s, d] (contiguous) from x (unit inner stride, outer strides sb, sh, ss): the rotated pair
// for d < 2h, x itself beyond.
template <class T>
__global__ void rope_rotate_kernel(const T* __restrict__ x, int64_t sb, int64_t sh, int64_t ss, int64_t H, int64_t S,
                                   int64_t Dh, int64_t h, const float* __restrict__ table, T* __restrict__ y, int64_t n) {
  for (int64_t e = global_thread(); e < n; e += grid_threads()) {
    const int64_t d = e % Dh, row = e / Dh;  // row = (b·H + hd)·S + s
    const int64_t s = row % S, hd = row / S % H, b = row / (S * H);
    const T* xr = x + b * sb + hd * sh + s * ss;
    float v;
    if (d < 2 * h) {
      const float* c = table + (b * S + s) * 2 * h;
      const int64_t i = d < h ? d : d - h;
      const float x1 = to_float(xr[i]), x2 = to_float(xr[h + i]);
      v = d < h ? x1 * c[i] - x2 * c[h + i] : x2 * c[i] + x1 * c[h + i];
    } else {
      v = to_float(xr[d]);
    }
    y[e] = from_float<T>(v);
  }
}

}  // namespace cuda_impl

namespace impl {

// With h = inv_freq.size() and angle a_i = position · inv_freq[i], for i < h:
//   y_i = x_i cos a_i − x_{i+h} sin(sign·a_i),  y_{i+h} = x_{i+h} cos a_i + x_i sin(sign·a_i);
// dims from 2h on pass through. x [B, H, S, Dh] with unit inner stride (any outer strides),
// positions [B, S] (any strides), y contiguous [B, H, S, Dh].
template <class T>
void rope_rotate(const Tensor<T, Cuda>& x, const Tensor<int64_t, Cuda>& positions, const std::vector<double>& inv_freq,
                 double sign, const Tensor<T, Cuda>& y) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "rope");
  const int64_t B = x.size(0), H = x.size(1), S = x.size(2), Dh = x.size(3), h = int64_t(inv_freq.size());
  CTMLLM_CHECK(h <= cuda_impl::RopeFrequencies::kMax, "rope: rotary_dim ", 2 * h, " exceeds the CUDA kernel's ",
               2 * cuda_impl::RopeFrequencies::kMax);
  if (y.numel() == 0) return;
  const cudaStream_t stream = cuda::current_stream();
  const Tensor<float, Cuda> table = Tensor<float, Cuda>::empty({B * S, 2 * h});
  cuda_impl::RopeFrequencies freq{};  // h >= 1: rope_inv_freq requires a positive rotary_dim
  for (int64_t i = 0; i < h; ++i) freq.f[i] = inv_freq[size_t(i)];
  cuda_impl::rope_table_kernel<<<cuda_impl::grid_for(B * S * h), cuda_impl::kThreads, 0, stream>>>(
      positions.data(), positions.stride(0), positions.stride(1), S, B * S, h, freq, sign, table.data());
  cuda::check_launch("rope_table_kernel");
  cuda_impl::rope_rotate_kernel<<<cuda_impl::grid_for(y.numel()), cuda_impl::kThreads, 0, stream>>>(
      x.data(), x.stride(0), x.stride(1), x.stride(2), H, S, Dh, h, table.data(), y.data(), y.numel());
  cuda::check_launch("rope_rotate_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
