#pragma once
// A tiny model and data source for trainer tests: a two-layer tanh MLP (nn::Linear, HF-style names)
// regressing a fixed random linear map, batches a pure function of (seed, micro-batch index).
#include <string>
#include <vector>

#include "ctmllm/autograd/activation.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/data/sampler.hpp"
#include "ctmllm/nn/linear.hpp"
#include "ctmllm/train/trainer.hpp"

namespace ctmllm::testing {

struct RegressionBatch {
  int64_t index = 0;
  Tensor<float, Cpu> x, y;  // [8, 4], [8, 2]
};

struct TinyMlp {
  autograd::Parameters<float> params;
  nn::Linear<float> fc1, fc2;
  explicit TinyMlp(uint64_t init_seed)
      : fc1(params, "model.fc1", 4, 16), fc2(params, "model.fc2", 16, 2) {
    Rng rng(init_seed);
    fc1.init(rng);
    fc2.init(rng);
  }
  autograd::Variable<float> operator()(const autograd::Variable<float>& x) const {
    return fc2(autograd::tanh(fc1(x)));
  }
  train::LossResult<float> loss(const RegressionBatch& b) const {
    const autograd::Variable<float> d = autograd::sub((*this)(autograd::Variable<float>(b.x)), autograd::Variable<float>(b.y));
    return {autograd::mean(autograd::square(d)), b.x.size(0)};
  }
};

// Targets y = x · M for a fixed M; micro-batch i draws its inputs from its own stream.
inline RegressionBatch regression_batch(uint64_t seed, int64_t i) {
  RegressionBatch b;
  b.index = i;
  b.x = Rng(data::derive_seed(seed, uint64_t(i))).normal<float>(Shape{8, 4});
  const Tensor<float, Cpu> m = Rng(12345).normal<float>(Shape{4, 2});
  b.y = Tensor<float, Cpu>::zeros({8, 2});
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t c = 0; c < 2; ++c) {
      double s = 0;
      for (int64_t k = 0; k < 4; ++k) s += double(b.x.data()[r * 4 + k]) * double(m.data()[k * 2 + c]);
      b.y.data()[r * 2 + c] = float(s);
    }
  return b;
}

}  // namespace ctmllm::testing
