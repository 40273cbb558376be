#pragma once
// The optimizer kernels on the GPU (ops/optim.hpp): the AdamW update of a list of parameters (fused:
// decay, both moments and the step in one pass, in float with the CPU's order; up to 32
// parameters per launch, their pointers and scalars passed in the kernel's arguments as apex's
// multi-tensor apply does, so the update queues no copy and never waits), Σ x² over a list of
// gradients with one copy back to the host, an in-place scale, and scaled type conversions (one
// launch per tensor, one finiteness flag copied back per list). The sum
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

// The parameters of one AdamW launch, passed by value: 32 of them take 3.2 KB of the 4 KB a kernel's
// arguments may hold. Each is cut into chunks of kAdamWChunk elements, one block per chunk.
inline constexpr int kAdamWBatch = 32;
inline constexpr int64_t kAdamWChunk = int64_t(kThreads) * 8;

template <class T>
struct AdamWBatch {
  T* w[kAdamWBatch];
  const T* g[kAdamWBatch];
  float* m[kAdamWBatch];
  float* v[kAdamWBatch];
  int64_t n[kAdamWBatch];
  AdamWCoefficients c[kAdamWBatch];
  int32_t first_block[kAdamWBatch + 1];  // parameter i's chunks are blocks [first_block[i], first_block[i + 1])
  int32_t count;
};
static_assert(sizeof(AdamWBatch<double>) <= 4096, "AdamWBatch must fit in a kernel's 4 KB of arguments");

template <class T>
__global__ void adamw_kernel(const AdamWBatch<T> b) {
  int t = 0;
  while (t + 1 < b.count && int32_t(blockIdx.x) >= b.first_block[t + 1]) ++t;
  T* __restrict__ w = b.w[t];
  const T* __restrict__ g = b.g[t];
  float* __restrict__ m = b.m[t];
  float* __restrict__ v = b.v[t];
  const AdamWCoefficients& c = b.c[t];
  const int64_t lo = int64_t(int32_t(blockIdx.x) - b.first_block[t]) * kAdamWChunk;
  const int64_t hi = lo + kAdamWChunk < b.n[t] ? lo + kAdamWChunk : b.n[t];
  const float decay = float(1 - c.lr * c.weight_decay), b1 = float(c.beta1), b2 = float(c.beta2),
              one_b1 = float(1 - c.beta1), one_b2 = float(1 - c.beta2), step = float(c.lr / c.c1), sc2 = float(c.sc2),
              eps = float(c.eps);
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const float gi = to_float(g[i]);
    const float mi = b1 * m[i] + one_b1 * gi;
    const float vi = b2 * v[i] + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = from_float<T>(to_float(w[i]) * decay - step * mi / (sqrtf(vi) / sc2 + eps));
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
__global__ void scale_kernel(T* p, int64_t n, float factor) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) p[i] = from_float<T>(to_float(p[i]) * factor);
}

// Blocks of the Σ x² pass over n elements: fixed by n alone (8 elements per thread, at most kSumBlocksMax).
inline int64_t sum_blocks(int64_t n) {
  return std::clamp<int64_t>((n + kThreads * 8 - 1) / (kThreads * 8), 1, kSumBlocksMax);
}

}  // namespace cuda_impl

namespace impl {

// All contiguous and non-empty. A launch takes parameters in order until it holds kAdamWBatch of
// them or its grid would pass 2^30 blocks.
template <class T>
void adamw_update(const std::vector<Tensor<T, Cuda>>& w, const std::vector<Tensor<T, Cuda>>& g,
                  const std::vector<Tensor<float, Cuda>>& m, const std::vector<Tensor<float, Cuda>>& v,
                  const std::vector<AdamWCoefficients>& c) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "adamw_update");
  constexpr int64_t kMaxBlocks = int64_t(1) << 30;
  cuda_impl::AdamWBatch<T> b{};
  const auto launch = [&] {
    cuda_impl::adamw_kernel<T><<<unsigned(b.first_block[b.count]), cuda_impl::kThreads, 0, cuda::current_stream()>>>(b);
    cuda::check_launch("adamw_kernel");
    b.count = 0;
  };
  for (size_t i = 0; i < w.size(); ++i) {
    const int64_t n = w[i].numel(), blocks = (n + cuda_impl::kAdamWChunk - 1) / cuda_impl::kAdamWChunk;
    CTMLLM_CHECK(blocks <= kMaxBlocks, "adamw_update: a parameter of ", n, " elements is beyond one launch");
    if (b.count > 0 && int64_t(b.first_block[b.count]) + blocks > kMaxBlocks) launch();
    const int k = b.count;
    if (k == 0) b.first_block[0] = 0;
    b.w[k] = w[i].data();
    b.g[k] = g[i].data();
    b.m[k] = m[i].data();
    b.v[k] = v[i].data();
    b.n[k] = n;
    b.c[k] = c[i];
    b.first_block[k + 1] = int32_t(b.first_block[k] + blocks);
    if (++b.count == cuda_impl::kAdamWBatch) launch();
  }
  if (b.count > 0) launch();
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
  cuda_impl::scale_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(t.data(), n, float(factor));
  cuda::check_launch("scale_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
