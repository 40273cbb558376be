#pragma once
// Mixed-precision training: the model computes in a 16-bit type (bf16 or half) while the optimizer
// updates float master copies of its parameters, and a dynamic loss scale keeps half gradients from
// underflowing (DynamicLossScaler, train/loss_scaler.hpp).
//
// One step:
//   loss.backward(Tensor<Low>::full({1}, Low(scaler.scale())));    // scaled seed (1 for bf16)
//   const bool finite = master.load_grads(1 / scaler.scale());   // float grads, unscaled
//   if (scaler.update(!finite)) { clip_grad_norm(master.params(), 1); opt.step(); master.write_back(); }
//   model.parameters().zero_grad();  opt.zero_grad();
//
// bf16 has float's exponent range: it needs no loss scale (keep the scale at 1, or skip the scaler).
// In an all-half graph the seed itself is half: GradScaler's initial 2^16 is inf there, so the first
// step is skipped and the scale settles at 2^15 (torch's autocast keeps the loss in float instead).
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/optim.hpp"
#include "ctmllm/train/loss_scaler.hpp"

namespace ctmllm::train {

// Float copies of a low-precision model's trainable parameters, under the same names, for an
// optimizer (AdamW<float, D>, SGD<float>) to update. On any device: the conversions are ops::convert_
// (on the GPU, one finiteness flag read back per load_grads and per write_back).
template <class Low, class D = Cpu>
class MasterWeights {
 public:
  using LowVar = autograd::Variable<Low, D>;
  using Var = autograd::Variable<float, D>;

  explicit MasterWeights(const std::vector<LowVar>& model_params) : model_(model_params) {
    std::vector<Tensor<float, D>> values;
    std::vector<Tensor<Low, D>> sources;
    for (const LowVar& p : model_) {
      CTMLLM_CHECK(p.requires_grad() && p.is_leaf(), "MasterWeights: '", p.name(), "' is not a trainable parameter");
      values.push_back(Tensor<float, D>::empty(p.value().shape()));
      sources.push_back(p.value());
      master_.push_back(Var(values.back(), true, p.name()));
    }
    ops::convert_(values, sources);
  }

  const std::vector<Var>& params() const { return master_; }

  // Sets each master gradient to the model's gradient × unscale, in float (a model parameter without
  // a gradient leaves its master without one, so the optimizer skips it). Returns false when any
  // gradient holds an inf or NaN (then the step must be skipped).
  bool load_grads(double unscale = 1.0) {
    std::vector<Tensor<float, D>> grads;
    std::vector<Tensor<Low, D>> sources;
    for (size_t i = 0; i < model_.size(); ++i) {
      // The master is a leaf of no graph: its grad is set here, not accumulated by a backward pass.
      auto& dst = master_[i].state()->grad;
      const Tensor<Low, D>& g = model_[i].grad();
      dst = g.defined() ? Tensor<float, D>::empty(g.shape()) : Tensor<float, D>();
      if (!g.defined()) continue;
      grads.push_back(dst);
      sources.push_back(g);
    }
    return ops::convert_(grads, sources, unscale);
  }

  // Rounds every master value into its model parameter (in place: views of it see the update).
  void write_back() const {
    std::vector<Tensor<Low, D>> params;
    std::vector<Tensor<float, D>> sources;
    for (size_t i = 0; i < model_.size(); ++i) {
      params.push_back(model_[i].value());
      sources.push_back(master_[i].value());
    }
    ops::convert_(params, sources);
  }

 private:
  std::vector<LowVar> model_;
  std::vector<Var> master_;
};

}  // namespace ctmllm::train
