#pragma once
// Finite-difference check of an op's backward, in float64.
//
// f maps the inputs to one output y. With a fixed random projection r, L(x) = Σ y(x)·r; the
// analytic gradient comes from y.backward(r) and the numeric one from central differences
// (L(x+h) − L(x−h)) / 2h on every element of every input that requires a gradient. The result is
// the largest ‖numeric − analytic‖ / ‖numeric‖ over those inputs.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/core/rng.hpp"

namespace ctmllm::testing {

template <class F>
double gradcheck(F&& f, const std::vector<autograd::Variable<double>>& inputs, double h = 1e-6, uint64_t seed = 7) {
  using V = autograd::Variable<double>;
  const V y = f(inputs);
  const Tensor<double, Cpu> r = Rng(seed).normal<double>(y.shape());
  auto loss = [&]() {
    autograd::NoGradGuard no_grad;
    const Tensor<double, Cpu> out = f(inputs).value().contiguous();
    double s = 0;
    for (int64_t i = 0; i < out.numel(); ++i) s += out.data()[i] * r.data()[i];
    return s;
  };
  for (const V& v : inputs)
    if (v.defined() && v.requires_grad()) const_cast<V&>(v).zero_grad();
  y.backward(r);
  double worst = 0;
  for (const V& v : inputs) {
    if (!v.defined() || !v.requires_grad()) continue;
    const Tensor<double, Cpu> x = v.value();  // contiguous leaves, perturbed in place
    CTMLLM_CHECK(x.is_contiguous(), "gradcheck: inputs must be contiguous");
    CTMLLM_CHECK(v.grad().defined(), "gradcheck: no gradient reached input '", v.name(), "' ", x.describe());
    const Tensor<double, Cpu> g = v.grad().contiguous();
    double num2 = 0, diff2 = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double keep = x.data()[i];
      x.data()[i] = keep + h;
      const double lp = loss();
      x.data()[i] = keep - h;
      const double lm = loss();
      x.data()[i] = keep;
      const double numeric = (lp - lm) / (2 * h);
      num2 += numeric * numeric;
      diff2 += (numeric - g.data()[i]) * (numeric - g.data()[i]);
    }
    const double err = std::sqrt(diff2) / std::max(std::sqrt(num2), 1e-12);
    if (!std::isfinite(err)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, err);
  }
  return worst;
}

}  // namespace ctmllm::testing
