#pragma once
// Rotary position embedding in the rotate-half convention of Hugging Face Llama:
//   y = x·cos + rotate_half(x)·sin,  rotate_half(x) = cat(−x₂, x₁),
// over the first rotary_dim dims of each head (the rest pass through, as partial-rotary models do),
// with angle = position · inv_freq per frequency. x is [batch, heads, seq, head_dim]; positions are
// int64 [batch, seq] and arbitrary (left padding, a KV-cache offset). The result is contiguous.
#include <cmath>
#include <numbers>
#include <vector>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/rope.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/rope.cuh"
#endif

namespace ctmllm::ops {

enum class RopeScaling { none, linear, llama3 };

// The fields of transformers' rope_parameters that the supported rope types read.
struct RopeConfig {
  double theta = 10000.0;
  int64_t rotary_dim = 0;  // rotated dims per head: head_dim, or less for partial rotary; even
  RopeScaling scaling = RopeScaling::none;
  double factor = 1.0;  // linear and llama3
  double low_freq_factor = 1.0;  // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

// rotary_dim / 2 inverse frequencies, by transformers' rules (computed here in double; transformers
// uses float32): default 1 / theta^(2i / rotary_dim); linear divides them by factor; llama3
// (_compute_llama3_parameters) keeps wavelengths below original_max / high_freq_factor, divides those
// above original_max / low_freq_factor by factor and blends linearly in between.
inline std::vector<double> rope_inv_freq(const RopeConfig& c) {
  CTMLLM_CHECK(c.theta > 0 && std::isfinite(c.theta), "rope_inv_freq: theta must be positive, got ", c.theta);
  CTMLLM_CHECK(c.rotary_dim > 0 && c.rotary_dim % 2 == 0, "rope_inv_freq: rotary_dim must be positive and even, got ",
               c.rotary_dim);
  if (c.scaling != RopeScaling::none)
    CTMLLM_CHECK(c.factor > 0 && std::isfinite(c.factor), "rope_inv_freq: factor must be positive, got ", c.factor);
  if (c.scaling == RopeScaling::llama3) {
    CTMLLM_CHECK(c.low_freq_factor > 0 && c.high_freq_factor > c.low_freq_factor,
                 "rope_inv_freq: llama3 needs 0 < low_freq_factor < high_freq_factor, got ", c.low_freq_factor, " and ",
                 c.high_freq_factor);
    CTMLLM_CHECK(c.original_max_position_embeddings > 0,
                 "rope_inv_freq: llama3 needs original_max_position_embeddings > 0, got ",
                 c.original_max_position_embeddings);
  }
  std::vector<double> f(size_t(c.rotary_dim / 2));
  const double old_len = double(c.original_max_position_embeddings);
  const double low_wavelen = old_len / c.low_freq_factor, high_wavelen = old_len / c.high_freq_factor;
  for (size_t i = 0; i < f.size(); ++i) {
    f[i] = 1.0 / std::pow(c.theta, double(2 * i) / double(c.rotary_dim));
    if (c.scaling == RopeScaling::linear) {
      f[i] /= c.factor;
    } else if (c.scaling == RopeScaling::llama3) {
      const double wavelen = 2 * std::numbers::pi / f[i];
      if (wavelen > low_wavelen) {
        f[i] /= c.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_len / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
        f[i] = (1 - smooth) * f[i] / c.factor + smooth * f[i];
      }
    }
  }
  return f;
}

namespace detail {
template <class T, class D>
void check_rope(const char* op, const char* name, const Tensor<T, D>& x, const Tensor<int64_t, D>& positions,
                const RopeConfig& c) {
  check_defined(x, op, name);
  check_defined(positions, op, "positions");
  check_rank(x, 4, op, name);
  check_shape(positions, Shape{x.size(0), x.size(2)}, op, "positions");
  CTMLLM_CHECK(c.rotary_dim <= x.size(3), op, ": rotary_dim ", c.rotary_dim, " exceeds the head dim of ", name, " ",
               x.describe());
}
}  // namespace detail

template <class T, class D>
Tensor<T, D> rope(const Tensor<T, D>& x, const Tensor<int64_t, D>& positions, const RopeConfig& cfg) {
  CTMLLM_REQUIRE_KERNELS(D, "rope");
  detail::check_rope("rope", "x", x, positions, cfg);
  const std::vector<double> inv_freq = rope_inv_freq(cfg);
  Tensor<T, D> y = Tensor<T, D>::empty(x.shape());
  impl::rope_rotate(x.stride(3) == 1 ? x : x.contiguous(), positions, inv_freq, 1.0, y);
  return y;
}

// Gradient with respect to x, given dy [batch, heads, seq, head_dim]: dy rotated by −angle.
template <class T, class D>
Tensor<T, D> rope_backward(const Tensor<T, D>& dy, const Tensor<int64_t, D>& positions, const RopeConfig& cfg) {
  CTMLLM_REQUIRE_KERNELS(D, "rope_backward");
  detail::check_rope("rope_backward", "dy", dy, positions, cfg);
  const std::vector<double> inv_freq = rope_inv_freq(cfg);
  Tensor<T, D> dx = Tensor<T, D>::empty(dy.shape());
  impl::rope_rotate(dy.stride(3) == 1 ? dy : dy.contiguous(), positions, inv_freq, -1.0, dx);
  return dx;
}

// Where an inference step's S new keys and values go in one layer's cache [B, Hkv, L, Dh]: slots
// first, first + 1, …, or, when `index` is defined, the S slots that it holds ([S], int64, on the
// cache's device: a decode step replayed from a CUDA graph reads its slot there).
template <class D>
struct CacheSlots {
  int64_t first = 0;
  Tensor<int64_t, D> index;
};

// An inference step's attention inputs in one pass (on the GPU one launch instead of seven): returns
// rope(q) [B, Hq, S, Dh] and writes rope(k) into `keys` and v into `values` at the slots:
//   keys[:, :, slot(s)] = rope(k)[:, :, s],  values[:, :, slot(s)] = v[:, :, s].
// q [B, Hq, S, Dh], k and v [B, Hkv, S, Dh] (any strides), positions [B, S]; keys and values
// contiguous [B, Hkv, L, Dh], apart. Equal bit for bit to rope, rope, and the two writes. Not
// differentiable. Inputs overlapping the caches are read through a copy. Slots outside [0, L) are
// an Error; an index tensor on the GPU is checked as index_copy_ checks its rows (not under a
// capture or an IndicesCheckedByCaller scope, where such a slot is skipped).
template <class T, class D>
Tensor<T, D> rope_into_cache(const Tensor<T, D>& q, const Tensor<T, D>& k, const Tensor<T, D>& v,
                             const Tensor<int64_t, D>& positions, const RopeConfig& cfg, const Tensor<T, D>& keys,
                             const Tensor<T, D>& values, const CacheSlots<D>& slots) {
  CTMLLM_REQUIRE_KERNELS(D, "rope_into_cache");
  constexpr const char* op = "rope_into_cache";
  detail::check_rope(op, "q", q, positions, cfg);
  detail::check_rope(op, "k", k, positions, cfg);
  const int64_t B = q.size(0), Hkv = k.size(1), S = q.size(2), Dh = q.size(3);
  check_shape(k, Shape{B, Hkv, S, Dh}, op, "k");
  check_shape(v, k.shape(), op, "v");
  check_defined(keys, op, "keys");
  check_defined(values, op, "values");
  check_rank(keys, 4, op, "keys");
  const int64_t L = keys.size(2);
  check_shape(keys, Shape{B, Hkv, L, Dh}, op, "keys");
  check_shape(values, keys.shape(), op, "values");
  CTMLLM_CHECK(keys.is_contiguous() && values.is_contiguous(), op, ": keys ", keys.describe(), " and values ",
               values.describe(), " must be contiguous");
  CTMLLM_CHECK(!keys.memory_overlaps(values), op, ": keys and values share memory");
  if (slots.index.defined()) {
    check_shape(slots.index, Shape{S}, op, "slots.index");
  } else {
    CTMLLM_CHECK(slots.first >= 0 && slots.first + S <= L, op, ": slots [", slots.first, ", ", slots.first + S,
                 ") do not fit in the cache's ", L);
  }
  const std::vector<double> inv_freq = rope_inv_freq(cfg);
  // Unit inner stride, and no input sharing memory with the caches (it is then read as a copy).
  const auto readable = [&](const Tensor<T, D>& t) {
    return t.memory_overlaps(keys) || t.memory_overlaps(values) ? t.clone() : t.stride(3) == 1 ? t : t.contiguous();
  };
  Tensor<T, D> q_rotated = Tensor<T, D>::empty(q.shape());
  impl::rope_into_cache(readable(q), readable(k), readable(v), positions, inv_freq, q_rotated, keys, values,
                        slots.first, slots.index.defined() ? slots.index.contiguous() : slots.index);
  return q_rotated;
}

}  // namespace ctmllm::ops
