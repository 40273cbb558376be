#pragma once
// The elementwise work of the optimizers, per device: the AdamW update of one parameter in place
// (float moments), Σ x² over a list of gradients (the global norm, in double), and an in-place
// scale (clipping). train/adamw.hpp and train/clip.hpp are written over these.
#include <vector>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/optim.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/optim.cuh"
#endif

namespace ctmllm::ops {

// w (the parameter, updated in place), m and v (its moments, updated in place) contiguous; g of w's
// shape, any strides.
template <class T, class D>
void adamw_update(const Tensor<T, D>& w, const Tensor<T, D>& g, const Tensor<float, D>& m, const Tensor<float, D>& v,
                  const AdamWCoefficients& c) {
  CTMLLM_REQUIRE_KERNELS(D, "adamw_update");
  check_shape(g, w.shape(), "adamw_update", "grad");
  check_shape(m, w.shape(), "adamw_update", "exp_avg");
  check_shape(v, w.shape(), "adamw_update", "exp_avg_sq");
  CTMLLM_CHECK(w.is_contiguous() && m.is_contiguous() && v.is_contiguous(), "adamw_update: the parameter ", w.describe(),
               " and its moments are updated in place and must be contiguous");
  if (w.numel() == 0) return;
  impl::adamw_update(w, g.contiguous(), m, v, c);
}

// Σ x² over every element of every defined tensor, in double (the square of the global norm).
template <class T, class D>
double sum_of_squares(const std::vector<Tensor<T, D>>& ts) {
  CTMLLM_REQUIRE_KERNELS(D, "sum_of_squares");
  std::vector<Tensor<T, D>> parts;
  for (const auto& t : ts)
    if (t.defined() && t.numel() > 0) parts.push_back(t.contiguous());
  return parts.empty() ? 0.0 : impl::sum_of_squares(parts);
}

// t ← t · factor in place; t contiguous.
template <class T, class D>
void scale_(const Tensor<T, D>& t, double factor) {
  CTMLLM_REQUIRE_KERNELS(D, "scale_");
  CTMLLM_CHECK(t.is_contiguous(), "scale_: ", t.describe(), " is scaled in place and must be contiguous");
  if (t.numel() > 0) impl::scale_(t, factor);
}

}  // namespace ctmllm::ops
