#pragma once
// The GPU side of bf16 weight storage (llm/weights.hpp): frozen bf16 matrices under float
// activations, with float accumulation, as llm/bf16_linear.hpp does on the CPU. The same functions
// on Cuda tensors:
//  - linear_bf16: y [n, out] = x [n, in] · wᵀ + b. For n <= kGemvRows (decode) a GEMV kernel: a warp
//    per weight row streams it once, 16 bytes per lane, widening in registers, for all n rows of x,
//    so decode reads 2 bytes per weight as bf16 compute would. Larger n (prefill, training) widens w
//    once into a float matrix and runs cuBLASLt's float GEMM: compute-bound, the widening is a small
//    share (the float copy is transient: 4 bytes per weight of one matrix).
//  - linear_bf16_backward_input: dx = dy · w through the widened w.
//  - widen_bf16: w as float; round_to_bf16: back, on the host (merging adapters: rare, and rounded
//    exactly as the CPU does); embedding_bf16: rows of a bf16 table as float.
// Every output is summed by one warp in a fixed order: results repeat bit for bit.
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/llm/bf16_linear.hpp"
#include "ctmllm/ops/cuda/dtype.cuh"
#include "ctmllm/ops/cuda/launch.cuh"
#include "ctmllm/ops/embedding.hpp"
#include "ctmllm/ops/matmul.hpp"

namespace ctmllm::llm::kernels {

inline constexpr int64_t kGemvRows = 16;  // x rows up to which the GEMV kernel runs

namespace cuda_impl {
using ops::cuda_impl::global_thread;
using ops::cuda_impl::grid_threads;
using ops::cuda_impl::to_float;

inline constexpr int kGemvWarps = 8;  // weight rows per block of the GEMV

// out[i] = float(in[i]); eight values per thread per step where both are 16-byte aligned.
template <bool Vec>
__global__ void widen_bf16_kernel(const bf16* __restrict__ in, int64_t n, float* __restrict__ out) {
  if constexpr (Vec) {
    for (int64_t p = global_thread(); p < n / 8; p += grid_threads()) {
      const uint4 packed = reinterpret_cast<const uint4*>(in)[p];
      const uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
      float4 lo, hi;
      lo.x = __uint_as_float(words[0] << 16), lo.y = __uint_as_float(words[0] & 0xffff0000u);
      lo.z = __uint_as_float(words[1] << 16), lo.w = __uint_as_float(words[1] & 0xffff0000u);
      hi.x = __uint_as_float(words[2] << 16), hi.y = __uint_as_float(words[2] & 0xffff0000u);
      hi.z = __uint_as_float(words[3] << 16), hi.w = __uint_as_float(words[3] & 0xffff0000u);
      reinterpret_cast<float4*>(out)[2 * p] = lo;
      reinterpret_cast<float4*>(out)[2 * p + 1] = hi;
    }
    for (int64_t i = n / 8 * 8 + global_thread(); i < n; i += grid_threads()) out[i] = to_float(in[i]);
  } else {
    for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = to_float(in[i]);
  }
}

// y [n, out] = x [n, in] · wᵀ + b for n <= kGemvRows: warp `o` of the grid reads weight row o once
// (8 bf16 per lane per step when Vec: in % 8 == 0 and 16-byte aligned rows) and accumulates it
// against each row of x, then sums each row's 32 lane partials by a fixed shuffle tree.
template <bool Vec>
__global__ void gemv_bf16_kernel(const float* __restrict__ x, int n, int64_t in, const bf16* __restrict__ w, int64_t out,
                                 const float* __restrict__ b, float* __restrict__ y) {
  const int lane = int(threadIdx.x % 32);
  const int64_t o = int64_t(blockIdx.x) * kGemvWarps + threadIdx.x / 32;
  if (o >= out) return;
  float acc[kGemvRows];
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) acc[r] = 0.0f;
  const bf16* row = w + o * in;
  if constexpr (Vec) {
#pragma unroll 4  // several 16-byte loads in flight per lane: decode is bound by memory latency
    for (int64_t c = lane; c < in / 8; c += 32) {
      const uint4 packed = reinterpret_cast<const uint4*>(row)[c];
      const uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
      float wf[8];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wf[2 * j] = __uint_as_float(words[j] << 16);
        wf[2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
      }
#pragma unroll
      for (int r = 0; r < kGemvRows; ++r) {
        if (r >= n) break;
        const float4* xr = reinterpret_cast<const float4*>(x + r * in) + 2 * c;
        const float4 a = __ldg(xr), bb = __ldg(xr + 1);
        acc[r] += a.x * wf[0] + a.y * wf[1] + a.z * wf[2] + a.w * wf[3] + bb.x * wf[4] + bb.y * wf[5] + bb.z * wf[6] +
                  bb.w * wf[7];
      }
    }
  } else {
    for (int64_t k = lane; k < in; k += 32) {
      const float wk = to_float(row[k]);
#pragma unroll
      for (int r = 0; r < kGemvRows; ++r) {
        if (r >= n) break;
        acc[r] += __ldg(x + r * in + k) * wk;
      }
    }
  }
  const float bias = b ? b[o] : 0.0f;
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) {
    if (r >= n) break;
    float s = acc[r];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
    if (lane == 0) y[r * out + o] = s + bias;
  }
}
}  // namespace cuda_impl

// w as a new float tensor of its shape.
inline Tensor<float, Cuda> widen_bf16(const Tensor<bf16, Cuda>& w) {
  const Tensor<bf16, Cuda> src = w.contiguous();
  Tensor<float, Cuda> out = Tensor<float, Cuda>::empty(src.shape());
  const int64_t n = src.numel();
  if (n == 0) return out;
  const unsigned grid = ops::cuda_impl::grid_for(ops::cuda_impl::aligned16(src.data(), out.data()) ? (n + 7) / 8 : n);
  if (ops::cuda_impl::aligned16(src.data(), out.data()))
    cuda_impl::widen_bf16_kernel<true><<<grid, ops::cuda_impl::kThreads, 0, cuda::current_stream()>>>(src.data(), n, out.data());
  else
    cuda_impl::widen_bf16_kernel<false><<<grid, ops::cuda_impl::kThreads, 0, cuda::current_stream()>>>(src.data(), n, out.data());
  cuda::check_launch("widen_bf16_kernel");
  return out;
}

// w rounded to bf16 (nearest, ties to even) on the host.
inline Tensor<bf16, Cuda> round_to_bf16(const Tensor<float, Cuda>& w) {
  return w.to_device<Cpu>().to<bf16>().to_device<Cuda>();
}

// y [n, out] = x [n, in] · wᵀ + b (b [out] or undefined); x contiguous.
inline Tensor<float, Cuda> linear_bf16(const Tensor<float, Cuda>& x, const Tensor<bf16, Cuda>& w, const Tensor<float, Cuda>& b) {
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  if (n > kGemvRows || n == 0 || in == 0) return ops::linear(x, widen_bf16(w), b);
  Tensor<float, Cuda> y = Tensor<float, Cuda>::empty({n, out});
  if (out == 0) return y;
  const Tensor<bf16, Cuda> wc = w.contiguous();
  const bool vec = in % 8 == 0 && ops::cuda_impl::aligned16(x.data(), wc.data());
  const auto blocks = unsigned((out + cuda_impl::kGemvWarps - 1) / cuda_impl::kGemvWarps);
  const float* bias = b.defined() ? b.data() : nullptr;
  if (vec)
    cuda_impl::gemv_bf16_kernel<true><<<blocks, cuda_impl::kGemvWarps * 32, 0, cuda::current_stream()>>>(
        x.data(), int(n), in, wc.data(), out, bias, y.data());
  else
    cuda_impl::gemv_bf16_kernel<false><<<blocks, cuda_impl::kGemvWarps * 32, 0, cuda::current_stream()>>>(
        x.data(), int(n), in, wc.data(), out, bias, y.data());
  cuda::check_launch("gemv_bf16_kernel");
  return y;
}

// dx [n, in] = dy [n, out] · w.
inline Tensor<float, Cuda> linear_bf16_backward_input(const Tensor<float, Cuda>& dy, const Tensor<bf16, Cuda>& w) {
  return ops::matmul(dy, widen_bf16(w));
}

// Rows ids[...] of table [V, H] as float [..., H]; an id outside [0, V) is an Error.
inline Tensor<float, Cuda> embedding_bf16(const Tensor<bf16, Cuda>& table, const Tensor<int64_t, Cuda>& ids) {
  return widen_bf16(ops::embedding(table, ids));
}

}  // namespace ctmllm::llm::kernels
