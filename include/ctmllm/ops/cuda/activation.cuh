#pragma once
// CUDA kernels for GELU (erf and tanh forms) and SiLU, forward and backward, alone and gated (the
// Tensor<T, Cuda> overloads of ops/cpu/activation.hpp), on the vectorised elementwise maps; float
// arithmetic, with the CPU's roundings to T between the gated form's two ops.
#include "ctmllm/ops/cpu/activation.hpp"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

inline constexpr float kSqrtHalf = 0.70710678118654752f;     // 1/√2
inline constexpr float kInvSqrt2Pi = 0.39894228040143268f;   // 1/√(2π)
inline constexpr float kSqrt2OverPi = 0.79788456080286536f;  // √(2/π)
inline constexpr float kGeluCubic = 0.044715f;

struct ActivationFn {
  Activation kind;
  __device__ float operator()(float x) const {
    switch (kind) {
      case Activation::gelu_erf: return 0.5f * x * (1.0f + erff(x * kSqrtHalf));
      case Activation::gelu_tanh: return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
      case Activation::silu: return x / (1.0f + expf(-x));
    }
    return x;
  }
};

// dy · f'(x)
struct ActivationGradFn {
  Activation kind;
  __device__ float operator()(float d, float x) const {
    switch (kind) {
      case Activation::gelu_erf: {
        const float cdf = 0.5f * (1.0f + erff(x * kSqrtHalf));
        return d * (cdf + x * expf(-0.5f * x * x) * kInvSqrt2Pi);
      }
      case Activation::gelu_tanh: {
        const float t = tanhf(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
        return d * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x));
      }
      case Activation::silu: {
        const float s = 1.0f / (1.0f + expf(-x));
        return d * s * (1.0f + x * (1.0f - s));
      }
    }
    return d;
  }
};

// T(f(g)) · u: f's result rounded to T as the separate activation stores it.
template <class T>
struct GatedActivationFn {
  Activation kind;
  __device__ float operator()(float g, float u) const {
    return to_float(from_float<T>(ActivationFn{kind}(g))) * u;
  }
};

// dgate = T(dy · up) · f'(gate), dup = dy · T(f(gate)) for each element; 16-byte packs when Vec.
template <bool Vec, class T>
__global__ void gated_activation_backward_kernel(const T* __restrict__ dy, const T* __restrict__ gate,
                                                 const T* __restrict__ up, T* __restrict__ dgate,
                                                 T* __restrict__ dup, int64_t n, Activation kind) {
  auto one = [kind](T d_, T g_, T u_, T& dg, T& du) {
    const float d = to_float(d_), g = to_float(g_);
    dg = from_float<T>(ActivationGradFn{kind}(to_float(from_float<T>(d * to_float(u_))), g));
    du = from_float<T>(d * to_float(from_float<T>(ActivationFn{kind}(g))));
  };
  int64_t first_scalar = 0;
  if constexpr (Vec) {
    constexpr int V = Pack<T>::size;
    const int64_t packs = n / V;
    for (int64_t i = global_thread(); i < packs; i += grid_threads()) {
      const Pack<T> pd = reinterpret_cast<const Pack<T>*>(dy)[i], pg = reinterpret_cast<const Pack<T>*>(gate)[i],
                    pu = reinterpret_cast<const Pack<T>*>(up)[i];
      Pack<T> og, ou;
#pragma unroll
      for (int j = 0; j < V; ++j) one(pd.v[j], pg.v[j], pu.v[j], og.v[j], ou.v[j]);
      reinterpret_cast<Pack<T>*>(dgate)[i] = og;
      reinterpret_cast<Pack<T>*>(dup)[i] = ou;
    }
    first_scalar = packs * V;
  }
  for (int64_t i = first_scalar + global_thread(); i < n; i += grid_threads()) one(dy[i], gate[i], up[i], dgate[i], dup[i]);
}

}  // namespace cuda_impl

namespace impl {

template <class T>
void activation_forward(const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& y, Activation kind) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "activation");
  cuda_impl::map1(x, y, cuda_impl::ActivationFn{kind});
}

template <class T>
void activation_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& x, const Tensor<T, Cuda>& dx, Activation kind) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "activation_backward");
  cuda_impl::map2(dy, x, dx, cuda_impl::ActivationGradFn{kind});
}

template <class T>
void gated_activation_forward(const Tensor<T, Cuda>& gate, const Tensor<T, Cuda>& up, const Tensor<T, Cuda>& y,
                              Activation kind) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "gated_activation");
  cuda_impl::map2(gate, up, y, cuda_impl::GatedActivationFn<T>{kind});
}

template <class T>
void gated_activation_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& gate, const Tensor<T, Cuda>& up,
                               const Tensor<T, Cuda>& dgate, const Tensor<T, Cuda>& dup, Activation kind) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "gated_activation_backward");
  const int64_t n = dy.numel();
  if (n == 0) return;
  const cudaStream_t s = cuda::current_stream();
  if (cuda_impl::aligned16(dy.data(), gate.data(), up.data(), dgate.data(), dup.data()))
    cuda_impl::gated_activation_backward_kernel<true><<<cuda_impl::grid_for(n / cuda_impl::Pack<T>::size + 1),
                                                        cuda_impl::kThreads, 0, s>>>(
        dy.data(), gate.data(), up.data(), dgate.data(), dup.data(), n, kind);
  else
    cuda_impl::gated_activation_backward_kernel<false><<<cuda_impl::grid_for(n), cuda_impl::kThreads, 0, s>>>(
        dy.data(), gate.data(), up.data(), dgate.data(), dup.data(), n, kind);
  cuda::check_launch("gated_activation_backward_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
