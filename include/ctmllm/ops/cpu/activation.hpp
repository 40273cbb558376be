#pragma once
// CPU kernels for the pointwise activations: GELU (erf and tanh forms) and SiLU, forward and
// backward, alone and gated (f(gate) · up).
#include <algorithm>
#include <cmath>
#include <numbers>
#include <type_traits>

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

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

// f over n values of A, in place. Float takes Eigen's packets (8 lanes with AVX2: exp, tanh and its
// rational erf, each within a few ulp of the scalar functions; glibc's are scalar calls of several ns
// an element); the last partial packet is padded, so an element's result never depends on where a
// row or a thread's range splits. Double keeps the scalar functions (gradient checks, not speed).
template <class A>
void activation_values(Activation kind, A* v, int64_t n) {
  if constexpr (std::is_same_v<A, float>) {
    namespace ei = Eigen::internal;
    using P = ei::packet_traits<float>::type;
    constexpr int64_t W = ei::packet_traits<float>::size;
    auto packet = [kind](const P x) -> P {
      const P half = ei::pset1<P>(0.5f), one = ei::pset1<P>(1.0f);
      switch (kind) {
        case Activation::gelu_erf:
          return ei::pmul(ei::pmul(half, x), ei::padd(one, ei::perf(ei::pmul(x, ei::pset1<P>(float(std::numbers::sqrt2 / 2))))));
        case Activation::gelu_tanh: {
          const P k = ei::pset1<P>(float(std::numbers::sqrt2 * std::numbers::inv_sqrtpi));
          const P cubic = ei::pmul(ei::pset1<P>(0.044715f), ei::pmul(x, ei::pmul(x, x)));
          return ei::pmul(ei::pmul(half, x), ei::padd(one, ei::ptanh(ei::pmul(k, ei::padd(x, cubic)))));
        }
        case Activation::silu: return ei::pdiv(x, ei::padd(one, ei::pexp(ei::pnegate(x))));
      }
      return x;
    };
    int64_t k = 0;
    for (; k + W <= n; k += W) ei::pstoreu(v + k, packet(ei::ploadu<P>(v + k)));
    if (k < n) {
      float tail[W] = {};
      std::copy(v + k, v + n, tail);
      ei::pstoreu(tail, packet(ei::ploadu<P>(tail)));
      std::copy(tail, tail + (n - k), v + k);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = activation_value<A>(kind, v[i]);
  }
}

// Calls f(lo, buf, m) for the elements [lo, lo + m) of [0, n), in chunks of at most kChunk spread over
// the threads, with buf holding the chunk's inputs widened to A and passed through the activation.
inline constexpr int64_t kActivationChunk = 256;
template <class T, class F>
void for_activation_chunks(const T* x, int64_t n, Activation kind, F f) {
  using A = acc_t<T>;
  parallel_for(0, n, 16384, [&](int64_t lo, int64_t hi) {
    A buf[kActivationChunk];
    for (int64_t c = lo; c < hi; c += kActivationChunk) {
      const int64_t m = std::min(kActivationChunk, hi - c);
      for (int64_t i = 0; i < m; ++i) buf[i] = A(x[c + i]);
      activation_values<A>(kind, buf, m);
      f(c, buf, m);
    }
  });
}

// y = f(x); x and y contiguous, same shape.
template <class T>
void activation_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& y, Activation kind) {
  T* out = y.data();
  for_activation_chunks(x.data(), x.numel(), kind, [&](int64_t c, const acc_t<T>* f, int64_t m) {
    for (int64_t i = 0; i < m; ++i) out[c + i] = cast<T>(f[i]);
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

// y = T(f(gate)) · up; gate and up of y's shape, any strides (views are copied first); y contiguous.
template <class T>
void gated_activation_forward(const Tensor<T, Cpu>& gate, const Tensor<T, Cpu>& up, const Tensor<T, Cpu>& y,
                              Activation kind) {
  using A = acc_t<T>;
  const Tensor<T, Cpu> g = gate.contiguous(), uc = up.contiguous();
  const T* u = uc.data();
  T* out = y.data();
  for_activation_chunks(g.data(), g.numel(), kind, [&](int64_t c, const A* f, int64_t m) {
    for (int64_t i = 0; i < m; ++i) out[c + i] = cast<T>(A(cast<T>(f[i])) * A(u[c + i]));
  });
}

// dgate = T(dy · up) · f'(gate), dup = dy · T(f(gate)): the roundings of mul's and then activation's
// backward. All contiguous, one shape.
template <class T>
void gated_activation_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& gate, const Tensor<T, Cpu>& up,
                               const Tensor<T, Cpu>& dgate, const Tensor<T, Cpu>& dup, Activation kind) {
  using A = acc_t<T>;
  const T* d = dy.data();
  const T* g = gate.data();
  const T* u = up.data();
  T* dg = dgate.data();
  T* du = dup.data();
  for_activation_chunks(g, gate.numel(), kind, [&](int64_t c, const A* f, int64_t m) {
    for (int64_t i = c; i < c + m; ++i) {
      dg[i] = cast<T>(A(cast<T>(A(d[i]) * A(u[i]))) * activation_derivative<A>(kind, A(g[i])));
      du[i] = cast<T>(A(d[i]) * A(cast<T>(f[i - c])));
    }
  });
}

}  // namespace impl
}  // namespace ctmllm::ops
