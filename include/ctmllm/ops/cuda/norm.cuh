#pragma once
// CUDA kernels for layer_norm and rms_norm (with an optional residual added first) over the last
// dimension, forward and backward (the Tensor<T, Cuda> overloads of ops/cpu/norm.hpp; the same
// layout: x, y, dy, dx [N, C] contiguous, statistics [N] in float, parameters [C]). One block per
// row for the row statistics and dx, each a block reduction in float. The parameter gradients sum
// over rows in two deterministic steps: fixed chunks of rows give per-chunk partial sums (one thread
// per column, neighbouring threads on neighbouring columns), then the partials are added in chunk
// order.
#include "ctmllm/ops/cpu/norm.hpp"
#include "ctmllm/ops/cuda/block_reduce.cuh"
#include "ctmllm/ops/cuda/map.cuh"
#include "ctmllm/ops/cuda/reduce.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// The parameter value at column c: weight + offset, or 1 without a weight.
template <class T>
__device__ __forceinline__ float param_at(const T* w, int64_t c, float offset) {
  return w ? to_float(w[c]) + offset : 1.0f;
}

template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    layer_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                              T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, int64_t rows,
                              int64_t C, float eps) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += to_float(xr[c]);
    const float m = block_reduce(s, SumOp{}) / float(C);
    float v = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const float d = to_float(xr[c]) - m;
      v += d * d;
    }
    const float rs = rsqrtf(block_reduce(v, SumOp{}) / float(C) + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      yr[c] = from_float<T>((to_float(xr[c]) - m) * rs * param_at(w, c, 0.0f) + (b ? to_float(b[c]) : 0.0f));
    if (threadIdx.x == 0) {
      mean[r] = m;
      rstd[r] = rs;
    }
  }
}

// With n = (x − mean)·rstd and g = dy·weight: dx = (g − mean(g) − n·mean(g·n))·rstd.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    layer_norm_dx_kernel(const T* __restrict__ dy, const T* __restrict__ x, const float* __restrict__ mean,
                         const float* __restrict__ rstd, const T* __restrict__ w, T* __restrict__ dx, int64_t rows,
                         int64_t C) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * C;
    const T* gr = dy + r * C;
    const float m = mean[r], rs = rstd[r];
    float g_sum = 0.0f, gn_sum = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const float g = to_float(gr[c]) * param_at(w, c, 0.0f);
      g_sum += g;
      gn_sum += g * (to_float(xr[c]) - m) * rs;
    }
    const float g_mean = block_reduce(g_sum, SumOp{}) / float(C);
    const float gn_mean = block_reduce(gn_sum, SumOp{}) / float(C);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const float n = (to_float(xr[c]) - m) * rs;
      dx[r * C + c] = from_float<T>((to_float(gr[c]) * param_at(w, c, 0.0f) - g_mean - n * gn_mean) * rs);
    }
  }
}

// y = rms_norm(x), or with a residual (not null) sum = T(x + residual) and y = rms_norm(sum): each
// thread reads back only the sums it wrote itself, so the block needs no barrier between the passes.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    rms_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ residual, T* __restrict__ sum,
                            const T* __restrict__ w, float offset, T* __restrict__ y, float* __restrict__ rstd,
                            int64_t rows, int64_t C, float eps) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * C;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      float v = to_float(xr[c]);
      if (residual) {
        const T t = from_float<T>(v + to_float(residual[r * C + c]));
        sum[r * C + c] = t;
        v = to_float(t);
      }
      s += v * v;
    }
    const float rs = rsqrtf(block_reduce(s, SumOp{}) / float(C) + eps);
    // Two loops, not one over a pointer chosen between x and sum: nvcc reads such a pointer through
    // the non-coherent read-only path (x is const __restrict__), which must not see this kernel's writes.
    if (residual) {
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        y[r * C + c] = from_float<T>(to_float(sum[r * C + c]) * rs * param_at(w, c, offset));
    } else {
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        y[r * C + c] = from_float<T>(to_float(xr[c]) * rs * param_at(w, c, offset));
    }
    if (threadIdx.x == 0) rstd[r] = rs;
  }
}

// With n = x·rstd and g = dy·(weight + offset): dx = (g − n·mean(g·n))·rstd.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    rms_norm_dx_kernel(const T* __restrict__ dy, const T* __restrict__ x, const float* __restrict__ rstd,
                       const T* __restrict__ w, float offset, T* __restrict__ dx, int64_t rows, int64_t C) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * C;
    const T* gr = dy + r * C;
    const float rs = rstd[r];
    float gn_sum = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      gn_sum += to_float(gr[c]) * param_at(w, c, offset) * to_float(xr[c]) * rs;
    const float gn_mean = block_reduce(gn_sum, SumOp{}) / float(C);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const float n = to_float(xr[c]) * rs;
      dx[r * C + c] = from_float<T>((to_float(gr[c]) * param_at(w, c, offset) - n * gn_mean) * rs);
    }
  }
}

// Partial sums over the rows of chunk blockIdx.y, for column c: partial[chunk][c] = Σ dy·n and
// partial[chunk][C + c] = Σ dy, with n = (x − mean)·rstd (mean 0 when null: rms_norm).
template <class T>
__global__ void norm_param_partial_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                          const float* __restrict__ mean, const float* __restrict__ rstd,
                                          float* __restrict__ partial, int64_t rows, int64_t C, int64_t chunks) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t chunk = blockIdx.y, r0 = rows * chunk / chunks, r1 = rows * (chunk + 1) / chunks;
  float dw = 0.0f, db = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const float g = to_float(dy[r * C + c]);
    dw += g * (to_float(x[r * C + c]) - (mean ? mean[r] : 0.0f)) * rstd[r];
    db += g;
  }
  partial[chunk * 2 * C + c] = dw;
  partial[chunk * 2 * C + C + c] = db;
}

// dweight (and dbias when defined) of a norm over rows×C, written where defined.
template <class T>
void norm_param_grads(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& x, const float* mean, const float* rstd,
                      const Tensor<T, Cuda>& dweight, const Tensor<T, Cuda>& dbias, int64_t rows, int64_t C) {
  if (!dweight.defined() && !dbias.defined()) return;
  const cudaStream_t s = cuda::current_stream();
  const int64_t chunks = row_chunks(rows);
  const Tensor<float, Cuda> partial = Tensor<float, Cuda>::empty(Shape{chunks, 2 * C});
  const dim3 grid(unsigned((C + kThreads - 1) / kThreads), unsigned(chunks));
  norm_param_partial_kernel<<<grid, kThreads, 0, s>>>(dy.data(), x.data(), mean, rstd, partial.data(), rows, C, chunks);
  cuda::check_launch("norm_param_partial_kernel");
  if (dweight.defined()) {
    sum_partials_kernel<<<grid_for(C), kThreads, 0, s>>>(partial.data(), dweight.data(), 0, C, 2 * C, chunks, 1.0f);
    cuda::check_launch("sum_partials_kernel (dweight)");
  }
  if (dbias.defined()) {
    sum_partials_kernel<<<grid_for(C), kThreads, 0, s>>>(partial.data(), dbias.data(), C, C, 2 * C, chunks, 1.0f);
    cuda::check_launch("sum_partials_kernel (dbias)");
  }
}

// A parameter's data, or null when undefined.
template <class T>
const T* data_or_null(const Tensor<T, Cuda>& t) {
  return t.defined() ? t.data() : nullptr;
}

}  // namespace cuda_impl

namespace impl {

template <class T>
void layer_norm_forward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& weight, const Tensor<T, Cuda>& bias,
                        const Tensor<T, Cuda>& y, const Tensor<float, Cuda>& mean, const Tensor<float, Cuda>& rstd,
                        double eps) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "layer_norm");
  const int64_t C = x.shape().back(), N = x.numel() / C;
  if (N == 0) return;
  cuda_impl::layer_norm_forward_kernel<<<cuda_impl::grid_rows(N), cuda_impl::threads_for_row(C, 4), 0,
                                         cuda::current_stream()>>>(x.data(), cuda_impl::data_or_null(weight),
                                                                   cuda_impl::data_or_null(bias), y.data(), mean.data(),
                                                                   rstd.data(), N, C, float(eps));
  cuda::check_launch("layer_norm_forward_kernel");
}

template <class T>
void layer_norm_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& x, const Tensor<float, Cuda>& mean,
                         const Tensor<float, Cuda>& rstd, const Tensor<T, Cuda>& weight, const Tensor<T, Cuda>& dx,
                         const Tensor<T, Cuda>& dweight, const Tensor<T, Cuda>& dbias) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "layer_norm_backward");
  const int64_t C = x.shape().back(), N = x.numel() / C;
  if (N > 0) {  // with no rows the parameter gradients are still written (zeros)
    cuda_impl::layer_norm_dx_kernel<<<cuda_impl::grid_rows(N), cuda_impl::threads_for_row(C, 4), 0,
                                      cuda::current_stream()>>>(dy.data(), x.data(), mean.data(), rstd.data(),
                                                                cuda_impl::data_or_null(weight), dx.data(), N, C);
    cuda::check_launch("layer_norm_dx_kernel");
  }
  cuda_impl::norm_param_grads(dy, x, mean.data(), rstd.data(), dweight, dbias, N, C);
}

// sum = T(x + residual) and y = rms_norm(sum) in one kernel; without a residual (undefined),
// y = rms_norm(x). All contiguous.
template <class T>
void add_rms_norm_forward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& residual, const Tensor<T, Cuda>& weight,
                          double offset, const Tensor<T, Cuda>& sum, const Tensor<T, Cuda>& y,
                          const Tensor<float, Cuda>& rstd, double eps) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "rms_norm");
  const int64_t C = x.shape().back(), N = x.numel() / C;
  if (N == 0) return;
  cuda_impl::rms_norm_forward_kernel<<<cuda_impl::grid_rows(N), cuda_impl::threads_for_row(C, 4), 0,
                                       cuda::current_stream()>>>(
      x.data(), cuda_impl::data_or_null(residual), sum.defined() ? sum.data() : nullptr, cuda_impl::data_or_null(weight),
      float(offset), y.data(), rstd.data(), N, C, float(eps));
  cuda::check_launch("rms_norm_forward_kernel");
}

template <class T>
void rms_norm_forward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& weight, double offset, const Tensor<T, Cuda>& y,
                      const Tensor<float, Cuda>& rstd, double eps) {
  add_rms_norm_forward(x, Tensor<T, Cuda>(), weight, offset, Tensor<T, Cuda>(), y, rstd, eps);
}

template <class T>
void rms_norm_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& x, const Tensor<float, Cuda>& rstd,
                       const Tensor<T, Cuda>& weight, double offset, const Tensor<T, Cuda>& dx,
                       const Tensor<T, Cuda>& dweight) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "rms_norm_backward");
  const int64_t C = x.shape().back(), N = x.numel() / C;
  if (N > 0) {
    cuda_impl::rms_norm_dx_kernel<<<cuda_impl::grid_rows(N), cuda_impl::threads_for_row(C, 4), 0,
                                    cuda::current_stream()>>>(dy.data(), x.data(), rstd.data(),
                                                              cuda_impl::data_or_null(weight), float(offset), dx.data(),
                                                              N, C);
    cuda::check_launch("rms_norm_dx_kernel");
  }
  cuda_impl::norm_param_grads(dy, x, nullptr, rstd.data(), dweight, Tensor<T, Cuda>(), N, C);
}

}  // namespace impl
}  // namespace ctmllm::ops
