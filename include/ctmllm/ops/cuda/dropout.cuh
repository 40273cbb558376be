#pragma once
// CUDA kernel for counter-based dropout (the Tensor<T, Cuda> overload of ops/cpu/dropout.hpp's
// dropout_apply): element i is kept iff Rng(seed).uniform_at(offset + i) >= p, the very function the
// CPU calls (core/rng.hpp is host and device code), and kept values are scaled by the same float
// 1 / (1 − p): the GPU's output equals the CPU's bit for bit, and backward regenerates the mask.
#include "ctmllm/core/rng.hpp"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

template <class T>
__global__ void dropout_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t n, double p, uint64_t seed,
                               uint64_t offset, float scale) {
  const Rng rng(seed);
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    out[i] = rng.uniform_at(offset + uint64_t(i)) >= p ? from_float<T>(to_float(in[i]) * scale) : from_float<T>(0.0f);
}

}  // namespace cuda_impl

namespace impl {

// out = mask(seed, offset) * in / (1 - p); in and out contiguous, same shape.
template <class T>
void dropout_apply(const Tensor<T, Cuda>& in, const Tensor<T, Cuda>& out, double p, uint64_t seed, uint64_t offset) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "dropout");
  const int64_t n = in.numel();
  if (n == 0) return;
  cuda_impl::dropout_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      in.data(), out.data(), n, p, seed, offset, float(1.0 / (1.0 - p)));
  cuda::check_launch("dropout_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
