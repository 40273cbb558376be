#pragma once
// exp over a contiguous row, the inner loop of softmax and cross-entropy. glibc's expf is a scalar
// call (about 3.5 ns an element in a 2049-wide softmax row here); Eigen's packet exp runs 8 or 16
// lanes at a time. Float and double rows take the packets directly; other element types (bf16,
// half) are widened to their accumulation type a chunk at a time and take the same packets, so every
// type follows the same rules.
//
// One difference from std::exp: results below the smallest normal number are 0 (std::exp gives
// subnormals down to ~1e-45; Eigen's packet exp would give ~3e-39 for anything below its clamp,
// exp(-inf) included). So exp(-inf) is 0, as a masked score must be; NaN stays NaN.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <Eigen/Core>

#include "ctmllm/core/dtype.hpp"

namespace ctmllm::ops::impl {

namespace detail {
// y[k] = exp(x[k] - shift) * scale for float or double rows (y may be x); returns Σ exp(x[k] - shift).
template <class A>
A packet_exp_shifted(const A* x, A* y, int64_t n, A shift, A scale, bool store) {
  namespace ei = Eigen::internal;
  using P = typename ei::packet_traits<A>::type;
  constexpr int64_t W = ei::packet_traits<A>::size;
  const A lowest = std::log(std::numeric_limits<A>::min());  // below it exp is subnormal: 0 here
  const P p_shift = ei::pset1<P>(shift), p_scale = ei::pset1<P>(scale), p_lowest = ei::pset1<P>(lowest);
  P p_sum = ei::pset1<P>(A(0));
  int64_t k = 0;
  for (; k + W <= n; k += W) {
    const P v = ei::psub(ei::ploadu<P>(x + k), p_shift);
    const P e = ei::pand(ei::pexp(v), ei::pcmp_lt_or_nan(p_lowest, v));  // 0 at or below `lowest`
    p_sum = ei::padd(p_sum, e);
    if (store) ei::pstoreu(y + k, ei::pmul(e, p_scale));
  }
  A s = ei::predux(p_sum);
  for (; k < n; ++k) {
    const A v = x[k] - shift;
    const A e = v > lowest || std::isnan(v) ? std::exp(v) : A(0);
    s += e;
    if (store) y[k] = e * scale;
  }
  return s;
}

// The same over a row of T that is not A: chunks widened to A on the stack, results rounded to T.
template <class T, class A>
A widened_exp_shifted(const T* x, T* y, int64_t n, A shift, A scale, bool store) {
  constexpr int64_t kChunk = 256;
  A buf[kChunk];
  A s = 0;
  for (int64_t k0 = 0; k0 < n; k0 += kChunk) {
    const int64_t m = std::min(kChunk, n - k0);
    for (int64_t i = 0; i < m; ++i) buf[i] = A(x[k0 + i]);
    s += packet_exp_shifted<A>(buf, buf, m, shift, scale, store);
    if (store)
      for (int64_t i = 0; i < m; ++i) y[k0 + i] = cast<T>(buf[i]);
  }
  return s;
}
}  // namespace detail

// Σ exp(x[k] - shift), in A.
template <class T, class A = acc_t<T>>
A sum_exp(const T* x, int64_t n, A shift) {
  if constexpr (std::is_same_v<T, A>) return detail::packet_exp_shifted<A>(x, nullptr, n, shift, A(1), false);
  else return detail::widened_exp_shifted<T, A>(x, nullptr, n, shift, A(1), false);
}

// y[k] = exp(x[k] - shift) * scale; returns Σ exp(x[k] - shift) (before the scale and the rounding
// to T). y may be x.
template <class T, class A = acc_t<T>>
A exp_shifted(const T* x, T* y, int64_t n, A shift, A scale = A(1)) {
  if constexpr (std::is_same_v<T, A>) return detail::packet_exp_shifted<A>(x, y, n, shift, scale, true);
  else return detail::widened_exp_shifted<T, A>(x, y, n, shift, scale, true);
}

}  // namespace ctmllm::ops::impl
