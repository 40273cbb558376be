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
#include <cmath>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/train/loss_scaler.hpp"

namespace ctmllm::train {

// Float copies of a low-precision model's trainable parameters, under the same names, for an
// optimizer (AdamW<float>, SGD<float>) to update.
template <class Low>
class MasterWeights {
 public:
  using LowVar = autograd::Variable<Low, Cpu>;
  using Var = autograd::Variable<float, Cpu>;

  explicit MasterWeights(const std::vector<LowVar>& model_params) : model_(model_params) {
    for (const LowVar& p : model_) {
      CTMLLM_CHECK(p.requires_grad() && p.is_leaf(), "MasterWeights: '", p.name(), "' is not a trainable parameter");
      master_.push_back(Var(p.value().template to<float>(), true, p.name()));
    }
  }

  const std::vector<Var>& params() const { return master_; }

  // Sets each master gradient to the model's gradient × unscale, in float (a model parameter without
  // a gradient leaves its master without one, so the optimizer skips it). Returns false when any
  // gradient holds an inf or NaN (then the step must be skipped).
  bool load_grads(double unscale = 1.0) {
    bool finite = true;
    for (size_t i = 0; i < model_.size(); ++i) {
      const Tensor<Low, Cpu>& g = model_[i].grad();
      // The master is a leaf of no graph: its grad is set here, not accumulated by a backward pass.
      auto& dst = master_[i].state()->grad;
      if (!g.defined()) {
        dst = Tensor<float, Cpu>();
        continue;
      }
      const Tensor<Low, Cpu> gc = g.contiguous();
      Tensor<float, Cpu> out = Tensor<float, Cpu>::empty(gc.shape());
      const Low* pg = gc.data();
      float* po = out.data();
      for (int64_t j = 0; j < gc.numel(); ++j) {
        po[j] = float(double(float(pg[j])) * unscale);
        finite = finite && std::isfinite(po[j]);
      }
      dst = out;
    }
    return finite;
  }

  // Rounds every master value into its model parameter (in place: views of it see the update).
  void write_back() const {
    for (size_t i = 0; i < model_.size(); ++i) model_[i].value().copy_from(master_[i].value());
  }

 private:
  std::vector<LowVar> model_;
  std::vector<Var> master_;
};

}  // namespace ctmllm::train
