#pragma once
// nn::Embedding: rows of "<name>.weight" [vocab, hidden] gathered by token id.
#include <string>

#include "ctmllm/autograd/embedding.hpp"
#include "ctmllm/autograd/parameters.hpp"
#include "ctmllm/core/rng.hpp"

namespace ctmllm::nn {

template <class T, class D = Cpu>
struct Embedding {
  autograd::Variable<T, D> weight;  // [vocab, hidden]

  Embedding() = default;
  Embedding(autograd::Parameters<T, D>& params, const std::string& name, int64_t vocab, int64_t hidden)
      : weight(params.add(name + ".weight", Tensor<T, D>::zeros({vocab, hidden}))) {}

  int64_t num_embeddings() const { return weight.size(0); }
  int64_t dim() const { return weight.size(1); }

  autograd::Variable<T, D> operator()(const Tensor<int64_t, D>& ids) const { return autograd::embedding(weight, ids); }

  // nn.Embedding's default: N(0, 1).
  void init(Rng& rng, double std = 1.0) const { rng.normal(weight.value(), 0.0, std); }
};

}  // namespace ctmllm::nn
