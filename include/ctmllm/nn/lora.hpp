#pragma once
// nn::LoraAdapter: a LoRA or DoRA adapter on a linear layer y = x·Wᵀ + b, applied inside the layer's
// own call, with peft's semantics so that adapters move between ctmllm and peft unchanged.
//
//   LoRA:  y = x·Wᵀ + b + s · drop(x)·Aᵀ·Bᵀ
//   DoRA:  g = m / ‖W + s·B·A‖, one norm per output row, detached (peft: no gradient flows into it)
//          y = g ⊙ (x·Wᵀ + s · x·Aᵀ·Bᵀ) + b                                 dropout inactive
//          y = x·Wᵀ + b + (g − 1) ⊙ drop(x)·Wᵀ + g ⊙ s · drop(x)·Aᵀ·Bᵀ        dropout active (peft's form)
// with A [r, in], B [out, r], m [out] and s = alpha / r (alpha / √r with rsLoRA). The first DoRA form
// is the second with drop(x) = x, folded so that the base matmul runs once.
//
// Merging folds the adapter into W as peft's merge does: W + s·B·A, or for DoRA
// g ⊙ (W + s·B·A) row by row, keeping ‖W + s·B·A‖ so that unmerging can invert it.
#include <memory>
#include <utility>

#include "ctmllm/autograd/dropout.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/matmul.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/ops/elementwise.hpp"
#include "ctmllm/ops/matmul.hpp"
#include "ctmllm/ops/reduce.hpp"

namespace ctmllm::nn {

template <class T, class D = Cpu>
struct LoraAdapter {
  using Var = autograd::Variable<T, D>;

  Var A;          // [r, in]
  Var B;          // [out, r]
  Var magnitude;  // [out]: DoRA's m; undefined for plain LoRA
  double scaling = 1;
  double dropout = 0;        // probability on the adapter's input
  std::shared_ptr<Rng> rng;  // the dropout stream; one per model, so every call draws fresh counters
  bool training = true;      // dropout runs only while training and recording a graph
  bool merged = false;       // folded into the base weight: the layer runs W alone
  Tensor<T, D> merged_norm;  // DoRA: ‖W + s·B·A‖ of each row at merge time, for unmerge

  bool dora() const { return magnitude.defined(); }
  int64_t rank() const { return A.size(0); }

  // s·B·A [out, in]: what the adapter adds to W.
  Tensor<T, D> delta() const { return ops::mul_scalar(ops::matmul(B.value(), A.value()), scaling); }

  // ‖W + s·B·A‖ per output row [out] for W [out, in], as peft's DoRA get_weight_norm.
  Tensor<T, D> weight_norm(const Tensor<T, D>& w) const {
    return ops::sqrt(ops::sum(ops::square(ops::add(w, delta())), {1}));
  }

  // The layer's output for x [..., in]. `base(v, with_bias)` computes v·Wᵀ (+ b); `weight()` returns
  // W [out, in] in T (only DoRA reads it, for the norm); `bias` is the layer's bias or undefined.
  template <class Base, class Weight>
  Var operator()(const Var& x, const Base& base, const Weight& weight, const Var& bias) const {
    check(x);
    const bool drop = dropout > 0 && training && autograd::grad_mode();
    if (drop) CTMLLM_CHECK(rng != nullptr, "LoraAdapter: dropout ", dropout, " needs a random stream (rng)");
    const Var xd = drop ? autograd::dropout(x, dropout, *rng, true) : x;
    return apply(x, xd, base, weight, bias);
  }

  // The same with the adapter's input drop(x) given as `xd`: peft's DoRA form with two base matmuls
  // unless xd is x itself. Exposed so the dropout form can be checked against the folded one.
  template <class Base, class Weight>
  Var apply(const Var& x, const Var& xd, const Base& base, const Weight& weight, const Var& bias) const {
    const Var lora = autograd::linear(autograd::mul_scalar(autograd::linear(xd, A), scaling), B);
    if (!dora()) return autograd::add(base(x, true), lora);
    // g = m / ‖W + s·B·A‖ with the norm a constant of the graph.
    const Var g = autograd::div(magnitude, Var(weight_norm(weight())));
    if (xd.state() == x.state()) {
      const Var y = autograd::mul(g, autograd::add(base(x, false), lora));
      return bias.defined() ? autograd::add(y, bias) : y;
    }
    return autograd::add(base(x, true), autograd::add(autograd::mul(autograd::add_scalar(g, -1.0), base(xd, false)),
                                                      autograd::mul(g, lora)));
  }

  // W [out, in] with the adapter folded in; marks the adapter merged.
  Tensor<T, D> merge(const Tensor<T, D>& w) {
    CTMLLM_CHECK(!merged, "LoraAdapter::merge: the adapter is already merged");
    Tensor<T, D> folded = ops::add(w, delta());
    if (dora()) {
      merged_norm = weight_norm(w);
      folded = ops::mul(folded, column(ops::div(magnitude.value(), merged_norm)));
    }
    merged = true;
    return folded;
  }

  // The base W [out, in] back from the merged one; marks the adapter unmerged.
  Tensor<T, D> unmerge(const Tensor<T, D>& w) {
    CTMLLM_CHECK(merged, "LoraAdapter::unmerge: the adapter is not merged");
    Tensor<T, D> base = w;
    if (dora()) base = ops::div(base, column(ops::div(magnitude.value(), merged_norm)));
    merged = false;
    merged_norm = Tensor<T, D>();
    return ops::sub(base, delta());
  }

 private:
  void check(const Var& x) const {
    CTMLLM_CHECK(A.defined() && B.defined() && A.rank() == 2 && B.rank() == 2 && B.size(1) == A.size(0),
                 "LoraAdapter: lora_A ", A.defined() ? A.value().describe() : std::string("undefined"), " and lora_B ",
                 B.defined() ? B.value().describe() : std::string("undefined"), " must be [r, in] and [out, r]");
    CTMLLM_CHECK(x.rank() >= 1 && x.size(-1) == A.size(1), "LoraAdapter: x ", x.value().describe(),
                 " does not match lora_A ", A.value().describe());
    CTMLLM_CHECK(!dora() || magnitude.shape() == Shape{B.size(0)}, "LoraAdapter: lora_magnitude_vector ",
                 magnitude.value().describe(), " must be [", B.size(0), "]");
  }
  // [out] -> [out, 1], to scale the rows of a matrix.
  static Tensor<T, D> column(const Tensor<T, D>& v) { return v.reshape({v.size(0), 1}); }
};

}  // namespace ctmllm::nn
