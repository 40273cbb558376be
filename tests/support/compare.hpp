#pragma once
// Numerical comparison: ‖a − b‖ / ‖b‖ over all elements, computed in double. NaN or Inf anywhere
// in `a` gives +Inf, so a poisoned or diverged output can never pass a tolerance check.
#include <cmath>
#include <limits>

#include "ctmllm/core/tensor.hpp"

namespace ctmllm::testing {

template <class A, class B>
double rel_error(const Tensor<A, Cpu>& a, const Tensor<B, Cpu>& b) {
  CTMLLM_CHECK(a.shape() == b.shape(), "rel_error: ", a.describe(), " vs ", b.describe());
  const auto ac = a.template to<double>(), bc = b.template to<double>();
  double num = 0, den = 0;
  for (int64_t i = 0; i < ac.numel(); ++i) {
    const double x = ac.data()[i], y = bc.data()[i];
    if (!std::isfinite(x)) return std::numeric_limits<double>::infinity();
    num += (x - y) * (x - y);
    den += y * y;
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

template <class A, class B>
double max_abs_diff(const Tensor<A, Cpu>& a, const Tensor<B, Cpu>& b) {
  CTMLLM_CHECK(a.shape() == b.shape(), "max_abs_diff: ", a.describe(), " vs ", b.describe());
  const auto ac = a.template to<double>(), bc = b.template to<double>();
  double m = 0;
  for (int64_t i = 0; i < ac.numel(); ++i) {
    const double d = std::abs(ac.data()[i] - bc.data()[i]);
    if (!(d <= m)) m = d;  // NaN propagates
  }
  return m;
}

}  // namespace ctmllm::testing
