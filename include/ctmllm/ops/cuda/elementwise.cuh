#pragma once
// CUDA kernels for elementwise arithmetic (the Tensor<T, Cuda> overloads of ops/cpu/elementwise.hpp):
// binary ops over broadcast operands, unary maps, the pointwise parts of their backward, and
// masked_fill. Same contracts as the CPU kernels: operands arrive expanded to the output's shape,
// outputs are contiguous; float arithmetic for every element type.
#include "ctmllm/ops/cpu/elementwise.hpp"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

struct BinaryFn {
  Binary op;
  __device__ float operator()(float x, float y) const {
    switch (op) {
      case Binary::add: return x + y;
      case Binary::sub: return x - y;
      case Binary::mul: return x * y;
      case Binary::div: return x / y;
    }
    return 0.0f;
  }
};

// d(a∘b)/d(operand `which`) times dy, as impl::binary_grad (mul and div only).
struct BinaryGradFn {
  Binary op;
  int which;
  __device__ float operator()(float d, float x, float y) const {
    if (op == Binary::mul) return which == 0 ? d * y : d * x;
    return which == 0 ? d / y : -d * x / (y * y);
  }
};

struct UnaryFn {
  Unary op;
  float c;
  __device__ float operator()(float v) const {
    switch (op) {
      case Unary::neg: return -v;
      case Unary::exp: return expf(v);
      case Unary::log: return logf(v);
      case Unary::sqrt: return sqrtf(v);
      case Unary::rsqrt: return 1.0f / sqrtf(v);
      case Unary::square: return v * v;
      case Unary::tanh: return tanhf(v);
      case Unary::sigmoid: return 1.0f / (1.0f + expf(-v));
      case Unary::add_scalar: return v + c;
      case Unary::mul_scalar: return v * c;
      case Unary::pow_scalar: return powf(v, c);
    }
    return 0.0f;
  }
};

// dx from dy and the saved operand (y or x, as unary_grad_uses_output / _input say).
struct UnaryGradFn {
  Unary op;
  float c;
  __device__ float operator()(float d, float s) const {
    switch (op) {
      case Unary::neg: return -d;
      case Unary::add_scalar: return d;
      case Unary::mul_scalar: return d * c;
      case Unary::exp: return d * s;
      case Unary::sqrt: return d * 0.5f / s;
      case Unary::rsqrt: return -0.5f * d * s * s * s;
      case Unary::tanh: return d * (1.0f - s * s);
      case Unary::sigmoid: return d * s * (1.0f - s);
      case Unary::log: return d / s;
      case Unary::square: return 2.0f * d * s;
      case Unary::pow_scalar: return c == 0.0f ? 0.0f : d * c * powf(s, c - 1.0f);
    }
    return 0.0f;
  }
};

// out[i] = f(dy[i], a[off_a], b[off_b]): dy and out contiguous, a and b strided.
template <class T>
__global__ void binary_grad_kernel(const T* __restrict__ dy, const T* __restrict__ a, const T* __restrict__ b,
                                   T* __restrict__ out, int64_t n, StridedOffsets<2> s, BinaryGradFn f) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    s.at(i, off);
    out[i] = from_float<T>(f(to_float(dy[i]), to_float(a[off[0]]), to_float(b[off[1]])));
  }
}

template <class T>
__global__ void masked_fill_kernel(const T* __restrict__ x, const uint8_t* __restrict__ mask, T value,
                                   T* __restrict__ out, int64_t n, StridedOffsets<2> s) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    s.at(i, off);
    out[i] = mask[off[1]] ? value : x[off[0]];
  }
}

}  // namespace cuda_impl

namespace impl {

template <class T>
void binary(const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b, const Tensor<T, Cuda>& out, Binary op) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "binary");
  cuda_impl::map2(a, b, out, cuda_impl::BinaryFn{op});
}

template <class T>
void binary_grad(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& a, const Tensor<T, Cuda>& b,
                 const Tensor<T, Cuda>& out, Binary op, int which) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "binary_grad");
  CTMLLM_CHECK(op == Binary::mul || op == Binary::div, "binary_grad: only mul and div need their operands");
  const int64_t n = out.numel();
  if (n == 0) return;
  const Shape strides[2] = {a.strides(), b.strides()};
  cuda_impl::binary_grad_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      dy.data(), a.data(), b.data(), out.data(), n, cuda_impl::strided_offsets(out.shape(), strides),
      cuda_impl::BinaryGradFn{op, which});
  cuda::check_launch("binary_grad_kernel");
}

template <class T>
void unary(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& y, Unary op, double s) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "unary");
  cuda_impl::map1(x, y, cuda_impl::UnaryFn{op, float(s)});
}

template <class T>
void unary_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& saved, const Tensor<T, Cuda>& dx, Unary op,
                    double s) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "unary_backward");
  cuda_impl::map2(dy, saved, dx, cuda_impl::UnaryGradFn{op, float(s)});
}

template <class T>
void masked_fill(const Tensor<T, Cuda>& x, const Tensor<uint8_t, Cuda>& mask, T value, const Tensor<T, Cuda>& out) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "masked_fill");
  const int64_t n = out.numel();
  if (n == 0) return;
  const Shape strides[2] = {x.strides(), mask.strides()};
  cuda_impl::masked_fill_kernel<<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      x.data(), mask.data(), value, out.data(), n, cuda_impl::strided_offsets(out.shape(), strides));
  cuda::check_launch("masked_fill_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
