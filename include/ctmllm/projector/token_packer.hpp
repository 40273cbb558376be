#pragma once
// TokenPacker3D: TokenPacker (Li et al. 2024) carried from a 2-D image grid to the ViT's 3-D grid,
// with the original's parameter names (docs/VISION.md has the derivation; the PyTorch reference is
// tests/tools/gen_projector_fixtures.py).
//
//   queries q = ln_q_1(q_proj_1(trilinear downsample of the final tokens by `scale`)) [B, Nq, C]
//     (for scale 2 the downsample is exactly the 2×2×2 mean)
//   keys    k = ln_k_1(k_proj_1(concat of the tapped block outputs))               [B, N, C]
//   values  v = ln_v_1(v_proj_1(same))                                              [B, N, C]
//   out = mlp(clip_attn(q, k, v)) where query i attends only to the s0·s1·s2 fine tokens of its own
//   cell: clip_attn is nn.MultiheadAttention(C, heads) (in_proj_weight [3C, C] holds q, k, v rows).
// The paper's sizes: 8×16×16 tokens of 768, taps 5, 7, 10, 11 (3072-d), C = 1024, 8 heads,
// scale 2 -> 256 tokens of H.
#include <cmath>
#include <vector>

#include "ctmllm/autograd/attention.hpp"
#include "ctmllm/autograd/interpolate.hpp"
#include "ctmllm/autograd/shape_ops.hpp"
#include "ctmllm/nn/norm.hpp"
#include "ctmllm/projector/config.hpp"
#include "ctmllm/projector/linear.hpp"

namespace ctmllm::projector {

template <class T, class D = Cpu>
class TokenPacker3D {
 public:
  using Var = autograd::Variable<T, D>;

  explicit TokenPacker3D(const ProjectorConfig& c)
      : config_(c.validated("TokenPacker3D")),
        q_proj_(params_, "q_proj_1", c.in_dim, c.embed_dim, /*with_bias=*/false),
        k_proj_(params_, "k_proj_1", c.in_dim * int64_t(c.feature_layers.size()), c.embed_dim, 2, true),
        v_proj_(params_, "v_proj_1", c.in_dim * int64_t(c.feature_layers.size()), c.embed_dim, 2, true),
        ln_q_(params_, "ln_q_1", c.embed_dim, c.norm_eps),
        ln_k_(params_, "ln_k_1", c.embed_dim, c.norm_eps),
        ln_v_(params_, "ln_v_1", c.embed_dim, c.norm_eps),
        in_proj_weight_(params_.add("clip_attn.in_proj_weight", Tensor<T, D>::zeros({3 * c.embed_dim, c.embed_dim}))),
        in_proj_bias_(params_.add("clip_attn.in_proj_bias", Tensor<T, D>::zeros({3 * c.embed_dim}))),
        out_proj_(params_, "clip_attn.out_proj", c.embed_dim, c.embed_dim),
        mlp_(params_, "mlp", c.embed_dim, c.out_dim, 2, true) {}

  const ProjectorConfig& config() const { return config_; }
  autograd::Parameters<T, D>& parameters() { return params_; }
  const autograd::Parameters<T, D>& parameters() const { return params_; }
  int64_t num_tokens() const { return config_.num_tokens(); }

  // PyTorch's defaults: Linears U(±1/√in); nn.MultiheadAttention's in_proj Xavier-uniform with zero
  // biases (out_proj's bias too); norms 1 and 0.
  void init(Rng& rng) const {
    q_proj_.init(rng);
    k_proj_.init(rng);
    v_proj_.init(rng);
    out_proj_.init(rng);
    mlp_.init(rng);
    const double c = double(config_.embed_dim), bound = std::sqrt(6.0 / (c + 3 * c));
    rng.uniform(in_proj_weight_.value(), -bound, bound);
    in_proj_bias_.value().fill(T(0));
    out_proj_.bias.value().fill(T(0));
  }

  // tokens [B, N, E] (final ViT tokens), taps: one [B, N, E] per feature layer, in config order
  // -> [B, N / (s0·s1·s2), H]
  Var operator()(const Var& tokens, const std::vector<Var>& taps) const {
    const ProjectorConfig& c = config_;
    const int64_t n = c.tokens_in(), e = c.in_dim, ch = c.embed_dim, heads = c.num_heads, hd = ch / heads;
    check_tokens(tokens, n, e, "TokenPacker3D", "tokens");
    CTMLLM_CHECK(taps.size() == c.feature_layers.size(), "TokenPacker3D: ", taps.size(), " hidden-state taps given, ",
                 c.feature_layers.size(), " configured (feature_layers)");
    for (const auto& t : taps) {
      check_tokens(t, n, e, "TokenPacker3D", "a hidden-state tap");
      CTMLLM_CHECK(t.size(0) == tokens.size(0), "TokenPacker3D: a tap ", t.value().describe(),
                   " has another batch than tokens ", tokens.value().describe());
    }
    const int64_t b = tokens.size(0), nq = num_tokens(), cell = n / nq;
    const std::array<int64_t, 3> coarse{c.grid[0] / c.scale[0], c.grid[1] / c.scale[1], c.grid[2] / c.scale[2]};

    // Queries from the final tokens: [B, E, d, h, w] -> [B, E, d', h', w'] -> [B, Nq, C]
    ops::InterpolateOptions down;  // trilinear, align_corners = false, as TokenPacker's bilinear
    down.size = coarse;
    const Var grid = autograd::reshape(autograd::transpose(tokens, 1, 2), {b, e, c.grid[0], c.grid[1], c.grid[2]});
    const Var small = autograd::reshape(autograd::interpolate(grid, down), {b, e, nq});
    const Var q = ln_q_(q_proj_(autograd::transpose(small, 1, 2)));
    // Keys and values from the concatenated taps: [B, N, E·taps] -> [B, N, C]
    const Var multi = autograd::concat(taps, 2);
    const Var k = ln_k_(k_proj_(multi)), v = ln_v_(v_proj_(multi));

    // clip_attn: each coarse cell is one attention batch of 1 query and its `cell` fine keys.
    const auto w = autograd::split(in_proj_weight_, {ch, ch, ch}, 0);
    const auto bias = autograd::split(in_proj_bias_, {ch, ch, ch}, 0);
    const Var qh = autograd::transpose(autograd::reshape(autograd::linear(q, w[0], bias[0]), {b * nq, 1, heads, hd}), 1, 2);
    const Var kh = autograd::transpose(autograd::reshape(cells(autograd::linear(k, w[1], bias[1])), {b * nq, cell, heads, hd}), 1, 2);
    const Var vh = autograd::transpose(autograd::reshape(cells(autograd::linear(v, w[2], bias[2])), {b * nq, cell, heads, hd}), 1, 2);
    const Var a = autograd::attention(qh, kh, vh);  // [B·Nq, heads, 1, hd], scale 1/√hd
    return mlp_(out_proj_(autograd::reshape(autograd::transpose(a, 1, 2), {b, nq, ch})));
  }

 private:
  // x [B, N, C] on grid (d, h, w) -> [B·Nq, s0·s1·s2, C]: the fine tokens of each coarse cell, cells
  // in raster order (the order of the queries).
  Var cells(const Var& x) const {
    const auto& g = config_.grid;
    const auto& s = config_.scale;
    const int64_t b = x.size(0), ch = x.size(2);
    const Var split = autograd::reshape(x, {b, g[0] / s[0], s[0], g[1] / s[1], s[1], g[2] / s[2], s[2], ch});
    return autograd::reshape(autograd::permute(split, {0, 1, 3, 5, 2, 4, 6, 7}), {-1, s[0] * s[1] * s[2], ch});
  }

  ProjectorConfig config_;
  autograd::Parameters<T, D> params_;
  nn::Linear<T, D> q_proj_;
  LinearStack<T, D> k_proj_, v_proj_;
  nn::LayerNorm<T, D> ln_q_, ln_k_, ln_v_;
  Var in_proj_weight_, in_proj_bias_;
  nn::Linear<T, D> out_proj_;
  LinearStack<T, D> mlp_;
};

}  // namespace ctmllm::projector
