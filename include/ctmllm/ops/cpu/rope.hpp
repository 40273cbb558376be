#pragma once
// CPU kernels for rotary position embedding (rotate-half convention), its transpose, and an
// inference step's rope-and-cache-write (rope_into_cache).
#include <cmath>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cpu/shape_ops.hpp"

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

// Every cache slot must lie in [0, L); the first that does not is an Error naming it and its position.
inline void check_cache_slots(const Tensor<int64_t, Cpu>& index, int64_t L) {
  const int64_t* p = index.data();
  for (int64_t s = 0; s < index.numel(); ++s)
    CTMLLM_CHECK(p[s] >= 0 && p[s] < L, "rope_into_cache: slot ", p[s], " for token ", s,
                 " is outside the cache's [0, ", L, ")");
}

// q_out = rope(q); keys[:, :, slot(s)] = rope(k)[:, :, s] and values[:, :, slot(s)] = v[:, :, s] with
// slot(s) = index[s] when index is defined, else first + s. q, k, v with unit inner stride; q_out,
// keys, values and index contiguous. The CPU runs it as the ops it stands for.
template <class T>
void rope_into_cache(const Tensor<T, Cpu>& q, const Tensor<T, Cpu>& k, const Tensor<T, Cpu>& v,
                     const Tensor<int64_t, Cpu>& positions, const std::vector<double>& inv_freq,
                     const Tensor<T, Cpu>& q_out, const Tensor<T, Cpu>& keys, const Tensor<T, Cpu>& values,
                     int64_t first, const Tensor<int64_t, Cpu>& index) {
  if (index.defined()) check_cache_slots(index, keys.size(2));
  rope_rotate(q, positions, inv_freq, 1.0, q_out);
  const Tensor<T, Cpu> k_rotated = Tensor<T, Cpu>::empty(k.shape());
  rope_rotate(k, positions, inv_freq, 1.0, k_rotated);
  if (index.defined()) {
    index_copy(keys, 2, index, k_rotated);
    index_copy(values, 2, index, v.contiguous());
  } else {
    const int64_t S = k.size(2);
    keys.slice(2, first, first + S).copy_from(k_rotated);
    values.slice(2, first, first + S).copy_from(v);
  }
}

}  // namespace ctmllm::ops::impl
