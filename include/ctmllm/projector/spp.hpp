#pragma once
// SpatialPoolingProjector: M3D's default "spp" projector.
//   tokens [B, N, E] -> grid [B, E, d, h, w] -> avg_pool3d(pool, stride pool) -> [B, N', E]
//   -> projector.0 Linear(E -> H) [-> GELU -> projector.2 Linear(H -> H) ...]
// With the paper's sizes: 2048 tokens on 8×16×16, pool 2 -> 256 tokens on 4×8×8.
//
// summary_token "max" (a ctmllm extension; M3D has none) appends one token:
//   projector.0 applied to every input token -> max over the N tokens, per channel -> the rest of the stack
// With summary_channels [first, count] it appends count tokens instead: token k is the rest of the
// stack (without the GELU after projector.0) applied to a vector holding only channel first+k of that
// maximum and a constant kSummaryWhich on channel first+count+k, so the next Linear's column for that
// channel is a learned "which kind" embedding. Measured in the demo: a Llama trained from scratch read
// four or five of seven finding channels out of one summary token, and all but the weakest detector's
// when each had its own token (attention picks the token of the organ a sentence is about; docs/DEMO.md, "What limits it" 5).
// Each channel of it is a learned linear read-out of the tokens, maxed over the whole volume: a
// multiple-instance detector, so a finding seen in one patch reaches the LLM in one token at a fixed
// place instead of diluted by the pooling (docs/PROJECTORS.md). Measured in the demo: a Llama trained
// from scratch did not learn to pick one pooled token out of 64, and did read the summary token.
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/pool3d.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/autograd/shape_ops.hpp"
#include "ctmllm/projector/config.hpp"
#include "ctmllm/projector/linear.hpp"

namespace ctmllm::projector {

template <class T, class D = Cpu>
class SpatialPoolingProjector {
 public:
  using Var = autograd::Variable<T, D>;
  // The "which kind" mark of the per-channel summary tokens. Measured in the demo (docs/DEMO.md):
  // with 2, a present finding's channel (4-13 after stage 2) outweighed every absent token's mark
  // and a Llama trained from scratch read one kind (kidney stones) from its neighbours' tokens.
  static constexpr double kSummaryWhich = 8;

  explicit SpatialPoolingProjector(const ProjectorConfig& c)
      : config_(c.validated("SpatialPoolingProjector")),
        projector_(params_, "projector", c.in_dim, c.out_dim, c.layer_num, c.mlp) {}
  const ProjectorConfig& config() const { return config_; }
  autograd::Parameters<T, D>& parameters() { return params_; }
  const autograd::Parameters<T, D>& parameters() const { return params_; }
  int64_t num_tokens() const { return config_.num_tokens(); }
  void init(Rng& rng) const { projector_.init(rng); }

  // tokens [B, N, E] -> [B, N', H]
  Var operator()(const Var& tokens) const {
    const auto& c = config_;
    check_tokens(tokens, c.tokens_in(), c.in_dim, "SpatialPoolingProjector", "tokens");
    const int64_t b = tokens.size(0), e = c.in_dim;
    // "b (p1 p2 p3) d -> b d p1 p2 p3"
    const Var grid = autograd::reshape(autograd::transpose(tokens, 1, 2), {b, e, c.grid[0], c.grid[1], c.grid[2]});
    const Var pooled = autograd::avg_pool3d(grid, c.pool, c.pool);  // [B, E, d', h', w']
    // "b d p1 p2 p3 -> b (p1 p2 p3) d": a strided view; the Linear reads it in place.
    const Var out = projector_(autograd::transpose(autograd::reshape(pooled, {b, e, -1}), 1, 2));
    if (!c.summary_max) return out;
    return autograd::concat(std::vector<Var>{out, summary_token(tokens)}, 1);
  }

 private:
  // tokens [B, N, E] -> [B, S, H]: max over tokens of projector.0 (split into S per-channel tokens
  // when summary_channels is set), then the rest of the stack.
  // Per-channel tokens enter the next Linear without the GELU: a channel the training pushes below
  // zero for every case would otherwise reach the LLM flattened to about 0 with a vanishing gradient,
  // and stay there (measured in the demo, docs/DEMO.md "What limits it" 9).
  Var summary_token(const Var& tokens) const {
    Var x = autograd::max(projector_.layers[0](tokens), 1, true).values;  // [B, 1, H]
    const bool per_channel = config_.summary_channels[1] > 0;
    if (per_channel) x = autograd::add(autograd::mul(x, Var(summary_keep_)), Var(summary_which_));
    for (size_t i = 1; i < projector_.layers.size(); ++i) {
      const bool activate = projector_.gelu && !(per_channel && i == 1);
      x = projector_.layers[i](activate ? autograd::gelu(x) : x);
    }
    return x;
  }

  // The per-channel summary tokens' constants, [1, count, H] (empty without summary_channels):
  // `keep` is 1 on channel first+k of row k, `which` is kSummaryWhich on channel first+count+k.
  static Tensor<T, D> summary_constant(const ProjectorConfig& c, bool keep) {
    const auto [first, count] = c.summary_channels;
    if (count == 0) return Tensor<T, D>();
    Tensor<T, Cpu> t = Tensor<T, Cpu>::zeros({1, count, c.out_dim});
    for (int64_t k = 0; k < count; ++k) t.at(0, k, keep ? first + k : first + count + k) = T(keep ? 1 : kSummaryWhich);
    return t.template to_device<D>();
  }

  ProjectorConfig config_;
  Tensor<T, D> summary_keep_ = summary_constant(config_, true), summary_which_ = summary_constant(config_, false);
  autograd::Parameters<T, D> params_;
  LinearStack<T, D> projector_;
};

}  // namespace ctmllm::projector
