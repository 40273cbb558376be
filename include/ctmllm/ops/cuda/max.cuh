#pragma once
// CUDA kernels for max/argmax along one dimension and its scatter backward (the Tensor<T, Cuda>
// overloads of ops/cpu/reduce.hpp's max and max_backward, same layout: x contiguous as
// [outer, n, inner]). Over the last dimension (inner = 1, argmax over a vocabulary) a block owns a
// row and reduces (value, index) pairs by warp shuffles; over any other dimension a thread owns a
// column. The winner is the CPU's: NaN beats numbers, then the larger value, then the first index;
// values are copied from x, so they match bit for bit.
#include "ctmllm/ops/cpu/reduce.hpp"
#include "ctmllm/ops/cuda/index_check.cuh"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

// Whether (v, k) beats (bv, bk) under the order above.
__device__ __forceinline__ bool max_beats(float v, int64_t k, float bv, int64_t bk) {
  const bool vn = isnan(v), bn = isnan(bv);
  if (vn != bn) return vn;
  if (vn || v == bv) return k < bk;
  return v > bv;
}

__device__ __forceinline__ void max_warp_reduce(float& v, int64_t& k) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, offset);
    const int64_t ok = __shfl_xor_sync(0xffffffffu, k, offset);
    if (max_beats(ov, ok, v, k)) {
      v = ov;
      k = ok;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    max_rows_kernel(const T* __restrict__ x, T* __restrict__ values, int64_t* __restrict__ indices, int64_t rows,
                    int64_t n) {
  __shared__ float part_v[32];
  __shared__ int64_t part_k[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    float v = -INFINITY;
    int64_t k = n;  // beaten by any element
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
      const float e = to_float(xr[c]);
      if (max_beats(e, c, v, k)) {
        v = e;
        k = c;
      }
    }
    max_warp_reduce(v, k);
    __syncthreads();  // the previous row's readers of part_* are done
    if (lane == 0) {
      part_v[warp] = v;
      part_k[warp] = k;
    }
    __syncthreads();
    if (warp == 0) {
      v = lane < blockDim.x / 32 ? part_v[lane] : -INFINITY;
      k = lane < blockDim.x / 32 ? part_k[lane] : n;
      max_warp_reduce(v, k);
      if (lane == 0) {
        values[r] = xr[k];
        indices[r] = k;
      }
    }
  }
}

template <class T>
__global__ void max_columns_kernel(const T* __restrict__ x, T* __restrict__ values, int64_t* __restrict__ indices,
                                   int64_t outer, int64_t n, int64_t inner) {
  for (int64_t c = global_thread(); c < outer * inner; c += grid_threads()) {
    const T* col = x + c / inner * n * inner + c % inner;
    float v = to_float(col[0]);
    int64_t k = 0;
    for (int64_t j = 1; j < n; ++j) {
      const float e = to_float(col[j * inner]);
      if (max_beats(e, j, v, k)) {
        v = e;
        k = j;
      }
    }
    values[c] = col[k * inner];
    indices[c] = k;
  }
}

// dx[o, k, i] = dy[o, i] where k = indices[o, i], 0 elsewhere: one thread per element of dx.
template <class T>
__global__ void max_backward_kernel(const T* __restrict__ dy, const int64_t* __restrict__ indices, T* __restrict__ dx,
                                    int64_t n, int64_t inner, int64_t total) {
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t i = e % inner, k = e / inner % n, o = e / (n * inner), src = o * inner + i;
    dx[e] = indices[src] == k ? dy[src] : from_float<T>(0.0f);
  }
}

}  // namespace cuda_impl

namespace impl {

// values[o, i] = max_k x[o, k, i] and indices[o, i] = the first k reaching it (NaN wins).
template <class T>
void max(const Tensor<T, Cuda>& x, int64_t outer, int64_t n, int64_t inner, const Tensor<T, Cuda>& values,
         const Tensor<int64_t, Cuda>& indices) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "max");
  if (outer * inner == 0) return;
  const cudaStream_t s = cuda::current_stream();
  if (inner == 1) {
    cuda_impl::max_rows_kernel<<<cuda_impl::grid_rows(outer), cuda_impl::threads_for_row(n, 4), 0, s>>>(
        x.data(), values.data(), indices.data(), outer, n);
  } else {
    cuda_impl::max_columns_kernel<<<cuda_impl::grid_for(outer * inner), cuda_impl::kThreads, 0, s>>>(
        x.data(), values.data(), indices.data(), outer, n, inner);
  }
  cuda::check_launch("max");
}

// dx[o, indices[o, i], i] = dy[o, i], zero elsewhere; an index outside [0, n) is the CPU's Error.
template <class T>
void max_backward(const Tensor<T, Cuda>& dy, const Tensor<int64_t, Cuda>& indices, int64_t outer, int64_t n,
                  int64_t inner, const Tensor<T, Cuda>& dx) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "max_backward");
  // The CPU kernel on host copies raises the error; unchecked (under a capture), a bad index selects
  // no element and its dx stays 0.
  if (cuda_impl::device_index_check_due() && cuda_impl::any_index_out_of_range(indices, n))
    max_backward(dy.template to_device<Cpu>(), indices.template to_device<Cpu>(), outer, n, inner,
                 Tensor<T, Cpu>::empty(dx.shape()));
  const int64_t total = outer * n * inner;
  if (total == 0) return;
  cuda_impl::max_backward_kernel<<<cuda_impl::grid_for(total), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      dy.data(), indices.data(), dx.data(), n, inner, total);
  cuda::check_launch("max_backward_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
