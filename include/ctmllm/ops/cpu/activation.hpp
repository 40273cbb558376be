#pragma once
// CPU kernels for the pointwise activations: GELU (erf and tanh forms) and SiLU, forward and backward.
#include <cmath>
#include <numbers>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops {

enum class Activation { gelu_erf, gelu_tanh, silu };

namespace impl {

// f(x) and f'(x) in the accumulation type A.
template <class A>
inline A activation_value(Activation kind, A x) {
  switch (kind) {
    case Activation::gelu_erf: return A(0.5) * x * (A(1) + std::erf(x * A(std::numbers::sqrt2 / 2)));
    case Activation::gelu_tanh: {
      const A k = A(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);  // sqrt(2/pi)
      return A(0.5) * x * (A(1) + std::tanh(k * (x + A(0.044715) * x * x * x)));
    }
    case Activation::silu: return x / (A(1) + std::exp(-x));
  }
  return x;
}
template <class A>
inline A activation_derivative(Activation kind, A x) {
  switch (kind) {
    case Activation::gelu_erf: {
      const A cdf = A(0.5) * (A(1) + std::erf(x * A(std::numbers::sqrt2 / 2)));
      const A pdf = std::exp(A(-0.5) * x * x) * A(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
      return cdf + x * pdf;
    }
    case Activation::gelu_tanh: {
      const A k = A(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);
      const A t = std::tanh(k * (x + A(0.044715) * x * x * x));
      return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * k * (A(1) + A(3 * 0.044715) * x * x);
    }
    case Activation::silu: {
      const A s = A(1) / (A(1) + std::exp(-x));
      return s * (A(1) + x * (A(1) - s));
    }
  }
  return A(1);
}

// y = f(x); x and y contiguous, same shape.
template <class T>
void activation_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& y, Activation kind) {
  using A = acc_t<T>;
  const T* in = x.data();
  T* out = y.data();
  parallel_for(0, x.numel(), 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = cast<T>(activation_value<A>(kind, A(in[i])));
  });
}

// dx = dy * f'(x); all contiguous, same shape.
template <class T>
void activation_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& dx, Activation kind) {
  using A = acc_t<T>;
  const T* g = dy.data();
  const T* in = x.data();
  T* out = dx.data();
  parallel_for(0, x.numel(), 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = cast<T>(A(g[i]) * activation_derivative<A>(kind, A(in[i])));
  });
}

}  // namespace impl
}  // namespace ctmllm::ops
