#pragma once
// projector::Projector: the projector a config names (spp, mlp_mix, linear, token_packer), behind
// one interface for the MLLM assembly:
//   Projector p(ProjectorConfig::from_file("projector.json", vit.config().grid()));
//   auto feats = vit.forward(x, p.feature_layers());   // taps only when the projector reads them
//   auto visual = p(feats.tokens, feats.hidden);        // [B, p.num_tokens(), H]
// Parameter names are the module's own (e.g. "projector.0.weight"); load() adds the checkpoint's
// prefix (M3D-LaMed: "model.mm_projector.").
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "ctmllm/io/checkpoint.hpp"
#include "ctmllm/nn/load.hpp"
#include "ctmllm/projector/config.hpp"
#include "ctmllm/projector/linear.hpp"
#include "ctmllm/projector/mlp_mix.hpp"
#include "ctmllm/projector/spp.hpp"
#include "ctmllm/projector/token_packer.hpp"

namespace ctmllm::projector {

template <class T, class D = Cpu>
class Projector {
 public:
  using Var = autograd::Variable<T, D>;

  explicit Projector(const ProjectorConfig& c) : impl_(make(c)) {}

  const ProjectorConfig& config() const {
    return std::visit([](const auto& p) -> const ProjectorConfig& { return p.config(); }, impl_);
  }
  autograd::Parameters<T, D>& parameters() {
    return std::visit([](auto& p) -> autograd::Parameters<T, D>& { return p.parameters(); }, impl_);
  }
  const autograd::Parameters<T, D>& parameters() const {
    return std::visit([](const auto& p) -> const autograd::Parameters<T, D>& { return p.parameters(); }, impl_);
  }
  int64_t num_tokens() const {
    return std::visit([](const auto& p) { return p.num_tokens(); }, impl_);
  }
  // The ViT blocks whose outputs the projector reads besides the final tokens (token_packer only).
  std::vector<int> feature_layers() const {
    return config().type == ProjectorType::token_packer ? config().feature_layers : std::vector<int>{};
  }
  void init(Rng& rng) const {
    std::visit([&rng](const auto& p) { p.init(rng); }, impl_);
  }

  // tokens [B, N, E]; taps: the outputs of feature_layers(), in that order -> [B, num_tokens(), H]
  Var operator()(const Var& tokens, const std::vector<Var>& taps = {}) const {
    return std::visit(
        [&](const auto& p) -> Var {
          if constexpr (std::is_same_v<std::decay_t<decltype(p)>, TokenPacker3D<T, D>>) {
            return p(tokens, taps);
          } else {
            CTMLLM_CHECK(taps.empty(), "Projector: the ", projector_type_name(p.config().type),
                         " projector reads no hidden-state taps, got ", taps.size());
            return p(tokens);
          }
        },
        impl_);
  }

  // Every parameter from `source` under `prefix` + name; a missing one is an Error listing it.
  template <class Source>
  nn::LoadReport load(const Source& source, const std::string& prefix = "") {
    return nn::load_parameters(parameters(), source, [&prefix](const std::string& n) { return prefix + n; });
  }
  // A safetensors file, a torch.save state dict (.bin) or a Hugging Face folder.
  nn::LoadReport load_file(const std::string& path, const std::string& prefix = "") {
    return load(io::CheckpointDir(path), prefix);
  }

 private:
  using Impl = std::variant<SpatialPoolingProjector<T, D>, TokenMixProjector<T, D>, LinearProjector<T, D>,
                            TokenPacker3D<T, D>>;
  static Impl make(const ProjectorConfig& c) {
    switch (c.type) {
      case ProjectorType::spp: return SpatialPoolingProjector<T, D>(c);
      case ProjectorType::mlp_mix: return TokenMixProjector<T, D>(c);
      case ProjectorType::linear: return LinearProjector<T, D>(c);
      case ProjectorType::token_packer: return TokenPacker3D<T, D>(c);
    }
    fail("Projector: unknown projector type");
  }

  Impl impl_;
};

}  // namespace ctmllm::projector
