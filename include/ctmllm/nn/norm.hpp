#pragma once
// nn::LayerNorm and nn::RMSNorm over the last dimension, with Hugging Face parameter names.
#include <string>

#include "ctmllm/autograd/norm.hpp"
#include "ctmllm/autograd/parameters.hpp"

namespace ctmllm::nn {

// "<name>.weight" (ones) and "<name>.bias" (zeros), as nn.LayerNorm initialises them.
template <class T, class D = Cpu>
struct LayerNorm {
  autograd::Variable<T, D> weight, bias;
  double eps = 1e-5;

  LayerNorm() = default;
  LayerNorm(autograd::Parameters<T, D>& params, const std::string& name, int64_t dim, double eps_ = 1e-5)
      : weight(params.add(name + ".weight", Tensor<T, D>::ones({dim}))),
        bias(params.add(name + ".bias", Tensor<T, D>::zeros({dim}))),
        eps(eps_) {}

  autograd::Variable<T, D> operator()(const autograd::Variable<T, D>& x) const {
    return autograd::layer_norm(x, weight, bias, eps);
  }
};

// "<name>.weight". Llama-style scales by w (initialised to ones); Gemma-style by (1 + w)
// (weight_offset = 1, initialised to zeros), matching each family's checkpoints.
template <class T, class D = Cpu>
struct RMSNorm {
  autograd::Variable<T, D> weight;
  double eps = 1e-6;
  double weight_offset = 0.0;

  RMSNorm() = default;
  RMSNorm(autograd::Parameters<T, D>& params, const std::string& name, int64_t dim, double eps_ = 1e-6,
          double weight_offset_ = 0.0)
      : weight(params.add(name + ".weight", weight_offset_ == 0.0 ? Tensor<T, D>::ones({dim}) : Tensor<T, D>::zeros({dim}))),
        eps(eps_),
        weight_offset(weight_offset_) {}

  autograd::Variable<T, D> operator()(const autograd::Variable<T, D>& x) const {
    return autograd::rms_norm(x, weight, eps, weight_offset);
  }
};

}  // namespace ctmllm::nn
