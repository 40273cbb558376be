#pragma once
// Autograd for elementwise arithmetic. Binary ops save both operands and sum each gradient back to
// its operand's shape; unary ops save only what their derivative reads (y for exp, sqrt, rsqrt,
// tanh, sigmoid; x for log, square, pow_scalar; nothing for neg, add_scalar, mul_scalar).
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/elementwise.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> binary(const Variable<T, D>& a, const Variable<T, D>& b, ops::Binary op) {
  Tensor<T, D> av = a.value(), bv = b.value();
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record(ops::binary(av, bv, op), ops::binary_name(op), {a, b}, [av, bv, op, need_a, need_b](const Tensor<T, D>& dy) {
    auto g = ops::binary_backward(dy, av, bv, op, need_a, need_b);
    return std::vector<Tensor<T, D>>{g.da, g.db};
  });
}
template <class T, class D>
Variable<T, D> add(const Variable<T, D>& a, const Variable<T, D>& b) { return binary(a, b, ops::Binary::add); }
template <class T, class D>
Variable<T, D> sub(const Variable<T, D>& a, const Variable<T, D>& b) { return binary(a, b, ops::Binary::sub); }
template <class T, class D>
Variable<T, D> mul(const Variable<T, D>& a, const Variable<T, D>& b) { return binary(a, b, ops::Binary::mul); }
template <class T, class D>
Variable<T, D> div(const Variable<T, D>& a, const Variable<T, D>& b) { return binary(a, b, ops::Binary::div); }

template <class T, class D>
Variable<T, D> unary(const Variable<T, D>& x, ops::Unary op, double s = 0.0) {
  Tensor<T, D> y = ops::unary(x.value(), op, s);
  const Tensor<T, D> xv = ops::unary_grad_uses_input(op) ? x.value() : Tensor<T, D>();
  const Tensor<T, D> yv = ops::unary_grad_uses_output(op) ? y : Tensor<T, D>();
  return record(std::move(y), "unary", {x}, [xv, yv, op, s](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::unary_backward(dy, xv, yv, op, s)};
  });
}
template <class T, class D>
Variable<T, D> neg(const Variable<T, D>& x) { return unary(x, ops::Unary::neg); }
template <class T, class D>
Variable<T, D> exp(const Variable<T, D>& x) { return unary(x, ops::Unary::exp); }
template <class T, class D>
Variable<T, D> log(const Variable<T, D>& x) { return unary(x, ops::Unary::log); }
template <class T, class D>
Variable<T, D> sqrt(const Variable<T, D>& x) { return unary(x, ops::Unary::sqrt); }
template <class T, class D>
Variable<T, D> rsqrt(const Variable<T, D>& x) { return unary(x, ops::Unary::rsqrt); }
template <class T, class D>
Variable<T, D> square(const Variable<T, D>& x) { return unary(x, ops::Unary::square); }
template <class T, class D>
Variable<T, D> tanh(const Variable<T, D>& x) { return unary(x, ops::Unary::tanh); }
template <class T, class D>
Variable<T, D> sigmoid(const Variable<T, D>& x) { return unary(x, ops::Unary::sigmoid); }
template <class T, class D>
Variable<T, D> add_scalar(const Variable<T, D>& x, double s) { return unary(x, ops::Unary::add_scalar, s); }
template <class T, class D>
Variable<T, D> mul_scalar(const Variable<T, D>& x, double s) { return unary(x, ops::Unary::mul_scalar, s); }
template <class T, class D>
Variable<T, D> pow_scalar(const Variable<T, D>& x, double p) { return unary(x, ops::Unary::pow_scalar, p); }

// The mask is data, not a graph input: it gets no gradient.
template <class T, class D>
Variable<T, D> masked_fill(const Variable<T, D>& x, const Tensor<uint8_t, D>& mask, double value) {
  return record(ops::masked_fill(x.value(), mask, value), "masked_fill", {x}, [mask](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::masked_fill_backward(dy, mask)};
  });
}

}  // namespace ctmllm::autograd
