// Mixed precision: a tiny Llama trained in bf16 with float master weights follows the float run;
// a half model with a loss scale that overflows skips the step and halves the scale; the scaled
// conversions (ops::convert_) the master weights are made of.
#include <cmath>
#include <vector>

#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/mixed_precision_run.hpp"

using namespace ctmllm;
using testing::kMixedAdam;
using testing::kMixedBase;
using testing::train_mixed;

TEST_CASE("bf16 training with float master weights follows the float run", "[train][mixed]") {
  const testing::Fixture ref("train/llama_adamw/reference.safetensors");
  const auto ids = ref.get<int64_t>("input_ids"), labels = ref.get<int64_t>("labels");

  auto f32 = llm::Decoder<float>::from_pretrained(testing::fixture_path(kMixedBase));
  train::AdamW<float> opt(f32.parameters().all(), kMixedAdam);
  std::vector<double> want;
  for (int s = 0; s < 5; ++s) {
    opt.zero_grad();
    const auto loss = llm::causal_lm_loss(f32.forward({.input_ids = ids}).logits, labels);
    loss.backward();
    want.push_back(loss.value().item());
    train::clip_grad_norm(f32.parameters().all(), 1.0);
    opt.step();
  }

  auto b16 = llm::Decoder<bf16>::from_pretrained(testing::fixture_path(kMixedBase));
  train::MasterWeights<bf16> master(b16.parameters().all());
  train::DynamicLossScaler unit({.init_scale = 1.0});  // bf16 needs no scaling
  const std::vector<double> got = train_mixed(b16, master, unit, ids, labels, 5);
  double worst_loss = 0;
  for (int s = 0; s < 5; ++s) {
    INFO("step " << s << ": bf16 " << got[size_t(s)] << ", float " << want[size_t(s)]);
    worst_loss = std::max(worst_loss, std::abs(got[size_t(s)] / want[size_t(s)] - 1));
  }
  double worst_weight = 0;
  for (const auto& p : master.params())
    worst_weight = std::max(worst_weight, testing::rel_error(p.value(), f32.parameters().get(p.name()).value()));
  INFO("worst loss rel diff " << worst_loss << ", worst master weight rel diff " << worst_weight);
  CHECK(want.back() < want.front() - 1.0);  // the float run learns
  CHECK(worst_loss <= 1e-2);                // measured 6.6e-3: the bf16 loss value itself is rounded (~4e-3)
  CHECK(worst_weight <= 1e-2);              // measured 2.9e-3
  // The model holds the master values rounded to bf16.
  const auto& w = b16.parameters().get("lm_head.weight").value();
  CHECK(testing::max_abs_diff(w, master.params().back().value().to<bf16>()) == 0);
}

TEST_CASE("half training skips an overflowing step and halves the loss scale", "[train][mixed]") {
  const testing::Fixture ref("train/llama_adamw/reference.safetensors");
  const auto ids = ref.get<int64_t>("input_ids"), labels = ref.get<int64_t>("labels");
  auto f16 = llm::Decoder<half>::from_pretrained(testing::fixture_path(kMixedBase));
  train::MasterWeights<half> master(f16.parameters().all());
  const Tensor<float> before = master.params().front().value().clone();
  // GradScaler's defaults: the initial 2^16 does not fit in half (max 65504), so the seeded
  // gradient is inf, the first step is skipped and the scale backs off to 2^15.
  train::DynamicLossScaler scaler;
  std::vector<bool> stepped;
  const auto losses = train_mixed(f16, master, scaler, ids, labels, 4, &stepped);
  CHECK(stepped == std::vector<bool>{false, true, true, true});
  CHECK(testing::max_abs_diff(before, master.params().front().value()) > 0);
  CHECK(scaler.scale() == 32768.0);
  CHECK(scaler.good_steps() == 3);
  CHECK(losses.back() < losses.front());
}

TEST_CASE("convert_ scales, rounds once and reports non-finite results", "[train][mixed]") {
  const auto src = Tensor<float>::from({1.0f, -3.0f, 0.1f, 1e4f, 2.5f, 7.0f}, {2, 3});
  auto halves = Tensor<half>::zeros({3, 2});
  auto floats = Tensor<float>::zeros({2, 3});
  // A transposed (strided) source; × 8 in double, then rounded to half once: 1e4 · 8 overflows.
  CHECK_FALSE(ops::convert_(std::vector{halves}, std::vector{src.transpose(0, 1)}, 8.0));
  CHECK(halves.at(2, 0) == half(0.8f));
  CHECK(halves.at(1, 1) == half(20.0f));
  CHECK(std::isinf(float(halves.at(0, 1))));
  CHECK(ops::convert_(std::vector{halves}, std::vector{src.transpose(0, 1)}));  // unscaled: all finite
  CHECK(halves.at(0, 1) == half(1e4f));
  // Back to float from half, unscaled by 1/8: the half rounding stays.
  CHECK(ops::convert_(std::vector{floats}, std::vector{Tensor<half>::from({half(8.0f)}, {1}).expand({2, 3})}, 0.125));
  CHECK(floats.to_vector() == std::vector<float>(6, 1.0f));
  CHECK_THROWS_AS(ops::convert_(std::vector{floats}, std::vector{src.transpose(0, 1)}), Error);  // shapes differ
  CHECK_THROWS_AS(ops::convert_(std::vector{floats.transpose(0, 1)}, std::vector{src.transpose(0, 1)}), Error);
  CHECK_THROWS_AS(ops::convert_(std::vector{floats}, std::vector<Tensor<float>>{Tensor<float>()}), Error);
  CHECK_THROWS_AS(ops::convert_(std::vector{floats, floats}, std::vector{src}), Error);
  // In place, from a view of the destination itself: the values as they were.
  const auto x = Tensor<float>::from({1, 5, 7}, {3});
  CHECK(ops::convert_(std::vector{x.slice(0, 1, 3)}, std::vector{x.slice(0, 0, 2)}, 2.0));
  CHECK(x.to_vector() == std::vector<float>{1, 2, 10});
}

TEST_CASE("the loss scaler follows GradScaler's rule", "[train][mixed]") {
  train::DynamicLossScaler s({.init_scale = 8, .growth_interval = 3});
  CHECK(s.update(false));
  CHECK(s.update(false));
  CHECK(!s.update(true));
  CHECK(s.scale() == 4);
  for (int i = 0; i < 3; ++i) CHECK(s.update(false));
  CHECK(s.scale() == 8);
  CHECK(s.good_steps() == 0);
  CHECK_THROWS_AS(train::DynamicLossScaler({.backoff_factor = 1.5}), Error);
}
