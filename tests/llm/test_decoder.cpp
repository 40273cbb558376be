// llm::Decoder against the transformers fixtures of the five families (tests/fixtures/llm/*:
// tiny random models, references computed in float64): logits, every hidden state, a left-padded
// batch, the KV cache against the full forward, bf16 weight storage, and bad input.
#include <filesystem>
#include <string>
#include <vector>

#include "ctmllm/llm/decoder.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"
#include "support/llm_fixtures.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {
using Model = llm::Decoder<float>;

// Rows r, positions [s0, s1) of a [B, S, V] tensor.
Tensor<float> rows(const Tensor<float>& t, int64_t r, int64_t s0, int64_t s1) {
  return t.select(0, r).slice(0, s0, s1).clone();
}
}  // namespace

TEST_CASE("decoder logits and hidden states match transformers for every family", "[llm]") {
  const std::string family = GENERATE("llama", "mistral", "phi3", "qwen2", "gemma");
  INFO(family);
  const Model model = testing::load_llm_fixture(family);
  const auto ref = testing::llm_reference(family);
  autograd::NoGradGuard no_grad;
  const auto out = model.forward({.input_ids = ref.get<int64_t>("input_ids"), .output_hidden_states = true});
  const double logits_err = rel_error(out.logits.value(), ref.get("logits"));
  INFO("logits rel err " << logits_err);
  CHECK(logits_err <= 1e-4);
  REQUIRE(out.hidden_states.size() == size_t(model.config().num_hidden_layers + 1));
  for (size_t i = 0; i < out.hidden_states.size(); ++i) {
    const double err = rel_error(out.hidden_states[i].value(), ref.get("hidden." + std::to_string(i)));
    INFO("hidden." << i << " rel err " << err);
    CHECK(err <= 1e-4);
  }
}

TEST_CASE("inference runs q k v and gate up as one product over their packed weights", "[llm]") {
  const std::string family = GENERATE("llama", "qwen2", "gemma");  // qwen2: q, k, v biases packed too
  INFO(family);
  Model model = testing::load_llm_fixture(family);
  const auto& params = model.parameters();
  auto weight = [&](const std::string& name) { return params.get("model.layers.0." + name).value(); };
  const auto q = weight("self_attn.q_proj.weight"), k = weight("self_attn.k_proj.weight");
  CHECK(k.data() == q.data() + q.numel());
  CHECK(weight("self_attn.v_proj.weight").data() == k.data() + k.numel());
  const auto gate = weight("mlp.gate_proj.weight");
  CHECK(weight("mlp.up_proj.weight").data() == gate.data() + gate.numel());
  if (family == "qwen2") {
    const auto qb = weight("self_attn.q_proj.bias");
    CHECK(weight("self_attn.k_proj.bias").data() == qb.data() + qb.numel());
  }
  // Recorded (the parameters train): one product per layer. Not recorded: the packed product.
  const auto ids = testing::llm_reference(family).get<int64_t>("input_ids");
  auto logits = [&](bool record) {
    if (record) return model.forward({.input_ids = ids}).logits.value();
    autograd::NoGradGuard no_grad;
    return model.forward({.input_ids = ids}).logits.value();
  };
  const Tensor<float> recorded = logits(true);
  CHECK(rel_error(logits(false), recorded) <= 1e-6);
  // A replaced weight ends the packing's use: inference then sees the new value.
  autograd::Variable<float> v1 = params.get("model.layers.1.self_attn.v_proj.weight");
  v1.set_value(ops::mul_scalar(v1.value(), -2.0));
  const Tensor<float> changed = logits(true);
  CHECK(rel_error(changed, recorded) > 1e-3);
  CHECK(rel_error(logits(false), changed) <= 1e-6);
}

TEST_CASE("a left-padded batch gives each row's unpadded logits", "[llm]") {
  const std::string family = GENERATE("llama", "mistral", "phi3", "qwen2", "gemma");
  INFO(family);
  const Model model = testing::load_llm_fixture(family);
  const auto ref = testing::llm_reference(family);
  const auto ids = ref.get<int64_t>("padded_input_ids"), mask = ref.get<int64_t>("padded_attention_mask");
  const auto expect = ref.get("padded_logits");
  autograd::NoGradGuard no_grad;
  // Positions given explicitly (the fixture's), and derived from the mask: the same.
  for (const bool given : {true, false}) {
    INFO("position_ids given: " << given);
    const auto out =
        model.forward({.input_ids = ids,
                       .attention_mask = mask,
                       .position_ids = given ? ref.get<int64_t>("padded_position_ids") : Tensor<int64_t>()});
    const Tensor<float> logits = out.logits.value();
    CHECK(rel_error(rows(logits, 0, 0, 9), rows(expect, 0, 0, 9)) <= 1e-4);
    CHECK(rel_error(rows(logits, 1, 4, 9), rows(expect, 1, 4, 9)) <= 1e-4);  // row 1: 4 pads on the left
  }
}

TEST_CASE("bf16 weight storage matches the float path on the same rounded weights", "[llm][bf16]") {
  const std::string family = GENERATE("llama", "phi3", "qwen2", "gemma");
  INFO(family);
  const Model f32 = testing::load_llm_fixture(family), b16 = testing::load_llm_fixture(family, llm::Storage::bf16);
  CHECK(b16.storage() == llm::Storage::bf16);
  const auto ref = testing::llm_reference(family);
  const auto ids = ref.get<int64_t>("input_ids");
  autograd::NoGradGuard no_grad;
  // Against the float64 reference: the error bf16 weights cause (8-bit mantissas).
  const auto logits = b16.forward({.input_ids = ids}).logits.value();
  const double err = rel_error(logits, ref.get("logits"));
  INFO("bf16 storage vs float64 reference: " << err);
  CHECK(err <= 3e-2);
  CHECK(err > 1e-4);  // the weights really were rounded
  // Against the float path with its matrices rounded to bf16 the same way: only the summation order differs.
  Model rounded = testing::load_llm_fixture(family);
  for (const auto& p : rounded.parameters().all())
    if (p.rank() == 2) p.value().copy_from(p.value().to<bf16>());
  const double same = rel_error(logits, rounded.forward({.input_ids = ids}).logits.value());
  INFO("bf16 storage vs float path on rounded weights: " << same);
  CHECK(same <= 1e-5);
}

TEST_CASE("bf16 and float checkpoints load into either storage", "[llm][bf16]") {
  // The llama fixture re-saved with bf16 tensors: zero-copy into bf16 storage, converted into float.
  namespace fs = std::filesystem;
  const fs::path dir = testing::scratch_dir("llm_bf16");
  fs::create_directories(dir);
  fs::copy_file(testing::fixture_path("llm/llama/config.json"), dir / "config.json",
                fs::copy_options::overwrite_existing);
  const io::SafeTensorsFile src(testing::fixture_path("llm/llama/model.safetensors"));
  io::SafeTensorsWriter w;
  for (const auto& name : src.names()) w.add(name, src.get<float>(name).to<bf16>());
  w.write((dir / "model.safetensors").string());
  const auto ids = testing::llm_reference("llama").get<int64_t>("input_ids");
  autograd::NoGradGuard no_grad;
  const auto a = Model::from_pretrained(dir.string(), {llm::Storage::bf16}).forward({.input_ids = ids}).logits.value();
  const auto b = Model::from_pretrained(dir.string()).forward({.input_ids = ids}).logits.value();
  CHECK(rel_error(a, b) <= 1e-5);
  fs::remove_all(dir);
}

TEST_CASE("decoder input errors are ctmllm::Error", "[llm][errors]") {
  const Model model = testing::load_llm_fixture("llama"), b16 = testing::load_llm_fixture("llama", llm::Storage::bf16);
  autograd::NoGradGuard no_grad;
  const auto bad_id = Tensor<int64_t>::from({5, 384, 7}, {1, 3});  // vocab is 384
  CHECK_THROWS_AS(model.forward({.input_ids = bad_id}), Error);
  CHECK_THROWS_AS(b16.forward({.input_ids = bad_id}), Error);
  CHECK_THROWS_AS(model.forward({.input_ids = Tensor<int64_t>::from({-1}, {1, 1})}), Error);
  const auto ids = Tensor<int64_t>::from({5, 6, 7}, {1, 3});
  CHECK_THROWS_AS(model.forward({}), Error);  // neither ids nor embeddings
  CHECK_THROWS_AS(model.forward({.input_ids = ids, .inputs_embeds = model.embed(ids)}), Error);  // both
  CHECK_THROWS_AS(model.forward({.inputs_embeds = autograd::Variable<float>(Tensor<float>::zeros({1, 3, 63}))}), Error);
  CHECK_THROWS_AS(model.forward({.input_ids = ids, .attention_mask = Tensor<int64_t>::from({1, 2, 1}, {1, 3})}), Error);
  CHECK_THROWS_AS(model.forward({.input_ids = ids, .attention_mask = Tensor<int64_t>::ones({1, 4})}), Error);
  CHECK_THROWS_AS(model.forward({.input_ids = ids, .position_ids = Tensor<int64_t>::zeros({2, 3})}), Error);
  // A sequence longer than the cache, a cache of another batch size.
  auto cache = model.make_cache(1, 4);
  CHECK_NOTHROW(model.forward({.input_ids = ids, .cache = &cache}));
  CHECK_THROWS_AS(model.forward({.input_ids = ids, .cache = &cache}), Error);
  CHECK(cache.length() == 3);  // the failed call stored nothing
  auto cache2 = model.make_cache(2, 8);
  CHECK_THROWS_AS(model.forward({.input_ids = ids, .cache = &cache2}), Error);
}

TEST_CASE("a KV cache needs inference mode", "[llm][errors]") {
  const Model model = testing::load_llm_fixture("llama"), b16 = testing::load_llm_fixture("llama", llm::Storage::bf16);
  const auto ids = Tensor<int64_t>::from({5, 6, 7}, {1, 3});
  auto cache = model.make_cache(1, 8);
  CHECK_THROWS_AS(model.forward({.input_ids = ids, .cache = &cache}), Error);  // grad mode is on
  const autograd::Variable<float> visual(Tensor<float>::zeros({1, 3, 64}), /*requires_grad=*/true);
  // Frozen bf16 weights pass gradients to their inputs (checked in test_lora.cpp).
  CHECK_NOTHROW(b16.forward({.inputs_embeds = visual}));
  CHECK_NOTHROW(model.forward({.inputs_embeds = visual}));
}

TEST_CASE("config and checkpoint errors name what is wrong", "[llm][errors]") {
  namespace fs = std::filesystem;
  const fs::path dir = testing::scratch_dir("llm_missing");
  fs::create_directories(dir);
  fs::copy_file(testing::fixture_path("llm/qwen2/config.json"), dir / "config.json",
                fs::copy_options::overwrite_existing);
  const io::SafeTensorsFile src(testing::fixture_path("llm/qwen2/model.safetensors"));
  io::SafeTensorsWriter w;
  for (const auto& name : src.names())
    if (name != "model.layers.1.self_attn.k_proj.bias") w.add(name, src.get<float>(name));
  w.write((dir / "model.safetensors").string());
  try {
    (void)Model::from_pretrained(dir.string());
    FAIL("a missing weight must be an Error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("model.layers.1.self_attn.k_proj.bias"));
  }
  // A family the decoder does not implement.
  io::LlmConfig cfg = io::load_llm_config(testing::fixture_path("llm/gemma"));
  cfg.model_type = "gemma2";
  CHECK_THROWS_AS(Model(cfg, llm::RandomWeights(0)), Error);
  fs::remove_all(dir);
}
