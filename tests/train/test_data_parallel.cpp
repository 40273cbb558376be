// train::DataParallel without MPI: on one process (SingleProcess) the reduction leaves gradients as
// they are and a Trainer with the hook trains exactly like one without; bad weights are refused.
// The two-rank case runs under mpirun (tests/mpi/test_data_parallel.cpp).
#include <vector>

#include "support/catch.hpp"
#include "train/grad_source.hpp"
#include "train/tiny_regression.hpp"

using namespace ctmllm;
using testing::RegressionBatch;
using testing::TinyMlp;

namespace {
train::TrainerOptions quiet(int64_t steps) {
  train::TrainerOptions o;
  o.max_steps = steps;
  o.clip_norm = 0.5;
  o.prefetch = 0;
  o.progress = false;
  return o;
}

std::vector<float> weights(const TinyMlp& m) {
  std::vector<float> w;
  for (const auto& p : m.params.all()) {
    const auto v = p.value().to_vector();
    w.insert(w.end(), v.begin(), v.end());
  }
  return w;
}
}  // namespace

TEST_CASE("one-process data parallel trains bit for bit like no data parallel", "[train][data_parallel]") {
  TinyMlp plain(1), wrapped(1);
  auto batches = [](int64_t i) { return testing::regression_batch(9, i); };
  train::Trainer<RegressionBatch> a(train::AdamW<float>(plain.params.all(), {.lr = 1e-2}), quiet(5), batches,
                                    [&](const RegressionBatch& b) { return plain.loss(b); });
  a.run();
  train::SingleProcess one;
  train::DataParallel<float> dp(one);
  dp.broadcast_parameters(wrapped.params.all());
  train::Trainer<RegressionBatch> b(train::AdamW<float>(wrapped.params.all(), {.lr = 1e-2}), quiet(5), batches,
                                    [&](const RegressionBatch& x) { return wrapped.loss(x); });
  b.set_gradient_reduction(dp.reduction());
  b.run();
  CHECK(weights(wrapped) == weights(plain));
  for (size_t s = 0; s < 5; ++s) {
    CHECK(b.state().history[s].loss == a.state().history[s].loss);
    CHECK(b.state().history[s].tokens == a.state().history[s].tokens);
  }
}

TEST_CASE("DataParallel::reduce weighs the loss and checks its inputs", "[train][data_parallel][errors]") {
  train::SingleProcess one;
  train::DataParallel<float> dp(one);
  autograd::Variable<float> w(Tensor<float>::from({1.0f, 2.0f}, {2}), true, "w");
  testing::backward_with_grad(w, Tensor<float>::from({0.5f, -1.0f}, {2}));
  const train::StepReduction r = dp.reduce({w}, 7.0, 2.5, 12);
  CHECK(r.loss == 2.5);
  CHECK(r.tokens == 12);
  CHECK(r.weight == 7.0);
  CHECK(w.grad().to_vector() == std::vector<float>{0.5f, -1.0f});  // weight 7 / 7 = 1
  CHECK_THROWS_WITH(dp.reduce({w}, -1.0, 2.5, 12), Catch::Contains("weight must be finite and >= 0"));
  CHECK_THROWS_WITH(dp.reduce({w}, 0.0, 2.5, 12), Catch::Contains("weights sum to 0"));
  CHECK_THROWS_WITH(one.broadcast(std::span<float>(), 1), Catch::Contains("root 1"));
}
