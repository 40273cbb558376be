#pragma once
// CPU kernel for rotary position embedding (rotate-half convention) and its transpose.
#include <cmath>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops::impl {

// With h = inv_freq.size() and angle a_i = position · inv_freq[i], for i < h:
//   y_i = x_i cos a_i − x_{i+h} sin(sign·a_i),  y_{i+h} = x_{i+h} cos a_i + x_i sin(sign·a_i);
// dims from 2h on pass through. sign = −1 rotates back (the transpose, i.e. the backward).
// x [B, H, S, Dh] with unit inner stride (any outer strides), positions [B, S] (any strides),
// y contiguous [B, H, S, Dh].
template <class T>
void rope_rotate(const Tensor<T, Cpu>& x, const Tensor<int64_t, Cpu>& positions, const std::vector<double>& inv_freq,
                 double sign, const Tensor<T, Cpu>& y) {
  using A = acc_t<T>;
  const int64_t B = x.size(0), H = x.size(1), S = x.size(2), Dh = x.size(3);
  const int64_t half = int64_t(inv_freq.size());
  // cos and sin per (batch, position). Angles are formed in double; transformers forms them in
  // float32, which differs by far less than the 1e-5 the fixtures are held to at these positions.
  std::vector<A> table(size_t(B * S * 2 * half));
  parallel_for(0, B * S, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const double p = double(positions(r / S, r % S));
      A* c = table.data() + r * 2 * half;
      for (int64_t i = 0; i < half; ++i) {
        const double a = p * inv_freq[size_t(i)];
        c[i] = A(std::cos(a));
        c[half + i] = A(sign * std::sin(a));
      }
    }
  });
  const T* in = x.data();
  T* out = y.data();
  const int64_t sb = x.stride(0), sh = x.stride(1), ss = x.stride(2);
  parallel_for(0, B * H * S, std::max<int64_t>(1, 8192 / std::max<int64_t>(Dh, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / (H * S), h = r / S % H, s = r % S;
      const T* xi = in + b * sb + h * sh + s * ss;
      T* yi = out + r * Dh;
      const A* c = table.data() + (b * S + s) * 2 * half;
      const A* sn = c + half;
      for (int64_t i = 0; i < half; ++i) {
        const A x1 = A(xi[i]), x2 = A(xi[half + i]);
        yi[i] = cast<T>(x1 * c[i] - x2 * sn[i]);
        yi[half + i] = cast<T>(x2 * c[i] + x1 * sn[i]);
      }
      for (int64_t i = 2 * half; i < Dh; ++i) yi[i] = xi[i];
    }
  });
}

}  // namespace ctmllm::ops::impl
