#pragma once
// CUDA kernels for softmax and log_softmax (the Tensor<T, Cuda> overloads of ops/cpu/softmax.hpp),
// on contiguous tensors viewed as [outer, n, inner]. Over the last dimension (inner = 1) one block
// owns a row: a max pass, a sum-of-exp pass and a write pass, each a block reduction; over any
// other dimension one thread owns a column (neighbouring threads read neighbouring memory).
#include "ctmllm/ops/cpu/softmax.hpp"
#include "ctmllm/ops/cuda/block_reduce.cuh"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n, bool log) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    float m = MaxOp::identity;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) m = fmaxf(m, to_float(xr[k]));
    m = block_reduce(m, MaxOp{});
    float s = 0.0f;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) s += expf(to_float(xr[k]) - m);
    s = block_reduce(s, SumOp{});
    const float lse = m + logf(s), inv = 1.0f / s;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
      const float v = to_float(xr[k]);
      yr[k] = from_float<T>(log ? v - lse : expf(v - m) * inv);
    }
  }
}

// Column (o, j): elements base + k·inner, base = o·n·inner + j.
template <class T>
__global__ void softmax_columns_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer, int64_t n,
                                       int64_t inner, bool log) {
  for (int64_t c = global_thread(); c < outer * inner; c += grid_threads()) {
    const int64_t base = c / inner * n * inner + c % inner;
    float m = MaxOp::identity, s = 0.0f;
    for (int64_t k = 0; k < n; ++k) m = fmaxf(m, to_float(x[base + k * inner]));
    for (int64_t k = 0; k < n; ++k) s += expf(to_float(x[base + k * inner]) - m);
    const float lse = m + logf(s), inv = 1.0f / s;
    for (int64_t k = 0; k < n; ++k) {
      const float v = to_float(x[base + k * inner]);
      y[base + k * inner] = from_float<T>(log ? v - lse : expf(v - m) * inv);
    }
  }
}

// softmax: dx = y·(dy − Σ dy·y);  log_softmax: dx = dy − exp(y)·Σ dy.
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    softmax_backward_rows_kernel(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, int64_t rows,
                                 int64_t n, bool log) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* gr = dy + r * n;
    const T* yr = y + r * n;
    T* dxr = dx + r * n;
    float s = 0.0f;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) s += log ? to_float(gr[k]) : to_float(gr[k]) * to_float(yr[k]);
    s = block_reduce(s, SumOp{});
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
      const float g = to_float(gr[k]), v = to_float(yr[k]);
      dxr[k] = from_float<T>(log ? g - expf(v) * s : v * (g - s));
    }
  }
}

template <class T>
__global__ void softmax_backward_columns_kernel(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx,
                                                int64_t outer, int64_t n, int64_t inner, bool log) {
  for (int64_t c = global_thread(); c < outer * inner; c += grid_threads()) {
    const int64_t base = c / inner * n * inner + c % inner;
    float s = 0.0f;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = base + k * inner;
      s += log ? to_float(dy[i]) : to_float(dy[i]) * to_float(y[i]);
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = base + k * inner;
      const float g = to_float(dy[i]), v = to_float(y[i]);
      dx[i] = from_float<T>(log ? g - expf(v) * s : v * (g - s));
    }
  }
}

}  // namespace cuda_impl

namespace impl {

template <class T>
void softmax_forward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& y, int64_t outer, int64_t n, int64_t inner,
                     bool log) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "softmax");
  if (outer * n * inner == 0) return;
  const cudaStream_t s = cuda::current_stream();
  if (inner == 1) {
    cuda_impl::softmax_rows_kernel<<<cuda_impl::grid_rows(outer), cuda_impl::threads_for_row(n, 4), 0, s>>>(
        x.data(), y.data(), outer, n, log);
  } else {
    cuda_impl::softmax_columns_kernel<<<cuda_impl::grid_for(outer * inner), cuda_impl::kThreads, 0, s>>>(
        x.data(), y.data(), outer, n, inner, log);
  }
  cuda::check_launch("softmax_forward");
}

template <class T>
void softmax_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& y, const Tensor<T, Cuda>& dx, int64_t outer,
                      int64_t n, int64_t inner, bool log) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "softmax_backward");
  if (outer * n * inner == 0) return;
  const cudaStream_t s = cuda::current_stream();
  if (inner == 1) {
    cuda_impl::softmax_backward_rows_kernel<<<cuda_impl::grid_rows(outer), cuda_impl::threads_for_row(n, 4), 0, s>>>(
        dy.data(), y.data(), dx.data(), outer, n, log);
  } else {
    cuda_impl::softmax_backward_columns_kernel<<<cuda_impl::grid_for(outer * inner), cuda_impl::kThreads, 0, s>>>(
        dy.data(), y.data(), dx.data(), outer, n, inner, log);
  }
  cuda::check_launch("softmax_backward");
}

}  // namespace impl
}  // namespace ctmllm::ops
