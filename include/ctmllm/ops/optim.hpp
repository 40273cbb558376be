#pragma once
// The elementwise work of the optimizers, per device: the AdamW update of a list of parameters in
// place (float moments), Σ x² over a list of gradients (the global norm, in double), an in-place scale
// (clipping), and scaled conversions between element types (mixed precision's float master weights
// and gradients). train/adamw.hpp, train/clip.hpp and train/mixed_precision.hpp are written over these.
#include <vector>

#include "ctmllm/ops/backend.hpp"
#include "ctmllm/ops/cpu/optim.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/optim.cuh"
#endif

namespace ctmllm::ops {

// The AdamW update of every parameter of a list: w[i] (the parameter), m[i] and v[i] (its float
// moments) updated in place and contiguous, g[i] of w[i]'s shape (any strides), c[i] the scalars of
// its step. On the GPU a few launches update the whole list (a model's parameters are hundreds of
// tensors, many of them small: one launch each cost more than their update).
template <class T, class D>
void adamw_update(const std::vector<Tensor<T, D>>& w, const std::vector<Tensor<T, D>>& g,
                  const std::vector<Tensor<float, D>>& m, const std::vector<Tensor<float, D>>& v,
                  const std::vector<AdamWCoefficients>& c) {
  CTMLLM_REQUIRE_KERNELS(D, "adamw_update");
  CTMLLM_CHECK(g.size() == w.size() && m.size() == w.size() && v.size() == w.size() && c.size() == w.size(),
               "adamw_update: ", w.size(), " parameters with ", g.size(), " gradients, ", m.size(), " and ", v.size(),
               " moments and ", c.size(), " coefficient sets");
  std::vector<Tensor<T, D>> ws, gs;
  std::vector<Tensor<float, D>> ms, vs;
  std::vector<AdamWCoefficients> cs;
  for (size_t i = 0; i < w.size(); ++i) {
    check_defined(w[i], "adamw_update", "a parameter");
    check_defined(g[i], "adamw_update", "a gradient");
    check_shape(g[i], w[i].shape(), "adamw_update", "grad");
    check_shape(m[i], w[i].shape(), "adamw_update", "exp_avg");
    check_shape(v[i], w[i].shape(), "adamw_update", "exp_avg_sq");
    CTMLLM_CHECK(w[i].is_contiguous() && m[i].is_contiguous() && v[i].is_contiguous(), "adamw_update: the parameter ",
                 w[i].describe(), " and its moments are updated in place and must be contiguous");
    if (w[i].numel() == 0) continue;
    ws.push_back(w[i]);
    gs.push_back(g[i].contiguous());
    ms.push_back(m[i]);
    vs.push_back(v[i]);
    cs.push_back(c[i]);
  }
  if (!ws.empty()) impl::adamw_update(ws, gs, ms, vs, cs);
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

// dst[i] ← src[i] · factor converted to To, for every pair (computed in double from the value as a
// float, then rounded once); each dst contiguous and of its src's shape (any strides; a src
// overlapping its dst is read through a copy); an undefined src is an Error. Returns whether every value written is finite: on the GPU one flag is read back
// for the whole list, so the call waits for the stream once.
template <class To, class From, class D>
bool convert_(const std::vector<Tensor<To, D>>& dst, const std::vector<Tensor<From, D>>& src, double factor = 1.0) {
  CTMLLM_REQUIRE_KERNELS(D, "convert_");
  CTMLLM_CHECK(dst.size() == src.size(), "convert_: ", dst.size(), " destinations for ", src.size(), " sources");
  std::vector<Tensor<To, D>> outs;
  std::vector<Tensor<From, D>> ins;
  for (size_t i = 0; i < dst.size(); ++i) {
    check_defined(src[i], "convert_", "a source");
    check_defined(dst[i], "convert_", "a destination");
    check_shape(dst[i], src[i].shape(), "convert_", "a destination");
    CTMLLM_CHECK(dst[i].is_contiguous(), "convert_: the destination ", dst[i].describe(), " must be contiguous");
    if (dst[i].numel() == 0) continue;
    outs.push_back(dst[i]);
    ins.push_back(dst[i].memory_overlaps(src[i]) ? src[i].clone() : src[i].contiguous());
  }
  return outs.empty() || impl::convert_(outs, ins, factor);
}

}  // namespace ctmllm::ops
