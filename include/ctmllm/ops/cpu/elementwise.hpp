#pragma once
// CPU kernels for elementwise arithmetic: binary ops over broadcast operands, unary maps (with an
// optional scalar), masked_fill, and the pointwise parts of their backward. Operands arrive already
// expanded to the output's shape (stride 0 along broadcast dimensions); outputs are contiguous.
#include <cmath>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/strided.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops {

enum class Binary { add, sub, mul, div };
// The *_scalar kinds take their scalar from the op's `s` argument.
enum class Unary { neg, exp, log, sqrt, rsqrt, square, tanh, sigmoid, add_scalar, mul_scalar, pow_scalar };

// What unary_backward reads besides dy: the op's output y (exp, sqrt, rsqrt, tanh, sigmoid), its
// input x (log, square, pow_scalar), or neither (neg, add_scalar, mul_scalar).
constexpr bool unary_grad_uses_output(Unary op) {
  return op == Unary::exp || op == Unary::sqrt || op == Unary::rsqrt || op == Unary::tanh || op == Unary::sigmoid;
}
constexpr bool unary_grad_uses_input(Unary op) {
  return op == Unary::log || op == Unary::square || op == Unary::pow_scalar;
}

namespace impl {

// out[i] = f(a[i], b[i]) over expanded operands a, b and contiguous out, all of out's shape.
template <class T, class F>
void map2(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b, const Tensor<T, Cpu>& out, F f) {
  using A = acc_t<T>;
  const T* pa = a.data();
  const T* pb = b.data();
  T* po = out.data();
  if (a.is_contiguous() && b.is_contiguous()) {
    parallel_for(0, out.numel(), 16384, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) po[i] = cast<T>(f(A(pa[i]), A(pb[i])));
    });
    return;
  }
  for_each_strided<3>(out.shape(), {out.strides(), a.strides(), b.strides()}, [&](auto off, int64_t n, auto inc) {
    T* o = po + off[0];
    const T* x = pa + off[1];
    const T* y = pb + off[2];
    if (inc[1] == 1 && inc[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = cast<T>(f(A(x[i]), A(y[i])));
    } else if (inc[1] == 1 && inc[2] == 0) {  // row times a broadcast scalar (bias-like)
      const A yv = A(*y);
      for (int64_t i = 0; i < n; ++i) o[i] = cast<T>(f(A(x[i]), yv));
    } else {
      for (int64_t i = 0; i < n; ++i) o[i] = cast<T>(f(A(x[i * inc[1]]), A(y[i * inc[2]])));
    }
  });
}

// out[i] = f(x[i]) over a contiguous x and out.
template <class T, class F>
void map1(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& out, F f) {
  using A = acc_t<T>;
  const T* px = x.data();
  T* po = out.data();
  parallel_for(0, out.numel(), 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) po[i] = cast<T>(f(A(px[i])));
  });
}

template <class T>
void binary(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b, const Tensor<T, Cpu>& out, Binary op) {
  using A = acc_t<T>;
  switch (op) {
    case Binary::add: return map2(a, b, out, [](A x, A y) { return x + y; });
    case Binary::sub: return map2(a, b, out, [](A x, A y) { return x - y; });
    case Binary::mul: return map2(a, b, out, [](A x, A y) { return x * y; });
    case Binary::div: return map2(a, b, out, [](A x, A y) { return x / y; });
  }
}

// The full-shape gradient of a mul or div with respect to operand `which` (0: a, 1: b), before it
// is summed back to that operand's shape: out = dy·b, dy·a, dy/b or −dy·a/b². dy contiguous.
template <class T>
void binary_grad(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b, const Tensor<T, Cpu>& out,
                 Binary op, int which) {
  using A = acc_t<T>;
  const T* g = dy.data();
  const T* pa = a.data();
  const T* pb = b.data();
  T* po = out.data();
  auto run = [&](auto f) {
    for_each_strided<3>(out.shape(), {out.strides(), a.strides(), b.strides()}, [&](auto off, int64_t n, auto inc) {
      for (int64_t i = 0; i < n; ++i)
        po[off[0] + i] = cast<T>(f(A(g[off[0] + i]), A(pa[off[1] + i * inc[1]]), A(pb[off[2] + i * inc[2]])));
    });
  };
  CTMLLM_CHECK(op == Binary::mul || op == Binary::div, "binary_grad: only mul and div need their operands");
  if (op == Binary::mul) {
    if (which == 0) run([](A d, A, A y) { return d * y; });
    else run([](A d, A x, A) { return d * x; });
  } else {
    if (which == 0) run([](A d, A, A y) { return d / y; });
    else run([](A d, A x, A y) { return -d * x / (y * y); });
  }
}

// y = f(x) (contiguous); s is the scalar of the *_scalar kinds.
template <class T>
void unary(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& y, Unary op, double s) {
  using A = acc_t<T>;
  const A c = A(s);
  switch (op) {
    case Unary::neg: return map1(x, y, [](A v) { return -v; });
    case Unary::exp: return map1(x, y, [](A v) { return std::exp(v); });
    case Unary::log: return map1(x, y, [](A v) { return std::log(v); });
    case Unary::sqrt: return map1(x, y, [](A v) { return std::sqrt(v); });
    case Unary::rsqrt: return map1(x, y, [](A v) { return A(1) / std::sqrt(v); });
    case Unary::square: return map1(x, y, [](A v) { return v * v; });
    case Unary::tanh: return map1(x, y, [](A v) { return std::tanh(v); });
    case Unary::sigmoid: return map1(x, y, [](A v) { return A(1) / (A(1) + std::exp(-v)); });
    case Unary::add_scalar: return map1(x, y, [c](A v) { return v + c; });
    case Unary::mul_scalar: return map1(x, y, [c](A v) { return v * c; });
    case Unary::pow_scalar: return map1(x, y, [c](A v) { return std::pow(v, c); });
  }
}

// dx = dy · f'(x), where `saved` is y or x as unary_grad_uses_output/input say (ignored when
// neither). All contiguous, one shape.
template <class T>
void unary_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& saved, const Tensor<T, Cpu>& dx, Unary op, double s) {
  using A = acc_t<T>;
  const A c = A(s);
  auto run = [&](auto f) { map2(dy, saved, dx, f); };
  switch (op) {
    case Unary::neg: return map1(dy, dx, [](A d) { return -d; });
    case Unary::add_scalar: return map1(dy, dx, [](A d) { return d; });
    case Unary::mul_scalar: return map1(dy, dx, [c](A d) { return d * c; });
    case Unary::exp: return run([](A d, A y) { return d * y; });
    case Unary::sqrt: return run([](A d, A y) { return d * A(0.5) / y; });
    case Unary::rsqrt: return run([](A d, A y) { return A(-0.5) * d * y * y * y; });
    case Unary::tanh: return run([](A d, A y) { return d * (A(1) - y * y); });
    case Unary::sigmoid: return run([](A d, A y) { return d * y * (A(1) - y); });
    case Unary::log: return run([](A d, A x) { return d / x; });
    case Unary::square: return run([](A d, A x) { return A(2) * d * x; });
    // d/dx x^c = c·x^(c−1), and exactly 0 for c = 0 (not 0·x^−1, which is NaN at x = 0).
    case Unary::pow_scalar: return run([c](A d, A x) { return c == A(0) ? A(0) : d * c * std::pow(x, c - A(1)); });
  }
}

// out = mask ? value : x, with x and mask expanded to out's shape (contiguous out).
template <class T>
void masked_fill(const Tensor<T, Cpu>& x, const Tensor<uint8_t, Cpu>& mask, T value, const Tensor<T, Cpu>& out) {
  const T* px = x.data();
  const uint8_t* pm = mask.data();
  T* po = out.data();
  for_each_strided<3>(out.shape(), {out.strides(), x.strides(), mask.strides()}, [&](auto off, int64_t n, auto inc) {
    for (int64_t i = 0; i < n; ++i) po[off[0] + i] = pm[off[2] + i * inc[2]] ? value : px[off[1] + i * inc[1]];
  });
}

}  // namespace impl
}  // namespace ctmllm::ops
