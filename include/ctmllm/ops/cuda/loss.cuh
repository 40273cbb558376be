#pragma once
// CUDA kernels for cross_entropy over the last dimension with an ignore index (the Tensor<T, Cuda>
// overloads of ops/cpu/loss.hpp, same layout: logits [N, C], targets [N] int64, contiguous). Like
// the CPU, the forward keeps one logsumexp per row, never a softmax: one block per row takes the
// row's max and Σ exp (block reductions in float), and backward recomputes exp(x − lse) in the pass
// that writes dlogits. The mean over kept rows is one block adding the row losses and counting the
// kept targets in double, in a fixed tree order (the same bits every run), on the device: no value
// goes back to the host except the range check's flag (index_check.cuh).
#include "ctmllm/ops/cpu/loss.hpp"
#include "ctmllm/ops/cuda/block_reduce.cuh"
#include "ctmllm/ops/cuda/index_check.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

inline constexpr int kTotalThreads = kMaxRowThreads;  // the one block of the kept-count / mean kernels

// One block of kTotalThreads: the number of targets that are not `ignore`, and Σ row_loss over them
// (when row_loss is not null), in double.
__device__ __forceinline__ void kept_and_total(const int64_t* __restrict__ targets, const float* __restrict__ row_loss,
                                               int64_t N, int64_t ignore, double& kept, double& total) {
  __shared__ double k_part[kTotalThreads], t_part[kTotalThreads];
  double k = 0, t = 0;
  for (int64_t r = threadIdx.x; r < N; r += kTotalThreads) {
    if (targets[r] == ignore) continue;
    k += 1;
    if (row_loss) t += row_loss[r];
  }
  k_part[threadIdx.x] = k;
  t_part[threadIdx.x] = t;
  __syncthreads();
  for (int w = kTotalThreads / 2; w > 0; w >>= 1) {
    if (int(threadIdx.x) < w) {
      k_part[threadIdx.x] += k_part[threadIdx.x + w];
      t_part[threadIdx.x] += t_part[threadIdx.x + w];
    }
    __syncthreads();
  }
  kept = k_part[0];
  total = t_part[0];
}

// lse[r] = log Σ exp(x_r) and row_loss[r] = lse[r] − x_r[target] on kept rows; 0 and 0 on ignored ones.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_rows_kernel(const T* __restrict__ x, const int64_t* __restrict__ targets, int64_t ignore,
                              float* __restrict__ lse, float* __restrict__ row_loss, int64_t N, int64_t C) {
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const int64_t t = targets[r];
    if (t == ignore) {  // the same branch for the whole block: no thread waits in a reduction alone
      if (threadIdx.x == 0) lse[r] = row_loss[r] = 0.0f;
      continue;
    }
    const T* xr = x + r * C;
    float m = MaxOp::identity;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) m = fmaxf(m, to_float(xr[c]));
    m = block_reduce(m, MaxOp{});
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += expf(to_float(xr[c]) - m);
    const float l = m + logf(block_reduce(s, SumOp{}));
    if (threadIdx.x == 0) {
      lse[r] = l;
      // A target outside [0, C) reaches here only unchecked (under a graph capture): NaN, not a read
      // out of the row.
      row_loss[r] = t >= 0 && t < C ? l - to_float(xr[t]) : nanf("");
    }
  }
}

// loss[0] = mean of row_loss over kept rows, 0 when none is kept. One block of kTotalThreads.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_mean_kernel(const float* __restrict__ row_loss, const int64_t* __restrict__ targets, int64_t N,
                              int64_t ignore, T* __restrict__ loss) {
  double kept, total;
  kept_and_total(targets, row_loss, N, ignore, kept, total);
  if (threadIdx.x == 0) loss[0] = from_float<T>(float(kept > 0 ? total / kept : 0.0));
}

// scale[0] = dloss / (number of kept rows), 0 when none is kept. One block of kTotalThreads.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_scale_kernel(const int64_t* __restrict__ targets, int64_t N, int64_t ignore,
                               const T* __restrict__ dloss, float* __restrict__ scale) {
  double kept, total;
  kept_and_total(targets, nullptr, N, ignore, kept, total);
  if (threadIdx.x == 0) scale[0] = kept > 0 ? to_float(dloss[0]) / float(kept) : 0.0f;
}

// dx_r = (exp(x_r − lse_r) − onehot(target)) · scale on kept rows, 0 on ignored rows, NaN on rows
// whose target lies outside [0, C) (unchecked, under a graph capture).
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_grad_kernel(const T* __restrict__ x, const int64_t* __restrict__ targets,
                              const float* __restrict__ lse, const float* __restrict__ scale, int64_t ignore,
                              T* __restrict__ dx, int64_t N, int64_t C) {
  const float s = scale[0];
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const int64_t t = targets[r];
    const T* xr = x + r * C;
    T* gr = dx + r * C;
    const float l = t >= 0 && t < C ? lse[r] : nanf("");
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      gr[c] = t == ignore ? from_float<T>(0.0f) : from_float<T>((expf(to_float(xr[c]) - l) - (c == t ? 1.0f : 0.0f)) * s);
  }
}

}  // namespace cuda_impl

namespace impl {

// loss[0] = mean over kept rows of (lse − x[target]); lse[r] for every row (0 on ignored ones).
template <class T>
void cross_entropy_forward(const Tensor<T, Cuda>& logits, const Tensor<int64_t, Cuda>& targets, int64_t ignore_index,
                           const Tensor<T, Cuda>& loss, const Tensor<float, Cuda>& lse) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "cross_entropy");
  const int64_t C = logits.shape().back(), N = targets.numel();
  if (cuda_impl::device_index_check_due() && cuda_impl::any_index_out_of_range(targets, C, ignore_index))
    cross_entropy_kept(targets.template to_device<Cpu>(), C, ignore_index, "cross_entropy");
  const cudaStream_t stream = cuda::current_stream();
  const Tensor<float, Cuda> row_loss = Tensor<float, Cuda>::empty({N});
  if (N > 0) {
    cuda_impl::cross_entropy_rows_kernel<<<cuda_impl::grid_rows(N), cuda_impl::threads_for_row(C, 4), 0, stream>>>(
        logits.data(), targets.data(), ignore_index, lse.data(), row_loss.data(), N, C);
    cuda::check_launch("cross_entropy_rows_kernel");
  }
  cuda_impl::cross_entropy_mean_kernel<<<1, cuda_impl::kTotalThreads, 0, stream>>>(row_loss.data(), targets.data(), N,
                                                                                    ignore_index, loss.data());
  cuda::check_launch("cross_entropy_mean_kernel");
}

// dlogits = (softmax(x) − onehot(target)) · dloss / n_kept on kept rows, 0 on ignored rows.
template <class T>
void cross_entropy_backward(const Tensor<T, Cuda>& dloss, const Tensor<T, Cuda>& logits,
                            const Tensor<int64_t, Cuda>& targets, const Tensor<float, Cuda>& lse, int64_t ignore_index,
                            const Tensor<T, Cuda>& dlogits) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "cross_entropy_backward");
  const int64_t C = logits.shape().back(), N = targets.numel();
  if (cuda_impl::device_index_check_due() && cuda_impl::any_index_out_of_range(targets, C, ignore_index))
    cross_entropy_kept(targets.template to_device<Cpu>(), C, ignore_index, "cross_entropy_backward");
  if (N == 0) return;
  const cudaStream_t stream = cuda::current_stream();
  const Tensor<float, Cuda> scale = Tensor<float, Cuda>::empty({1});
  cuda_impl::cross_entropy_scale_kernel<<<1, cuda_impl::kTotalThreads, 0, stream>>>(targets.data(), N, ignore_index,
                                                                                     dloss.data(), scale.data());
  cuda::check_launch("cross_entropy_scale_kernel");
  cuda_impl::cross_entropy_grad_kernel<<<cuda_impl::grid_rows(N), cuda_impl::threads_for_row(C, 4), 0, stream>>>(
      logits.data(), targets.data(), lse.data(), scale.data(), ignore_index, dlogits.data(), N, C);
  cuda::check_launch("cross_entropy_grad_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
