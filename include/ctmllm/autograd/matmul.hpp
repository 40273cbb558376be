#pragma once
// Autograd for matmul and linear: each saves its inputs (shallow handles) and computes only the
// gradients its inputs need; linear keeps its input only when the weight needs a gradient (a frozen
// layer's input is then freed as soon as the forward no longer uses it).
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/matmul.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> matmul(const Variable<T, D>& a, const Variable<T, D>& b, bool transpose_a = false, bool transpose_b = false) {
  Tensor<T, D> av = a.value(), bv = b.value();
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record(ops::matmul(av, bv, transpose_a, transpose_b), "matmul", {a, b},
                [av, bv, transpose_a, transpose_b, need_a, need_b](const Tensor<T, D>& dy) {
                  auto g = ops::matmul_backward(dy, av, bv, transpose_a, transpose_b, need_a, need_b);
                  return std::vector<Tensor<T, D>>{g.da, g.db};
                });
}

// y = x·wᵀ + b; pass an undefined Variable as b for no bias.
template <class T, class D>
Variable<T, D> linear(const Variable<T, D>& x, const Variable<T, D>& w, const Variable<T, D>& b = Variable<T, D>()) {
  Tensor<T, D> xv = x.value(), wv = w.value();
  const Tensor<T, D> bv = b.defined() ? b.value() : Tensor<T, D>();
  const bool need_x = x.requires_grad(), need_w = w.requires_grad(), need_b = b.requires_grad();
  const Tensor<T, D> saved_x = need_w ? xv : Tensor<T, D>();
  return record(ops::linear(xv, wv, bv), "linear", {x, w, b}, [saved_x, wv, need_x, need_w, need_b](const Tensor<T, D>& dy) {
    auto g = ops::linear_backward(dy, saved_x, wv, need_x, need_w, need_b);
    return std::vector<Tensor<T, D>>{g.dx, g.dw, g.db};
  });
}

}  // namespace ctmllm::autograd
