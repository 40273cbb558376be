#pragma once
// CUDA kernels for GELU (erf and tanh forms) and SiLU, forward and backward (the Tensor<T, Cuda>
// overloads of ops/cpu/activation.hpp), on the vectorised elementwise maps; float arithmetic.
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

}  // namespace impl
}  // namespace ctmllm::ops
