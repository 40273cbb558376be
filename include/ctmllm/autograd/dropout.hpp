#pragma once
// Autograd for dropout. Each training call reserves x.numel() counters of `rng` (rng.take), so
// consecutive calls draw different masks while a run from the same seed is reproducible; the node
// saves only (p, seed, offset). Outside training, or with p = 0, x itself is returned.
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/ops/dropout.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> dropout(const Variable<T, D>& x, double p, Rng& rng, bool training) {
  ops::check_dropout_p(p, "dropout");
  if (!training || p == 0) return x;
  const uint64_t seed = rng.seed(), offset = rng.take(uint64_t(x.value().numel()));
  return record(ops::dropout(x.value(), p, seed, offset), "dropout", {x}, [p, seed, offset](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::dropout_backward(dy, p, seed, offset)};
  });
}

}  // namespace ctmllm::autograd
