#pragma once
// CUDA kernels for rotary position embedding, its transpose and rope_into_cache (the
// Tensor<T, Cuda> overloads of ops/cpu/rope.hpp's rope_rotate and rope_into_cache, same
// contracts). As on the CPU, angles and their cos/sin are computed in double once per (batch,
// position, frequency) into a float table, then every head reads the table: float32 positions of
// tens of thousands would lose the angle's low bits. The inverse frequencies travel by value in the
// kernels' parameters (no host-to-device copy, no sync).
#include <algorithm>
#include <vector>

#include "ctmllm/ops/cpu/rope.hpp"
#include "ctmllm/ops/cuda/index_check.cuh"
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

// Element d of the rotated head row xr: the rotated pair for d < 2h (cos c[i], sin c[h + i]), xr
// itself beyond. Products and sum rounded one by one (never contracted into an FMA), so that the
// kernels below agree bit for bit whatever the compiler fuses around them.
template <class T>
__device__ __forceinline__ float rope_element(const T* __restrict__ xr, int64_t d, int64_t h, const float* c) {
  if (d >= 2 * h) return to_float(xr[d]);
  const int64_t i = d < h ? d : d - h;
  const float x1 = to_float(xr[i]), x2 = to_float(xr[h + i]);
  return d < h ? __fsub_rn(__fmul_rn(x1, c[i]), __fmul_rn(x2, c[h + i]))
               : __fadd_rn(__fmul_rn(x2, c[i]), __fmul_rn(x1, c[h + i]));
}

// y[b, hd, s, d] (contiguous) from x (unit inner stride, outer strides sb, sh, ss).
template <class T>
__global__ void rope_rotate_kernel(const T* __restrict__ x, int64_t sb, int64_t sh, int64_t ss, int64_t H, int64_t S,
                                   int64_t Dh, int64_t h, const float* __restrict__ table, T* __restrict__ y, int64_t n) {
  for (int64_t e = global_thread(); e < n; e += grid_threads()) {
    const int64_t d = e % Dh, row = e / Dh;  // row = (b·H + hd)·S + s
    const int64_t s = row % S, hd = row / S % H, b = row / (S * H);
    y[e] = from_float<T>(rope_element(x + b * sb + hd * sh + s * ss, d, h, table + (b * S + s) * 2 * h));
  }
}

// A [B, H, S, Dh] operand with unit inner stride.
template <class T>
struct RopeHeads {
  const T* p;
  int64_t sb, sh, ss;
  __device__ const T* row(int64_t b, int64_t hd, int64_t s) const { return p + b * sb + hd * sh + s * ss; }
};

// Where rope_into_cache writes: q's rotation [B, Hq, S, Dh] and the caches [B, Hkv, L, Dh], all
// contiguous, at slot index[s] (when index is not null) or first + s.
template <class T>
struct RopeCacheOut {
  T* q;
  T* keys;
  T* values;
  int64_t L, first;
  const int64_t* index;
};

// rope_into_cache in one pass. Block (r, g) takes row r = b·S + s and heads [g·per_block, …) of the
// Hq + 2·Hkv heads in the order q, k, v; the row's cos/sin table, computed once per block as
// rope_table_kernel computes it, lies in shared memory. A slot outside [0, L) (only reachable where
// the host check is not due) writes no key and no value.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    rope_into_cache_kernel(RopeHeads<T> q, RopeHeads<T> k, RopeHeads<T> v, const int64_t* __restrict__ positions,
                           int64_t pos_sb, int64_t pos_ss, int64_t S, int64_t Hq, int64_t Hkv, int64_t Dh, int64_t h,
                           int64_t per_block, RopeFrequencies freq, RopeCacheOut<T> out) {
  __shared__ float table[2 * RopeFrequencies::kMax];
  const int64_t r = blockIdx.x, b = r / S, s = r % S;
  const double p = double(positions[b * pos_sb + s * pos_ss]);
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) {
    double sn, c;
    sincos(p * freq.f[i], &sn, &c);
    table[i] = float(c);
    table[h + i] = float(sn);
  }
  __syncthreads();
  const int64_t slot = out.index ? out.index[s] : out.first + s;
  const bool slot_ok = slot >= 0 && slot < out.L;
  const int64_t first_head = int64_t(blockIdx.y) * per_block, heads = Hq + 2 * Hkv;
  for (int64_t e = threadIdx.x; e < per_block * Dh; e += blockDim.x) {
    const int64_t hd = first_head + e / Dh, d = e % Dh;
    if (hd >= heads) break;  // e only grows
    if (hd < Hq) {
      out.q[((b * Hq + hd) * S + s) * Dh + d] = from_float<T>(rope_element(q.row(b, hd, s), d, h, table));
    } else if (slot_ok && hd < Hq + Hkv) {
      const int64_t kh = hd - Hq;
      out.keys[((b * Hkv + kh) * out.L + slot) * Dh + d] = from_float<T>(rope_element(k.row(b, kh, s), d, h, table));
    } else if (slot_ok) {
      const int64_t vh = hd - Hq - Hkv;
      out.values[((b * Hkv + vh) * out.L + slot) * Dh + d] = v.row(b, vh, s)[d];
    }
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

// q_out = rope(q); keys / values at slot(s) = rope(k) / v at s, slot(s) = index[s] when index is
// defined, else first + s (ops/cpu/rope.hpp's contract). One launch.
template <class T>
void rope_into_cache(const Tensor<T, Cuda>& q, const Tensor<T, Cuda>& k, const Tensor<T, Cuda>& v,
                     const Tensor<int64_t, Cuda>& positions, const std::vector<double>& inv_freq,
                     const Tensor<T, Cuda>& q_out, const Tensor<T, Cuda>& keys, const Tensor<T, Cuda>& values,
                     int64_t first, const Tensor<int64_t, Cuda>& index) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "rope_into_cache");
  const int64_t B = q.size(0), Hq = q.size(1), S = q.size(2), Dh = q.size(3), Hkv = k.size(1), L = keys.size(2);
  const int64_t h = int64_t(inv_freq.size());
  CTMLLM_CHECK(h <= cuda_impl::RopeFrequencies::kMax, "rope_into_cache: rotary_dim ", 2 * h,
               " exceeds the CUDA kernel's ", 2 * cuda_impl::RopeFrequencies::kMax);
  CTMLLM_CHECK(B * S <= 0x7fffffff, "rope_into_cache: ", B * S, " tokens exceed the kernel's grid");
  if (index.defined() && cuda_impl::device_index_check_due() && cuda_impl::any_index_out_of_range(index, L))
    check_cache_slots(index.template to_device<Cpu>(), L);
  if (B * S == 0 || Dh == 0) return;
  cuda_impl::RopeFrequencies freq{};
  for (int64_t i = 0; i < h; ++i) freq.f[i] = inv_freq[size_t(i)];
  // About kThreads elements a block: two 128-dim heads, one head from 256 dims on.
  const int64_t per_block = std::max<int64_t>(1, cuda_impl::kThreads / Dh), heads = Hq + 2 * Hkv;
  CTMLLM_CHECK((heads + per_block - 1) / per_block <= 65535, "rope_into_cache: ", heads,
               " heads exceed the kernel's grid");
  const dim3 grid(unsigned(B * S), unsigned((heads + per_block - 1) / per_block));
  const auto heads_of = [](const Tensor<T, Cuda>& t) {
    return cuda_impl::RopeHeads<T>{t.data(), t.stride(0), t.stride(1), t.stride(2)};
  };
  cuda_impl::rope_into_cache_kernel<<<grid, cuda_impl::threads_for_row(per_block * Dh), 0, cuda::current_stream()>>>(
      heads_of(q), heads_of(k), heads_of(v), positions.data(), positions.stride(0), positions.stride(1), S, Hq, Hkv, Dh,
      h, per_block, freq,
      cuda_impl::RopeCacheOut<T>{q_out.data(), keys.data(), values.data(), L, first,
                                 index.defined() ? index.data() : nullptr});
  cuda::check_launch("rope_into_cache_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
