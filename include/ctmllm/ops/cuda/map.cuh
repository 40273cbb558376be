#pragma once
// Elementwise maps y[i] = f(x[i]) and y[i] = f(a[i], b[i]) in float, T in memory, over a grid-stride
// loop: 16-byte loads and stores when every pointer is 16-byte aligned (a Pack of T per thread), one
// element at a time for the tail and for unaligned views; rows of packs for operands whose rows are
// contiguous but spaced wider (the halves of a fused projection); a strided form for the rest.
// f is a functor with a __device__ operator() on floats.
#include "ctmllm/core/cuda/current_stream.hpp"
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cuda/dtype.cuh"
#include "ctmllm/ops/cuda/launch.cuh"
#include "ctmllm/ops/cuda/strided.cuh"

namespace ctmllm::ops::cuda_impl {

template <bool Vec, class T, class F>
__global__ void map1_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, F f) {
  int64_t first_scalar = 0;
  if constexpr (Vec) {
    constexpr int V = Pack<T>::size;
    const int64_t packs = n / V;
    for (int64_t i = global_thread(); i < packs; i += grid_threads()) {
      Pack<T> p = reinterpret_cast<const Pack<T>*>(x)[i];
#pragma unroll
      for (int j = 0; j < V; ++j) p.v[j] = from_float<T>(f(to_float(p.v[j])));
      reinterpret_cast<Pack<T>*>(y)[i] = p;
    }
    first_scalar = packs * V;
  }
  for (int64_t i = first_scalar + global_thread(); i < n; i += grid_threads()) y[i] = from_float<T>(f(to_float(x[i])));
}

template <bool Vec, class T, class F>
__global__ void map2_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, int64_t n, F f) {
  int64_t first_scalar = 0;
  if constexpr (Vec) {
    constexpr int V = Pack<T>::size;
    const int64_t packs = n / V;
    for (int64_t i = global_thread(); i < packs; i += grid_threads()) {
      const Pack<T> pa = reinterpret_cast<const Pack<T>*>(a)[i], pb = reinterpret_cast<const Pack<T>*>(b)[i];
      Pack<T> out;
#pragma unroll
      for (int j = 0; j < V; ++j) out.v[j] = from_float<T>(f(to_float(pa.v[j]), to_float(pb.v[j])));
      reinterpret_cast<Pack<T>*>(y)[i] = out;
    }
    first_scalar = packs * V;
  }
  for (int64_t i = first_scalar + global_thread(); i < n; i += grid_threads())
    y[i] = from_float<T>(f(to_float(a[i]), to_float(b[i])));
}

// y [rows, cols] contiguous; a and b rows of cols contiguous values, as_ and bs apart (the column
// halves of a fused projection's output): 16-byte packs, cols a multiple of the pack size.
template <class T, class F>
__global__ void map2_rows_kernel(const T* __restrict__ a, int64_t as, const T* __restrict__ b, int64_t bs,
                                 T* __restrict__ y, int64_t rows, int64_t cols, F f) {
  constexpr int V = Pack<T>::size;
  const int64_t packs_per_row = cols / V;
  for (int64_t i = global_thread(); i < rows * packs_per_row; i += grid_threads()) {
    const int64_t r = i / packs_per_row, c = (i % packs_per_row) * V;
    const Pack<T> pa = *reinterpret_cast<const Pack<T>*>(a + r * as + c), pb = *reinterpret_cast<const Pack<T>*>(b + r * bs + c);
    Pack<T> out;
#pragma unroll
    for (int j = 0; j < V; ++j) out.v[j] = from_float<T>(f(to_float(pa.v[j]), to_float(pb.v[j])));
    *reinterpret_cast<Pack<T>*>(y + r * cols + c) = out;
  }
}

// y contiguous; a and b at the strided offsets of element i.
template <class T, class F>
__global__ void map2_strided_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, int64_t n,
                                    StridedOffsets<2> s, F f) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    s.at(i, off);
    y[i] = from_float<T>(f(to_float(a[off[0]]), to_float(b[off[1]])));
  }
}

// y = f(x): x and y contiguous, one shape.
template <class T, class F>
void map1(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& y, F f) {
  const int64_t n = y.numel();
  if (n == 0) return;
  const cudaStream_t s = cuda::current_stream();
  if (aligned16(x.data(), y.data())) map1_kernel<true><<<grid_for(n / Pack<T>::size + 1), kThreads, 0, s>>>(x.data(), y.data(), n, f);
  else map1_kernel<false><<<grid_for(n), kThreads, 0, s>>>(x.data(), y.data(), n, f);
  cuda::check_launch("map1_kernel");
}

// y = f(a, b): y contiguous; a and b of y's shape, contiguous or any strides (stride 0 broadcasts: a
// row repeated over the rows has row stride 0 and takes the rows form; other broadcasts the strided).
template <class T, class F>
void map2(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b, const Tensor<T, Cuda>& y, F f) {
  const int64_t n = y.numel();
  if (n == 0) return;
  const cudaStream_t s = cuda::current_stream();
  if (a.is_contiguous() && b.is_contiguous()) {
    if (aligned16(a.data(), b.data(), y.data()))
      map2_kernel<true><<<grid_for(n / Pack<T>::size + 1), kThreads, 0, s>>>(a.data(), b.data(), y.data(), n, f);
    else
      map2_kernel<false><<<grid_for(n), kThreads, 0, s>>>(a.data(), b.data(), y.data(), n, f);
  } else if (const int64_t cols = y.rank() ? y.size(-1) : 1, as = a.row_stride(), bs = b.row_stride();
             as >= 0 && bs >= 0 && cols % Pack<T>::size == 0 && (as * int64_t(sizeof(T))) % 16 == 0 &&
             (bs * int64_t(sizeof(T))) % 16 == 0 && aligned16(a.data(), b.data(), y.data())) {
    map2_rows_kernel<<<grid_for(n / Pack<T>::size + 1), kThreads, 0, s>>>(a.data(), as, b.data(), bs, y.data(),
                                                                         n / cols, cols, f);
  } else {
    const Shape strides[2] = {a.strides(), b.strides()};
    map2_strided_kernel<<<grid_for(n), kThreads, 0, s>>>(a.data(), b.data(), y.data(), n,
                                                          strided_offsets(y.shape(), strides), f);
  }
  cuda::check_launch("map2_kernel");
}

}  // namespace ctmllm::ops::cuda_impl
