// The paper's fine-tuning modes on llm::Decoder: exactly the expected tensors train and only they
// receive gradients; new adapters leave the model unchanged; adapter dropout is seeded.
#include <set>
#include <string>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/train/finetune.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {
using Model = llm::Decoder<float>;
Model base() { return Model::from_pretrained(testing::fixture_path("lora/llama_r4/base")); }
const auto kIds = Tensor<int64_t>::from({5, 9, 30, 2, 77, 101, 3, 250, 17, 44}, {2, 5});

std::set<std::string> names(const std::vector<autograd::Variable<float>>& vars) {
  std::set<std::string> out;
  for (const auto& v : vars) out.insert(v.name());
  return out;
}
// Runs forward + loss + backward; returns the names of every tensor that received a gradient.
std::set<std::string> with_grad(Model& m, const train::FineTune<float>& ft) {
  llm::causal_lm_loss(m.forward({.input_ids = kIds}).logits, kIds).backward();
  std::set<std::string> out;
  for (const auto& p : m.parameters().all())
    if (p.grad().defined()) out.insert(p.name());
  for (const auto& p : ft.adapters.all())
    if (p.grad().defined()) out.insert(p.name());
  return out;
}
}  // namespace

TEST_CASE("frozen mode trains embed_tokens and lm_head only", "[train][finetune]") {
  Model m = base();
  auto ft = train::prepare_finetune(m, {.mode = train::FineTuneMode::frozen});
  const std::set<std::string> expect{"model.embed_tokens.weight", "lm_head.weight"};
  CHECK(names(train::trainable_parameters(m, ft)) == expect);
  CHECK(with_grad(m, ft) == expect);
}

TEST_CASE("full mode trains every parameter", "[train][finetune]") {
  Model m = base();
  auto ft = train::prepare_finetune(m, {.mode = train::FineTuneMode::full});
  CHECK(names(train::trainable_parameters(m, ft)) == names(m.parameters().all()));
  CHECK(with_grad(m, ft) == names(m.parameters().all()));
}

TEST_CASE("lora and dora modes put adapters on every Linear of the blocks", "[train][finetune]") {
  const auto mode = GENERATE(train::FineTuneMode::lora, train::FineTuneMode::dora);
  const bool embeddings = GENERATE(true, false);
  INFO(train::mode_name(mode) << (embeddings ? " with" : " without") << " embeddings");
  Model m = base();
  autograd::Variable<float> before;
  {
    autograd::NoGradGuard no_grad;
    before = m.forward({.input_ids = kIds}).logits;
  }
  auto ft = train::prepare_finetune(m, {.mode = mode, .train_embeddings = embeddings, .seed = 1});
  // The paper's setting: r 16, alpha 32, dropout 0.05 on all 7 projections of both layers.
  CHECK(ft.lora.target_modules ==
        std::vector<std::string>{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"});
  std::set<std::string> expect;
  m.for_each_dense([&](const std::string& name, const llm::Dense<float>& d) {
    if (name == "lm_head") {
      CHECK_FALSE(d.adapter);
      return;
    }
    REQUIRE(d.adapter);
    CHECK(d.adapter->rank() == 16);
    CHECK(d.adapter->scaling == 2.0);
    CHECK(d.adapter->dropout == 0.05);
    expect.insert({name + ".lora_A.weight", name + ".lora_B.weight"});
    if (mode == train::FineTuneMode::dora) expect.insert(name + ".lora_magnitude_vector");
  });
  CHECK(expect.size() == size_t(14 * (mode == train::FineTuneMode::dora ? 3 : 2)));
  if (embeddings) expect.insert({"model.embed_tokens.weight", "lm_head.weight"});
  CHECK(names(train::trainable_parameters(m, ft)) == expect);
  {
    // B = 0 and m = ‖W‖: a new adapter does not change the model.
    autograd::NoGradGuard no_grad;
    CHECK(rel_error(m.forward({.input_ids = kIds}).logits.value(), before.value()) <= 1e-6);
  }
  CHECK(with_grad(m, ft) == expect);
}

TEST_CASE("adapter dropout is seeded and off outside training", "[train][finetune]") {
  auto loss_of = [](uint64_t seed, bool training) {
    Model m = base();
    auto ft = train::prepare_finetune(m, {.mode = train::FineTuneMode::lora, .seed = 2});
    *ft.dropout_rng = Rng(seed, 0);
    for (auto p : ft.adapters.all())  // nonzero B so that dropout on the adapter input shows
      if (p.name().ends_with("lora_B.weight")) p.set_value(Rng(9).normal<float>(p.shape(), 0.0, 0.5));
    train::set_adapter_training(m, training);
    return llm::causal_lm_loss(m.forward({.input_ids = kIds}).logits, kIds).value().item();
  };
  CHECK(loss_of(1, true) == loss_of(1, true));
  CHECK(loss_of(1, true) != loss_of(2, true));
  CHECK(loss_of(1, false) == loss_of(2, false));
  CHECK(loss_of(1, false) != loss_of(1, true));
}

TEST_CASE("fine-tuning modes refuse what they cannot train", "[train][finetune][errors]") {
  Model b16 = Model::from_pretrained(testing::fixture_path("lora/llama_r4/base"), {llm::Storage::bf16});
  CHECK_THROWS_WITH(train::prepare_finetune(b16, {.mode = train::FineTuneMode::full}), Catch::Contains("bf16"));
  CHECK_THROWS_WITH(train::prepare_finetune(b16, {.mode = train::FineTuneMode::frozen}), Catch::Contains("embed_tokens"));
  Model m = base();
  train::FineTuneOptions o{.mode = train::FineTuneMode::lora};
  o.lora.use_dora = true;
  CHECK_THROWS_WITH(train::prepare_finetune(m, o), Catch::Contains("dora"));
  auto ft = train::prepare_finetune(m, {.mode = train::FineTuneMode::frozen});
  CHECK_THROWS_WITH(train::save_peft_adapter(m, ft, "/nonexistent"), Catch::Contains("no adapter"));
  // LoRA on a bf16 base without embeddings: the 24 GiB setting.
  auto lora16 = train::prepare_finetune(b16, {.mode = train::FineTuneMode::lora, .train_embeddings = false});
  CHECK(b16.parameters().trainable().empty());
  CHECK(with_grad(b16, lora16) == names(lora16.adapters.all()));
}
