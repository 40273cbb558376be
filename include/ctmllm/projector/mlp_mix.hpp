#pragma once
// TokenMixProjector: the token-mixing MLP projector ("mlp_mix").
//   tokens [B, N, E] -> mm_projector Linear(E -> H) per token -> [B, N, H]
//   -> along the token axis: token_mix.0 Linear(N -> M) -> GELU -> token_mix.2 Linear(M -> M)
//   -> [B, M, H]
// The token-axis Linears see every token at once, so N is fixed by the config (2048 -> 256 in the paper).
#include "ctmllm/autograd/shape_ops.hpp"
#include "ctmllm/projector/config.hpp"
#include "ctmllm/projector/linear.hpp"

namespace ctmllm::projector {

template <class T, class D = Cpu>
class TokenMixProjector {
 public:
  using Var = autograd::Variable<T, D>;

  explicit TokenMixProjector(const ProjectorConfig& c)
      : config_(c.validated("TokenMixProjector")),
        mm_projector_(params_, "mm_projector", c.in_dim, c.out_dim),
        token_mix_(params_, "token_mix", c.tokens_in(), c.tokens_out, 2, /*gelu=*/true) {}
  const ProjectorConfig& config() const { return config_; }
  autograd::Parameters<T, D>& parameters() { return params_; }
  const autograd::Parameters<T, D>& parameters() const { return params_; }
  int64_t num_tokens() const { return config_.num_tokens(); }
  void init(Rng& rng) const {
    mm_projector_.init(rng);
    token_mix_.init(rng);
  }

  // tokens [B, N, E] -> [B, M, H]
  Var operator()(const Var& tokens) const {
    check_tokens(tokens, config_.tokens_in(), config_.in_dim, "TokenMixProjector", "tokens");
    const Var per_token = autograd::transpose(mm_projector_(tokens), 1, 2);  // [B, H, N]
    return autograd::transpose(token_mix_(per_token), 1, 2);                  // [B, H, M] -> [B, M, H]
  }

 private:
  ProjectorConfig config_;
  autograd::Parameters<T, D> params_;
  nn::Linear<T, D> mm_projector_;
  LinearStack<T, D> token_mix_;
};

}  // namespace ctmllm::projector
