#pragma once
// projector::CustomProjector: the interface of a user-defined projector, which takes the place of
// the config's built-in one in an mllm::Model (Model::set_projector, docs/MLLM.md). A projector
// ablation writes one class and attaches it:
//
//   struct PoolProjector : projector::CustomProjector<float> { ... };
//   model.set_projector(std::make_shared<PoolProjector>(...));
//
// The model lists its parameters under "projector.<name>", trains them like its own, saves them to
// projector.safetensors and records name() and num_tokens() in config.json; loading such a folder
// takes the module again (Model::from_pretrained(folder, projector)).
#include <string>
#include <vector>

#include "ctmllm/autograd/parameters.hpp"

namespace ctmllm::projector {

template <class T, class D = Cpu>
class CustomProjector {
 public:
  using Var = autograd::Variable<T, D>;

  virtual ~CustomProjector() = default;

  // Recorded in config.json: a folder saved with this projector loads only with one of this name.
  virtual std::string name() const = 0;
  // The visual tokens M it makes from each view.
  virtual int64_t num_tokens() const = 0;
  // The ViT blocks whose outputs it reads besides the final tokens (negative counts from the end).
  virtual std::vector<int> feature_layers() const { return {}; }
  // Its weights, under the names projector.safetensors stores them with.
  virtual const autograd::Parameters<T, D>& parameters() const = 0;
  // tokens [B, N, E]: the ViT's final tokens; taps: the outputs of feature_layers(), in that order
  // -> [B, num_tokens(), H], H the LLM's hidden size (the model checks the shape).
  virtual Var operator()(const Var& tokens, const std::vector<Var>& taps) const = 0;
};

}  // namespace ctmllm::projector
