// A user-defined projector in place of the built-in one (Model::set_projector): token counts,
// parameter names, training reaches its weights, the save/load round trip, and its errors.
#include <filesystem>
#include <memory>
#include <string>

#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/mllm/prompt.hpp"
#include "ctmllm/train/adamw.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/files_and_errors.hpp"
#include "support/tiny_mllm.hpp"

using namespace ctmllm;
using Var = autograd::Variable<float>;

namespace {

// Per-token Linear(E -> H), then the mean of each run of N / M consecutive tokens: M tokens.
// `extra_tokens` makes it break its contract (the wrong-shape test).
class MeanPoolProjector : public projector::CustomProjector<float> {
 public:
  MeanPoolProjector(int64_t in, int64_t out, int64_t tokens, std::string name = "mean_pool", int64_t extra_tokens = 0)
      : fc_(params_, "fc", in, out), tokens_(tokens), name_(std::move(name)), extra_(extra_tokens) {}

  std::string name() const override { return name_; }
  int64_t num_tokens() const override { return tokens_; }
  const autograd::Parameters<float>& parameters() const override { return params_; }
  Var operator()(const Var& tokens, const std::vector<Var>&) const override {
    const int64_t B = tokens.size(0), N = tokens.size(1), M = tokens_ + extra_;
    const Var h = fc_(tokens);  // [B, N, H]
    return autograd::mean(autograd::reshape(h, {B, M, N / M, h.size(2)}), {2});
  }
  void init(Rng& rng) const { fc_.init(rng); }

 private:
  autograd::Parameters<float> params_;
  nn::Linear<float> fc_;
  int64_t tokens_;
  std::string name_;
  int64_t extra_;
};

std::shared_ptr<MeanPoolProjector> pool_projector(uint64_t seed, std::string name = "mean_pool", int64_t extra = 0) {
  auto p = std::make_shared<MeanPoolProjector>(24, 32, 4, std::move(name), extra);
  Rng rng(seed);
  p->init(rng);
  return p;
}

mllm::MllmInput<float> one_case(const mllm::Model<float>& model, uint64_t seed) {
  Rng rng(seed);
  const auto seq = mllm::training_sequence(model, mllm::region_messages(model, "chest"), "The lungs are clear.");
  const mllm::TokenBatch b = mllm::collate({seq}, mllm::SpecialIds::of(model).pad);
  return {.input_ids = b.input_ids, .ct = rng.normal<float>({1, 1, 16, 32, 32}), .labels = b.labels};
}

}  // namespace

TEST_CASE("custom projector: token count, parameter names, only it trains", "[mllm]") {
  mllm::Model<float> model = testing::tiny_mllm(false);
  const int64_t builtin_tokens = model.config().visual_tokens();
  const auto proj = pool_projector(1);
  model.set_projector(proj);
  CHECK(builtin_tokens != 4);
  CHECK(model.config().visual_tokens() == 4);
  CHECK(model.config().to_json()["custom_projector"] == nlohmann::json{{"name", "mean_pool"}, {"num_tokens", 4}});
  CHECK(model.parameters().contains("projector.fc.weight"));
  CHECK(model.parameters().contains("projector.fc.bias"));
  CHECK(model.parameters().size() == model.vision().parameters().size() + 2 + model.llm().parameters().size());
  CHECK_THROWS_AS(model.projector(), Error);

  for (Var p : model.parameters().all()) p.set_requires_grad(false);
  for (Var p : proj->parameters().all()) p.set_requires_grad(true);
  train::AdamW<float> opt(model.parameters().trainable(), {.lr = 1e-2, .weight_decay = 0});
  const auto in = one_case(model, 7);
  double first = 0, last = 0;
  for (int step = 0; step < 4; ++step) {
    opt.zero_grad();
    const auto out = model.forward(in);
    out.loss.backward();
    REQUIRE(out.loss.value().data()[0] == out.loss.value().data()[0]);
    if (step == 0) {
      for (const Var& p : proj->parameters().all())
        CHECK(testing::max_abs_diff(p.grad(), Tensor<float>::zeros(p.shape())) > 0);
      first = out.loss.value().data()[0];
    }
    last = out.loss.value().data()[0];
    opt.step();
  }
  CHECK(last < first);
}

TEST_CASE("custom projector: save and load round trip", "[mllm]") {
  mllm::Model<float> model = testing::tiny_mllm(false);
  model.set_projector(pool_projector(2));
  const std::string dir = testing::scratch_dir("custom_projector");
  model.save_pretrained(dir);

  // Attached again (a module of the same kind, other weights) and loaded: bit-identical.
  const auto reloaded = mllm::Model<float>::from_pretrained(dir, pool_projector(99));
  CHECK(reloaded.config().visual_tokens() == 4);
  for (const char* name : {"fc.weight", "fc.bias"})
    CHECK(testing::max_abs_diff(reloaded.custom_projector().parameters().get(name).value(),
                                model.custom_projector().parameters().get(name).value()) == 0);
  Rng rng(3);
  const auto ct = rng.normal<float>({1, 1, 16, 32, 32});
  CHECK(testing::max_abs_diff(reloaded.visual_tokens(ct).value(), model.visual_tokens(ct).value()) == 0);

  // Without the module the folder loads, but encodes nothing; a module of another name is refused.
  const auto bare = mllm::Model<float>::from_pretrained(dir);
  CHECK(bare.config().visual_tokens() == 4);
  CHECK_FALSE(bare.parameters().contains("projector.fc.weight"));
  CHECK_THROWS_AS(bare.visual_tokens(ct), Error);
  CHECK_THROWS_AS(mllm::Model<float>::from_pretrained(dir, pool_projector(2, "other")), Error);
  CHECK_THROWS_AS(mllm::Model<float>::from_pretrained(dir, nullptr), Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("custom projector: errors", "[mllm]") {
  mllm::Model<float> model = testing::tiny_mllm(false);
  CHECK_THROWS_AS(model.set_projector(nullptr), Error);
  model.set_projector(pool_projector(4, "too_many", /*extra=*/4));  // says 4 tokens, gives 8
  Rng rng(5);
  CHECK_THROWS_WITH(model.visual_tokens(rng.normal<float>({1, 1, 16, 32, 32})),
                    Catch::Contains("custom projector 'too_many' must give [1, 4, 32]"));

  // A folder saved with the built-in projector takes no custom one at load.
  const std::string dir = testing::scratch_dir("builtin_projector");
  testing::tiny_mllm(false).save_pretrained(dir);
  CHECK_THROWS_AS(mllm::Model<float>::from_pretrained(dir, pool_projector(6)), Error);
  std::filesystem::remove_all(dir);
}
