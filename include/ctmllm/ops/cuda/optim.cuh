#pragma once
// The optimizer kernels on the GPU (ops/optim.hpp): the AdamW update of one parameter (one launch per
// parameter, fused: decay, both moments and the step in one pass, per element in double as on the
// CPU), Σ x² over a list of gradients with one copy back to the host, an in-place scale, and scaled
// type conversions (one launch per tensor, one finiteness flag copied back per list). The sum
// is deterministic: per tensor a block count fixed by its size, each block's partial in a fixed
// tree, then one block sums all partials in order.
#include <vector>

#include "ctmllm/core/cuda/allocator.hpp"
#include "ctmllm/ops/cpu/optim.hpp"
#include "ctmllm/ops/cuda/dtype.cuh"
#include "ctmllm/ops/cuda/launch.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

inline constexpr int kSumBlocksMax = 1024;  // partial sums per tensor at most

template <class T>
__global__ void adamw_kernel(T* __restrict__ w, const T* __restrict__ g, float* __restrict__ m, float* __restrict__ v,
                             int64_t n, AdamWCoefficients c) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const double gi = double(to_float(g[i]));
    double x = double(to_float(w[i])) * (1 - c.lr * c.weight_decay);
    const double mi = c.beta1 * double(m[i]) + (1 - c.beta1) * gi;
    const double vi = c.beta2 * double(v[i]) + (1 - c.beta2) * gi * gi;
    x -= c.lr / c.c1 * mi / (::sqrt(vi) / c.sc2 + c.eps);
    m[i] = float(mi);
    v[i] = float(vi);
    w[i] = from_float<T>(float(x));
  }
}

// The sum of v over a block of Threads (a power of two), in a fixed tree; valid in thread 0.
template <int Threads>
__device__ double block_sum(double v) {
  __shared__ double s[Threads];
  s[threadIdx.x] = v;
  __syncthreads();
  for (int half = Threads / 2; half > 0; half >>= 1) {
    if (int(threadIdx.x) < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  return s[0];
}

template <class T>
__global__ void sum_of_squares_kernel(const T* __restrict__ p, int64_t n, double* __restrict__ partial) {
  double acc = 0;
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const double x = double(to_float(p[i]));
    acc += x * x;
  }
  const double s = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block of Threads: thread t sums its contiguous run of partials in order, then the fixed tree.
template <int Threads>
__global__ void sum_partials_kernel(const double* __restrict__ partial, int64_t n, double* __restrict__ out) {
  const int64_t per = (n + Threads - 1) / Threads, lo = threadIdx.x * per, hi = lo + per < n ? lo + per : n;
  double acc = 0;
  for (int64_t i = lo; i < hi; ++i) acc += partial[i];
  const double s = block_sum<Threads>(acc);
  if (threadIdx.x == 0) *out = s;
}

// out[i] = To(float(in[i]) · factor, in double); *bad = 1 when a result is not finite (every writer
// stores the same value, so the race is harmless).
template <class To, class From>
__global__ void convert_kernel(To* __restrict__ out, const From* __restrict__ in, int64_t n, double factor,
                               int32_t* __restrict__ bad) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const To y = from_float<To>(float(double(to_float(in[i])) * factor));
    out[i] = y;
    if (!isfinite(to_float(y))) *bad = 1;
  }
}

template <class T>
__global__ void scale_kernel(T* p, int64_t n, double factor) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) p[i] = from_float<T>(float(double(to_float(p[i])) * factor));
}

// Blocks of the Σ x² pass over n elements: fixed by n alone (8 elements per thread, at most kSumBlocksMax).
inline int64_t sum_blocks(int64_t n) {
  return std::clamp<int64_t>((n + kThreads * 8 - 1) / (kThreads * 8), 1, kSumBlocksMax);
}

}  // namespace cuda_impl

namespace impl {

template <class T>
void adamw_update(const Tensor<T, Cuda>& w, const Tensor<T, Cuda>& g, const Tensor<float, Cuda>& m,
                  const Tensor<float, Cuda>& v, const AdamWCoefficients& c) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "adamw_update");
  const int64_t n = w.numel();
  cuda_impl::adamw_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      w.data(), g.data(), m.data(), v.data(), n, c);
  cuda::check_launch("adamw_kernel");
}

// ts: contiguous, non-empty.
template <class T>
double sum_of_squares(const std::vector<Tensor<T, Cuda>>& ts) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "sum_of_squares");
  int64_t total_blocks = 0;
  for (const auto& t : ts) total_blocks += cuda_impl::sum_blocks(t.numel());
  const std::shared_ptr<std::byte> buffer = cuda::allocate(size_t(total_blocks + 1) * sizeof(double));
  double* partial = reinterpret_cast<double*>(buffer.get());
  const cudaStream_t s = cuda::current_stream();
  int64_t offset = 0;
  for (const auto& t : ts) {
    const int64_t blocks = cuda_impl::sum_blocks(t.numel());
    cuda_impl::sum_of_squares_kernel<<<unsigned(blocks), cuda_impl::kThreads, 0, s>>>(t.data(), t.numel(), partial + offset);
    cuda::check_launch("sum_of_squares_kernel");
    offset += blocks;
  }
  cuda_impl::sum_partials_kernel<cuda_impl::kThreads><<<1, cuda_impl::kThreads, 0, s>>>(partial, total_blocks, partial + total_blocks);
  cuda::check_launch("sum_partials_kernel");
  double result = 0;
  Cuda::copy_to_host(&result, partial + total_blocks, sizeof(double));
  return result;
}

// dst[i] ← src[i] · factor converted to To, all contiguous and non-empty; one flag read back.
template <class To, class From>
bool convert_(const std::vector<Tensor<To, Cuda>>& dst, const std::vector<Tensor<From, Cuda>>& src, double factor) {
  CTMLLM_CUDA_FLOAT_TYPES(To, "convert_");
  CTMLLM_CUDA_FLOAT_TYPES(From, "convert_");
  const Tensor<int32_t, Cuda> bad = Tensor<int32_t, Cuda>::zeros({1});
  for (size_t t = 0; t < dst.size(); ++t) {
    const int64_t n = dst[t].numel();
    cuda_impl::convert_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
        dst[t].data(), src[t].data(), n, factor, bad.data());
    cuda::check_launch("convert_kernel");
  }
  return bad.item() == 0;
}

template <class T>
void scale_(const Tensor<T, Cuda>& t, double factor) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "scale_");
  const int64_t n = t.numel();
  cuda_impl::scale_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(t.data(), n, factor);
  cuda::check_launch("scale_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
