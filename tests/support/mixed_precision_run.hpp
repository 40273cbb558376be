#pragma once
// The mixed-precision loop the training tests run on either device: a Low model (bf16 or half) with
// float master weights, AdamW on the masters, clipping at 1 and a dynamic loss scale, on the tiny
// Llama training fixture (train/llama_adamw).
#include <string>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/clip.hpp"
#include "ctmllm/train/mixed_precision.hpp"

namespace ctmllm::testing {

inline const std::string kMixedBase = "train/llama_adamw/base";
inline const train::AdamWOptions kMixedAdam{.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};

// Losses of `steps` mixed-precision steps; stepped (when given) records which steps were taken.
template <class Low, class D>
std::vector<double> train_mixed(llm::Decoder<Low, D>& model, train::MasterWeights<Low, D>& master,
                                train::DynamicLossScaler& scaler, const Tensor<int64_t, D>& ids,
                                const Tensor<int64_t, D>& labels, int steps, std::vector<bool>* stepped = nullptr) {
  train::AdamW<float, D> opt(master.params(), kMixedAdam);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    model.parameters().zero_grad();
    const auto loss = llm::causal_lm_loss(model.forward({.input_ids = ids}).logits, labels);
    loss.backward(Tensor<Low, D>::full({1}, cast<Low>(scaler.scale())));
    losses.push_back(double(float(loss.value().item())));
    const bool finite = master.load_grads(1.0 / scaler.scale());
    const bool step = scaler.update(!finite);
    if (stepped) stepped->push_back(step);
    if (!step) continue;
    train::clip_grad_norm(master.params(), 1.0);
    opt.step();
    master.write_back();
  }
  return losses;
}

}  // namespace ctmllm::testing
