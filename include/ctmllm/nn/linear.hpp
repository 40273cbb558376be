#pragma once
// nn::Linear: y = x·Wᵀ + b with W [out, in] and b [out], registered as "<name>.weight" and
// "<name>.bias" (Hugging Face / PyTorch names) so checkpoints load by name.
#include <cmath>
#include <string>

#include "ctmllm/autograd/matmul.hpp"
#include "ctmllm/autograd/parameters.hpp"
#include "ctmllm/core/rng.hpp"

namespace ctmllm::nn {

template <class T, class D = Cpu>
struct Linear {
  autograd::Variable<T, D> weight;  // [out, in]
  autograd::Variable<T, D> bias;    // [out], undefined without bias

  Linear() = default;
  // Registers zero-filled parameters; load a checkpoint or call init() to fill them.
  Linear(autograd::Parameters<T, D>& params, const std::string& name, int64_t in, int64_t out, bool with_bias = true)
      : weight(params.add(name + ".weight", Tensor<T, D>::zeros({out, in}))) {
    if (with_bias) bias = params.add(name + ".bias", Tensor<T, D>::zeros({out}));
  }

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }

  autograd::Variable<T, D> operator()(const autograd::Variable<T, D>& x) const { return autograd::linear(x, weight, bias); }

  // PyTorch's nn.Linear default: W and b ~ U(−1/√in, 1/√in).
  void init(Rng& rng) const {
    const double bound = 1.0 / std::sqrt(double(in_features()));
    rng.uniform(weight.value(), -bound, bound);
    if (bias.defined()) rng.uniform(bias.value(), -bound, bound);
  }
};

}  // namespace ctmllm::nn
