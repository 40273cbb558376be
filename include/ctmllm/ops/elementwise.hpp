#pragma once
// Elementwise arithmetic with NumPy/PyTorch broadcasting: add, sub, mul, div; the tensor-scalar
// forms add_scalar, mul_scalar, pow_scalar; neg, exp, log, sqrt, rsqrt, square, tanh, sigmoid;
// masked_fill; and add_, the in-place accumulate. Results are new contiguous tensors; inputs may
// have any strides. Each backward sums the gradient back to its operand's pre-broadcast shape.
#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/accumulate.hpp"
#include "ctmllm/ops/cpu/elementwise.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/accumulate.cuh"
#include "ctmllm/ops/cuda/elementwise.cuh"
#endif
#include "ctmllm/ops/reduce.hpp"

namespace ctmllm::ops {

// Unary maps --------------------------------------------------------------------------------------
template <class T, class D>
Tensor<T, D> unary(const Tensor<T, D>& x, Unary op, double s = 0.0) {
  CTMLLM_REQUIRE_KERNELS(D, "unary");
  check_defined(x, "unary", "x");
  Tensor<T, D> y = Tensor<T, D>::empty(x.shape());
  impl::unary(x.contiguous(), y, op, s);
  return y;
}

// Gradient with respect to x. Only the operand the derivative reads must be given: y for exp,
// sqrt, rsqrt, tanh, sigmoid; x for log, square, pow_scalar; neither for neg, add_scalar,
// mul_scalar (pass undefined tensors for the rest).
template <class T, class D>
Tensor<T, D> unary_backward(const Tensor<T, D>& dy, const Tensor<T, D>& x, const Tensor<T, D>& y, Unary op, double s = 0.0) {
  CTMLLM_REQUIRE_KERNELS(D, "unary_backward");
  check_defined(dy, "unary_backward", "dy");
  const bool reads_y = unary_grad_uses_output(op), reads_x = unary_grad_uses_input(op);
  const Tensor<T, D>& saved = reads_y ? y : reads_x ? x : dy;
  check_defined(saved, "unary_backward", reads_y ? "y" : "x");
  check_shape(dy, saved.shape(), "unary_backward", "dy");
  Tensor<T, D> dx = Tensor<T, D>::empty(dy.shape());
  impl::unary_backward(dy.contiguous(), saved.contiguous(), dx, op, s);
  return dx;
}

template <class T, class D>
Tensor<T, D> neg(const Tensor<T, D>& x) { return unary(x, Unary::neg); }
template <class T, class D>
Tensor<T, D> exp(const Tensor<T, D>& x) { return unary(x, Unary::exp); }
template <class T, class D>
Tensor<T, D> log(const Tensor<T, D>& x) { return unary(x, Unary::log); }
template <class T, class D>
Tensor<T, D> sqrt(const Tensor<T, D>& x) { return unary(x, Unary::sqrt); }
template <class T, class D>
Tensor<T, D> rsqrt(const Tensor<T, D>& x) { return unary(x, Unary::rsqrt); }
template <class T, class D>
Tensor<T, D> square(const Tensor<T, D>& x) { return unary(x, Unary::square); }
template <class T, class D>
Tensor<T, D> tanh(const Tensor<T, D>& x) { return unary(x, Unary::tanh); }
template <class T, class D>
Tensor<T, D> sigmoid(const Tensor<T, D>& x) { return unary(x, Unary::sigmoid); }
template <class T, class D>
Tensor<T, D> add_scalar(const Tensor<T, D>& x, double s) { return unary(x, Unary::add_scalar, s); }
template <class T, class D>
Tensor<T, D> mul_scalar(const Tensor<T, D>& x, double s) { return unary(x, Unary::mul_scalar, s); }
template <class T, class D>
Tensor<T, D> pow_scalar(const Tensor<T, D>& x, double p) { return unary(x, Unary::pow_scalar, p); }

// Binary ops ------------------------------------------------------------------------------------
inline const char* binary_name(Binary op) {
  switch (op) {
    case Binary::add: return "add";
    case Binary::sub: return "sub";
    case Binary::mul: return "mul";
    case Binary::div: return "div";
  }
  return "binary";
}

template <class T, class D>
Tensor<T, D> binary(const Tensor<T, D>& a, const Tensor<T, D>& b, Binary op) {
  CTMLLM_REQUIRE_KERNELS(D, "binary");
  check_defined(a, binary_name(op), "a");
  check_defined(b, binary_name(op), "b");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), binary_name(op));
  Tensor<T, D> y = Tensor<T, D>::empty(shape);
  impl::binary(a.expand(shape), b.expand(shape), y, op);
  return y;
}

template <class T, class D>
struct BinaryGrads {
  Tensor<T, D> da, db;  // undefined when not requested
};

// Gradients of y = a ∘ b given dy (the broadcast shape), each summed to its operand's shape.
template <class T, class D>
BinaryGrads<T, D> binary_backward(const Tensor<T, D>& dy, const Tensor<T, D>& a, const Tensor<T, D>& b, Binary op,
                                  bool need_da = true, bool need_db = true) {
  CTMLLM_REQUIRE_KERNELS(D, "binary_backward");
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "binary_backward");
  check_shape(dy, shape, "binary_backward", "dy");
  BinaryGrads<T, D> g;
  if (op == Binary::add || op == Binary::sub) {
    if (need_da) g.da = sum_to_shape(dy, a.shape());
    if (need_db) {
      g.db = sum_to_shape(dy, b.shape());
      if (op == Binary::sub) g.db = unary(g.db, Unary::neg);
    }
    return g;
  }
  const Tensor<T, D> dyc = dy.contiguous(), ae = a.expand(shape), be = b.expand(shape);
  auto grad = [&](int which, const Shape& to) {
    Tensor<T, D> full = Tensor<T, D>::empty(shape);
    impl::binary_grad(dyc, ae, be, full, op, which);
    return sum_to_shape(full, to);
  };
  if (need_da) g.da = grad(0, a.shape());
  if (need_db) g.db = grad(1, b.shape());
  return g;
}

template <class T, class D>
Tensor<T, D> add(const Tensor<T, D>& a, const Tensor<T, D>& b) { return binary(a, b, Binary::add); }
template <class T, class D>
Tensor<T, D> sub(const Tensor<T, D>& a, const Tensor<T, D>& b) { return binary(a, b, Binary::sub); }
template <class T, class D>
Tensor<T, D> mul(const Tensor<T, D>& a, const Tensor<T, D>& b) { return binary(a, b, Binary::mul); }
template <class T, class D>
Tensor<T, D> div(const Tensor<T, D>& a, const Tensor<T, D>& b) { return binary(a, b, Binary::div); }

// dst += src in place, src broadcast to dst's shape. dst must hold each of its elements once (an
// expanded view would add into one element from several places); a src overlapping dst is read
// through a copy first.
template <class T, class D>
void add_(const Tensor<T, D>& dst, const Tensor<T, D>& src) {
  CTMLLM_REQUIRE_KERNELS(D, "add_");
  check_defined(dst, "add_", "dst");
  check_defined(src, "add_", "src");
  CTMLLM_CHECK(broadcast_shapes(dst.shape(), src.shape(), "add_") == dst.shape(), "add_: src ", src.describe(),
               " does not broadcast to dst ", dst.describe());
  for (int d = 0; d < dst.rank(); ++d)
    CTMLLM_CHECK(dst.size(d) <= 1 || dst.stride(d) != 0, "add_: dst ", dst.describe(),
                 " repeats its elements along dimension ", d, " (an expanded view) and cannot be added into");
  accumulate(D{}, dst, (dst.memory_overlaps(src) ? src.clone() : src).expand(dst.shape()));
}

// masked_fill: value where mask (uint8, nonzero = fill) is set, x elsewhere; mask broadcasts to x.
template <class T, class D>
Tensor<T, D> masked_fill(const Tensor<T, D>& x, const Tensor<uint8_t, D>& mask, double value) {
  CTMLLM_REQUIRE_KERNELS(D, "masked_fill");
  check_defined(x, "masked_fill", "x");
  check_defined(mask, "masked_fill", "mask");
  CTMLLM_CHECK(mask.rank() <= x.rank() && broadcast_shapes(x.shape(), mask.shape(), "masked_fill") == x.shape(),
               "masked_fill: mask ", mask.describe(), " does not broadcast to x ", x.describe());
  Tensor<T, D> y = Tensor<T, D>::empty(x.shape());
  impl::masked_fill(x, mask.expand(x.shape()), cast<T>(value), y);
  return y;
}
// Gradient with respect to x: dy with the filled positions zeroed.
template <class T, class D>
Tensor<T, D> masked_fill_backward(const Tensor<T, D>& dy, const Tensor<uint8_t, D>& mask) {
  return masked_fill(dy, mask, 0.0);
}

}  // namespace ctmllm::ops
