#pragma once
// Per-token linear maps: LinearStack (the nn.Sequential of Linears, with GELUs between them or not,
// that every projector here ends in) and LinearProjector, the plain per-token Linear (LLaVA's and
// M3D's "linear" mm_projector: parameters "weight" [H, E] and "bias" [H]; all N tokens kept).
#include <string>
#include <vector>

#include "ctmllm/autograd/activation.hpp"
#include "ctmllm/nn/linear.hpp"
#include "ctmllm/projector/config.hpp"

namespace ctmllm::projector {

// Linear(in -> out), then for each further layer [GELU,] Linear(out -> out). Named as nn.Sequential
// names its children: with GELUs "<name>.0", "<name>.2", ...; without "<name>.0", "<name>.1", ...
template <class T, class D>
struct LinearStack {
  std::vector<nn::Linear<T, D>> layers;
  bool gelu = true;

  LinearStack(autograd::Parameters<T, D>& p, const std::string& name, int64_t in, int64_t out, int64_t count, bool gelu_)
      : gelu(gelu_) {
    for (int64_t i = 0; i < count; ++i)
      layers.emplace_back(p, name + "." + std::to_string(gelu ? 2 * i : i), i == 0 ? in : out, out);
  }
  // x [..., in] -> [..., out]
  autograd::Variable<T, D> operator()(autograd::Variable<T, D> x) const {
    for (size_t i = 0; i < layers.size(); ++i) x = layers[i](i > 0 && gelu ? autograd::gelu(x) : x);
    return x;
  }
  void init(Rng& rng) const {
    for (const auto& l : layers) l.init(rng);
  }
};

template <class T, class D = Cpu>
class LinearProjector {
 public:
  using Var = autograd::Variable<T, D>;

  explicit LinearProjector(const ProjectorConfig& c) : config_(c.validated("LinearProjector")) {
    // Bare names: the projector module is itself the nn.Linear.
    fc_.weight = params_.add("weight", Tensor<T, D>::zeros({c.out_dim, c.in_dim}));
    fc_.bias = params_.add("bias", Tensor<T, D>::zeros({c.out_dim}));
  }
  const ProjectorConfig& config() const { return config_; }
  autograd::Parameters<T, D>& parameters() { return params_; }
  const autograd::Parameters<T, D>& parameters() const { return params_; }
  int64_t num_tokens() const { return config_.num_tokens(); }
  void init(Rng& rng) const { fc_.init(rng); }

  // tokens [B, N, E] -> [B, N, H]
  Var operator()(const Var& tokens) const {
    check_tokens(tokens, config_.tokens_in(), config_.in_dim, "LinearProjector", "tokens");
    return fc_(tokens);
  }

 private:
  ProjectorConfig config_;
  autograd::Parameters<T, D> params_;
  nn::Linear<T, D> fc_;
};

}  // namespace ctmllm::projector
