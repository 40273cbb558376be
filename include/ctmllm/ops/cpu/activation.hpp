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

// The float packet forms of activation_value and activation_derivative (Eigen's exp, tanh and
// rational erf, each within a few ulp of the scalar functions).
namespace detail {
namespace ei = Eigen::internal;
using FloatPacket = ei::packet_traits<float>::type;

inline FloatPacket packet_activation(Activation kind, bool derivative, FloatPacket x) {
  using P = FloatPacket;
  const P half = ei::pset1<P>(0.5f), one = ei::pset1<P>(1.0f);
  switch (kind) {
    case Activation::gelu_erf: {
      const P cdf = ei::pmul(half, ei::padd(one, ei::perf(ei::pmul(x, ei::pset1<P>(float(std::numbers::sqrt2 / 2))))));
      if (!derivative) return ei::pmul(x, cdf);
      const P pdf = ei::pmul(ei::pexp(ei::pmul(ei::pset1<P>(-0.5f), ei::pmul(x, x))),
                             ei::pset1<P>(float(std::numbers::inv_sqrtpi / std::numbers::sqrt2)));
      return ei::padd(cdf, ei::pmul(x, pdf));
    }
    case Activation::gelu_tanh: {
      const P k = ei::pset1<P>(float(std::numbers::sqrt2 * std::numbers::inv_sqrtpi)), c = ei::pset1<P>(0.044715f);
      const P x2 = ei::pmul(x, x);
      const P t = ei::ptanh(ei::pmul(k, ei::padd(x, ei::pmul(c, ei::pmul(x2, x)))));
      if (!derivative) return ei::pmul(ei::pmul(half, x), ei::padd(one, t));
      const P slope = ei::pmul(k, ei::padd(one, ei::pmul(ei::pset1<P>(3 * 0.044715f), x2)));
      return ei::padd(ei::pmul(half, ei::padd(one, t)),
                      ei::pmul(ei::pmul(ei::pmul(half, x), ei::psub(one, ei::pmul(t, t))), slope));
    }
    case Activation::silu: {
      const P e = ei::padd(one, ei::pexp(ei::pnegate(x)));
      if (!derivative) return ei::pdiv(x, e);
      const P s = ei::pdiv(one, e);
      return ei::pmul(s, ei::padd(one, ei::pmul(x, ei::psub(one, s))));
    }
  }
  return x;
}
}  // namespace detail

// f (or f' when derivative) over n values of A, in place. Float takes the packets (glibc's
// functions are scalar calls of several ns an element); the last partial packet is padded, so an
// element's result never depends on where a row or a thread's range splits. Double keeps the
// scalar functions (gradient checks, not speed).
template <class A>
void activation_values(Activation kind, bool derivative, A* v, int64_t n) {
  if constexpr (std::is_same_v<A, float>) {
    namespace ei = detail::ei;
    using P = detail::FloatPacket;
    constexpr int64_t W = ei::packet_traits<float>::size;
    int64_t k = 0;
    for (; k + W <= n; k += W) ei::pstoreu(v + k, detail::packet_activation(kind, derivative, ei::ploadu<P>(v + k)));
    if (k < n) {
      float tail[W] = {};
      std::copy(v + k, v + n, tail);
      ei::pstoreu(tail, detail::packet_activation(kind, derivative, ei::ploadu<P>(tail)));
      std::copy(tail, tail + (n - k), v + k);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = derivative ? activation_derivative<A>(kind, v[i]) : activation_value<A>(kind, v[i]);
  }
}

// f(c, m) for the chunks [c, c + m) of [0, n), at most kActivationChunk long, over the threads.
inline constexpr int64_t kActivationChunk = 256;
template <class F>
void for_activation_chunks(int64_t n, F f) {
  parallel_for(0, n, 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c += kActivationChunk) f(c, std::min(kActivationChunk, hi - c));
  });
}

// buf[i] = f(x[i]) (or f'), i < m, in A.
template <class T, class A = acc_t<T>>
void activation_chunk(Activation kind, bool derivative, const T* x, int64_t m, A* buf) {
  for (int64_t i = 0; i < m; ++i) buf[i] = A(x[i]);
  activation_values<A>(kind, derivative, buf, m);
}

// y = f(x); x and y contiguous, same shape.
template <class T>
void activation_forward(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& y, Activation kind) {
  const T* in = x.data();
  T* out = y.data();
  for_activation_chunks(x.numel(), [&](int64_t c, int64_t m) {
    acc_t<T> f[kActivationChunk];
    activation_chunk(kind, false, in + c, m, f);
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
  for_activation_chunks(x.numel(), [&](int64_t c, int64_t m) {
    A df[kActivationChunk];
    activation_chunk(kind, true, in + c, m, df);
    for (int64_t i = 0; i < m; ++i) out[c + i] = cast<T>(A(g[c + i]) * df[i]);
  });
}

// y = T(f(gate)) · up; gate and up of y's shape with contiguous rows at any row stride (the halves of
// a fused gate_up projection; other views are copied first); y contiguous.
template <class T>
void gated_activation_forward(const Tensor<T, Cpu>& gate, const Tensor<T, Cpu>& up, const Tensor<T, Cpu>& y,
                              Activation kind) {
  using A = acc_t<T>;
  const Tensor<T, Cpu> gc = gate.row_stride() < 0 ? gate.contiguous() : gate;
  const Tensor<T, Cpu> uc = up.row_stride() < 0 ? up.contiguous() : up;
  const int64_t cols = y.rank() == 0 ? 1 : y.size(-1), rows = cols == 0 ? 0 : y.numel() / cols;
  const int64_t gs = gc.row_stride(), us = uc.row_stride();
  T* out = y.data();
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    A f[kActivationChunk];
    for (int64_t r = r0; r < r1; ++r) {
      const T* g = gc.data() + r * gs;
      const T* u = uc.data() + r * us;
      T* o = out + r * cols;
      for (int64_t c = 0; c < cols; c += kActivationChunk) {
        const int64_t m = std::min(kActivationChunk, cols - c);
        activation_chunk(kind, false, g + c, m, f);
        for (int64_t i = 0; i < m; ++i) o[c + i] = cast<T>(A(cast<T>(f[i])) * A(u[c + i]));
      }
    }
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
  for_activation_chunks(dy.numel(), [&](int64_t c, int64_t m) {
    A f[kActivationChunk], df[kActivationChunk];
    activation_chunk(kind, false, g + c, m, f);
    activation_chunk(kind, true, g + c, m, df);
    for (int64_t i = 0; i < m; ++i) {
      const A dyi = A(d[c + i]);
      dg[c + i] = cast<T>(A(cast<T>(dyi * A(u[c + i]))) * df[i]);
      du[c + i] = cast<T>(dyi * A(cast<T>(f[i])));
    }
  });
}

}  // namespace impl
}  // namespace ctmllm::ops
