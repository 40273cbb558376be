#pragma once
// vision::ViT3D: the M3D-CLIP 3D vision transformer (MONAI's ViT with a "perceptron" patch embedding),
// with its parameters under the MONAI / M3D names, so M3D checkpoints load by name.
//
//   x [B, C, D, H, W]
//   -> patches in (p1 p2 p3 c) order · patch_embedding.patch_embeddings.1 -> [B, N, E]
//   + patch_embedding.position_embeddings (resampled for other grids, see position_table.hpp)
//   -> cls_token prepended (after the positions, so it carries none) -> [B, 1 + N, E]
//   -> blocks.i: x += attn.out_proj(MHA(norm1(x)));  x += mlp.linear2(gelu(mlp.linear1(norm2(x))))
//      attn.qkv (no bias by default) lays its output out as (3, heads, head_dim)
//   -> norm -> tokens [B, N, E] (CLS removed) and cls [B, E]
// Block outputs can be tapped (without the CLS row and before the final norm), as TokenPacker and
// M3D's vision_select_layer read them. Everything runs on autograd::Variable, so the same forward
// trains the ViT; under NoGradGuard it records nothing.
#include <optional>
#include <string>
#include <vector>

#include "ctmllm/autograd/activation.hpp"
#include "ctmllm/autograd/attention.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/patch_embed.hpp"
#include "ctmllm/autograd/shape_ops.hpp"
#include "ctmllm/io/checkpoint.hpp"
#include "ctmllm/nn/linear.hpp"
#include "ctmllm/nn/load.hpp"
#include "ctmllm/nn/norm.hpp"
#include "ctmllm/vision/config.hpp"
#include "ctmllm/vision/position_table.hpp"

namespace ctmllm::vision {

// One pre-norm transformer block, "blocks.<i>.*".
template <class T, class D>
struct ViT3DBlock {
  using Var = autograd::Variable<T, D>;
  nn::LayerNorm<T, D> norm1, norm2;
  nn::Linear<T, D> qkv, out_proj, linear1, linear2;
  int64_t heads = 1;

  ViT3DBlock(autograd::Parameters<T, D>& p, const std::string& name, const ViT3DConfig& c)
      : norm1(p, name + ".norm1", c.hidden_size, c.norm_eps),
        norm2(p, name + ".norm2", c.hidden_size, c.norm_eps),
        qkv(p, name + ".attn.qkv", c.hidden_size, 3 * c.hidden_size, c.qkv_bias),
        out_proj(p, name + ".attn.out_proj", c.hidden_size, c.hidden_size),
        linear1(p, name + ".mlp.linear1", c.hidden_size, c.mlp_dim),
        linear2(p, name + ".mlp.linear2", c.mlp_dim, c.hidden_size),
        heads(c.num_heads) {}

  // x [B, S, E] -> [B, S, E]
  Var operator()(const Var& x) const {
    const int64_t b = x.size(0), s = x.size(1), e = x.size(2), hd = e / heads;
    // [B, S, 3E] -> [B, S, 3, H, hd] -> [3, B, H, S, hd]; q, k, v are strided views (no copy).
    const Var qkv5 = autograd::permute(autograd::reshape(qkv(norm1(x)), {b, s, 3, heads, hd}), {2, 0, 3, 1, 4});
    const Var a = autograd::attention(autograd::select(qkv5, 0, 0), autograd::select(qkv5, 0, 1),
                                      autograd::select(qkv5, 0, 2));  // [B, H, S, hd], scale 1/√hd
    const Var merged = autograd::reshape(autograd::transpose(a, 1, 2), {b, s, e});
    const Var h = autograd::add(x, out_proj(merged));
    return autograd::add(h, linear2(autograd::gelu(linear1(norm2(h)))));
  }
};

template <class T, class D>
struct ViT3DOutput {
  autograd::Variable<T, D> tokens;               // [B, N, E]: final norm, CLS removed
  autograd::Variable<T, D> cls;                  // [B, E] (undefined without classification)
  std::vector<autograd::Variable<T, D>> hidden;  // one [B, N, E] per requested block, in request order
  std::array<int64_t, 3> grid{};                 // the patch grid (d, h, w) of this input
};

template <class T, class D = Cpu>
class ViT3D {
 public:
  using Var = autograd::Variable<T, D>;

  // Registers zero-filled parameters; load() a checkpoint or init() them.
  explicit ViT3D(const ViT3DConfig& config) : config_(config) {
    config_.validate("ViT3D");
    const ViT3DConfig& c = config_;
    const int64_t e = c.hidden_size, p = c.in_channels * c.patch_size[0] * c.patch_size[1] * c.patch_size[2];
    // A Linear over (p1 p2 p3 c)-flattened patches, index 1 of MONAI's Sequential(Rearrange, Linear).
    patch_ = nn::Linear<T, D>(params_, "patch_embedding.patch_embeddings.1", p, e);
    positions_ = params_.add("patch_embedding.position_embeddings", Tensor<T, D>::zeros({1, c.num_patches(), e}));
    if (c.classification) cls_token_ = params_.add("cls_token", Tensor<T, D>::zeros({1, 1, e}));
    for (int64_t i = 0; i < c.num_layers; ++i) blocks_.emplace_back(params_, "blocks." + std::to_string(i), c);
    norm_ = nn::LayerNorm<T, D>(params_, "norm", e, c.norm_eps);
  }

  const ViT3DConfig& config() const { return config_; }
  autograd::Parameters<T, D>& parameters() { return params_; }
  const autograd::Parameters<T, D>& parameters() const { return params_; }

  // Fresh weights for training from scratch and benchmarks: Linears as PyTorch's default
  // U(±1/√in), position table and CLS N(0, 0.02²), norms 1 and 0.
  void init(Rng& rng) {
    patch_.init(rng);
    rng.normal(positions_.value(), 0.0, 0.02);
    if (cls_token_.defined()) rng.normal(cls_token_.value(), 0.0, 0.02);
    for (const auto& b : blocks_)
      for (const auto* l : {&b.qkv, &b.out_proj, &b.linear1, &b.linear2}) l->init(rng);
  }

  // Loads every parameter from `source` (anything nn::load_parameters reads) under `prefix` + name,
  // e.g. prefix "vision_encoder." for M3D's pretrained_ViT.bin. Extra tensors (a CLIP text tower,
  // MONAI's classification_head) are ignored; a missing one is an Error listing it.
  template <class Source>
  nn::LoadReport load(const Source& source, const std::string& prefix = "") {
    return nn::load_parameters(params_, source, [&prefix](const std::string& n) { return prefix + n; });
  }
  // A safetensors file, a torch.save state dict (.bin) or a Hugging Face folder. Without a prefix,
  // the one in front of "patch_embedding.position_embeddings" in the file is used.
  nn::LoadReport load_file(const std::string& path, const std::optional<std::string>& prefix = std::nullopt) {
    const io::CheckpointDir source(path);
    return load(source, prefix ? *prefix : find_prefix(source.names(), path));
  }

  // The patch grid for a volume shape [B, C, D, H, W]; an Error when it cannot go through this ViT.
  std::array<int64_t, 3> grid_for(const Shape& volume) const {
    CTMLLM_CHECK(volume.rank() == 5, "ViT3D: the input must be [B, C, D, H, W], got shape ", volume);
    CTMLLM_CHECK(volume[1] == config_.in_channels, "ViT3D: the input ", volume, " has ", volume[1],
                 " channels, the model takes ", config_.in_channels);
    return ops::patch_grid(volume, config_.patch_size, "ViT3D", "the input");
  }

  // x [B, C, D, H, W]; `taps`: block indices (0-based, -1 = the last) whose outputs to return.
  ViT3DOutput<T, D> forward(const Var& x, const std::vector<int>& taps = {}) const {
    ViT3DOutput<T, D> out;
    out.grid = grid_for(x.shape());
    std::vector<int> wanted;
    for (int t : taps) {
      const int i = t < 0 ? t + int(blocks_.size()) : t;
      CTMLLM_CHECK(i >= 0 && i < int(blocks_.size()), "ViT3D: hidden-state tap ", t, " is outside the ", blocks_.size(),
                   " blocks");
      wanted.push_back(i);
    }
    out.hidden.resize(wanted.size());

    const Var pos = resample_position_table(positions_, config_.grid(), out.grid, config_.position_resample);
    Var h = autograd::add(autograd::patch_embed(x, patch_.weight, patch_.bias, config_.patch_size), pos);  // [B, N, E]
    const int64_t b = h.size(0), n = h.size(1), e = h.size(2);
    const int64_t first = cls_token_.defined() ? 1 : 0;  // the row where patch tokens start
    if (cls_token_.defined()) h = autograd::concat(std::vector<Var>{autograd::expand(cls_token_, Shape{b, 1, e}), h}, 1);
    for (int i = 0; i < int(blocks_.size()); ++i) {
      h = blocks_[size_t(i)](h);
      for (size_t k = 0; k < wanted.size(); ++k)
        if (wanted[k] == i) out.hidden[k] = autograd::slice(h, 1, first, first + n);
    }
    const Var y = norm_(h);
    out.tokens = autograd::slice(y, 1, first, first + n);
    if (cls_token_.defined()) out.cls = autograd::select(y, 1, 0);
    return out;
  }

  // The key prefix in front of the ViT's names in a checkpoint ("" when they are bare).
  static std::string find_prefix(const std::vector<std::string>& names, const std::string& source) {
    const std::string anchor = "patch_embedding.position_embeddings";
    std::optional<std::string> found;
    for (const auto& name : names) {
      if (name.size() < anchor.size() || name.compare(name.size() - anchor.size(), anchor.size(), anchor) != 0) continue;
      CTMLLM_CHECK(!found, source, ": more than one ViT in the file ('", *found, anchor, "' and '", name,
                   "'); pass the prefix");
      found = name.substr(0, name.size() - anchor.size());
    }
    CTMLLM_CHECK(found, source, ": no '", anchor, "' tensor: not an M3D / MONAI ViT checkpoint");
    return *found;
  }

 private:
  ViT3DConfig config_;
  autograd::Parameters<T, D> params_;
  nn::Linear<T, D> patch_;
  Var positions_, cls_token_;
  std::vector<ViT3DBlock<T, D>> blocks_;
  nn::LayerNorm<T, D> norm_;
};

}  // namespace ctmllm::vision
