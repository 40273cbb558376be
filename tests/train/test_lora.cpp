// LoRA and DoRA adapters on llm::Decoder against peft (tests/fixtures/lora/*: the adapters as peft
// saved them, references in float64): logits, the causal-LM loss, every adapter gradient, merged
// logits and unmerging; the same adapter on a frozen bf16 base; and a peft-layout round trip.
#include <filesystem>
#include <map>
#include <string>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/train/finetune.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {
using Model = llm::Decoder<float>;
const std::string kBase = "lora/llama_r4/base";

// peft's in-model gradient name -> the name of the tensor in FineTune::adapters.
std::string adapter_name(std::string peft) {
  peft = peft.substr(std::string("grad.base_model.model.").size());
  for (const std::string part : {".lora_A", ".lora_B", ".lora_magnitude_vector"}) {
    const std::string from = part + ".default", at = peft.substr(0, peft.find(from));
    if (peft.find(from) != std::string::npos) return at + part + (part == ".lora_magnitude_vector" ? "" : ".weight");
  }
  return peft;
}

// Every Dense weight of `m` as a float tensor, by module name.
std::map<std::string, Tensor<float>> dense_weights(const Model& m) {
  std::map<std::string, Tensor<float>> out;
  m.for_each_dense([&](const std::string& name, const llm::Dense<float>& d) { out[name] = d.weight_value().clone(); });
  return out;
}

// The adapter's checks against its reference: logits, loss, every gradient, merge and unmerge.
void check_against_peft(const std::string& fixture) {
  Model model = Model::from_pretrained(testing::fixture_path(kBase));
  const auto base_weights = dense_weights(model);
  auto ft = train::load_peft_adapter(model, testing::fixture_path(fixture + "/adapter"), /*trainable=*/true);
  const testing::Fixture ref(fixture + "/reference.safetensors");
  const auto ids = ref.get<int64_t>("input_ids");

  const auto out = model.forward({.input_ids = ids});
  const double logits_err = rel_error(out.logits.value(), ref.get("logits"));
  const auto loss = llm::causal_lm_loss(out.logits, ref.get<int64_t>("labels"));
  const double loss_err = rel_error(loss.value(), ref.get("loss"));
  INFO("logits " << logits_err << " loss " << loss_err);
  CHECK(logits_err <= 1e-4);
  CHECK(loss_err <= 1e-4);

  loss.backward();
  const io::SafeTensorsFile names(testing::fixture_path(fixture + "/reference.safetensors"));
  size_t grads = 0;
  double worst = 0;
  for (const std::string& name : names.names()) {
    if (name.rfind("grad.", 0) != 0) continue;
    const auto& p = ft.adapters.get(adapter_name(name));
    REQUIRE(p.grad().defined());
    const double err = rel_error(p.grad(), ref.get(name));
    INFO(name << " rel err " << err);
    CHECK(err <= 1e-4);
    worst = std::max(worst, err);
    ++grads;
  }
  INFO("worst gradient rel err " << worst);
  CHECK(grads == ft.adapters.size());  // every adapter tensor has a reference, and only those train
  for (const auto& p : model.parameters().all()) CHECK_FALSE(p.grad().defined());

  autograd::NoGradGuard no_grad;
  train::merge_adapters(model);
  const double merged_err = rel_error(model.forward({.input_ids = ids}).logits.value(), ref.get("merged_logits"));
  INFO("merged logits " << merged_err);
  CHECK(merged_err <= 1e-4);
  train::unmerge_adapters(model);
  for (const auto& [name, w] : dense_weights(model)) {
    INFO(name);
    CHECK(rel_error(w, base_weights.at(name)) <= 1e-6);
  }
  CHECK(rel_error(model.forward({.input_ids = ids}).logits.value(), out.logits.value()) <= 1e-6);
}
}  // namespace

TEST_CASE("a peft LoRA adapter matches peft: logits, loss, gradients, merge", "[train][lora]") {
  check_against_peft("lora/llama_r4");
}

TEST_CASE("a peft DoRA adapter with rank and alpha patterns matches peft", "[train][lora]") {
  check_against_peft("lora/llama_dora_r4");
}

TEST_CASE("LoRA on a frozen bf16 base trains: adapter gradients match the float base", "[train][lora][bf16]") {
  const std::string fixture = GENERATE("lora/llama_r4", "lora/llama_dora_r4");
  INFO(fixture);
  const testing::Fixture ref(fixture + "/reference.safetensors");
  const auto ids = ref.get<int64_t>("input_ids"), labels = ref.get<int64_t>("labels");
  Model b16 = Model::from_pretrained(testing::fixture_path(kBase), {llm::Storage::bf16});
  // The float path over the same bf16-rounded matrices.
  Model rounded = Model::from_pretrained(testing::fixture_path(kBase));
  rounded.for_each_dense([](const std::string&, llm::Dense<float>& d) {
    d.set_weight_value(d.weight_value().to<bf16>().to<float>());
  });
  auto embed = rounded.parameters().get("model.embed_tokens.weight");
  embed.set_value(embed.value().to<bf16>().to<float>());

  auto ft16 = train::load_peft_adapter(b16, testing::fixture_path(fixture + "/adapter"), true);
  auto ftf = train::load_peft_adapter(rounded, testing::fixture_path(fixture + "/adapter"), true);
  llm::causal_lm_loss(b16.forward({.input_ids = ids}).logits, labels).backward();
  llm::causal_lm_loss(rounded.forward({.input_ids = ids}).logits, labels).backward();
  REQUIRE(ft16.adapters.size() == ftf.adapters.size());
  for (size_t i = 0; i < ftf.adapters.size(); ++i) {
    const auto& a = ft16.adapters.all()[i];
    const auto& f = ftf.adapters.all()[i];
    REQUIRE(a.grad().defined());
    INFO(a.name());
    CHECK(rel_error(a.grad(), f.grad()) <= 1e-4);  // same weights, float accumulation either way
  }
  // Against peft's float64 reference: within bf16 rounding of the base.
  const auto& q = ft16.adapters.get("model.layers.0.self_attn.q_proj.lora_B.weight");
  CHECK(rel_error(q.grad(), ref.get("grad.base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight")) <= 5e-2);
}

TEST_CASE("adapters created here round-trip through peft's layout", "[train][lora][io]") {
  namespace fs = std::filesystem;
  const bool dora = GENERATE(false, true);
  INFO((dora ? "dora" : "lora"));
  Model model = Model::from_pretrained(testing::fixture_path(kBase));
  train::FineTuneOptions o;
  o.mode = dora ? train::FineTuneMode::dora : train::FineTuneMode::lora;
  o.lora.r = 4;
  o.lora.lora_alpha = 16;
  o.lora.use_rslora = true;
  o.lora.target_regex = R"(model\.layers\.\d+\.(self_attn\.(q|v)_proj|mlp\.down_proj))";
  o.lora.rank_pattern = {{"down_proj", 2}};
  o.seed = 7;
  auto ft = train::prepare_finetune(model, o);
  // Stand-in for training: nonzero B, moved magnitudes.
  Rng rng(3);
  for (auto p : ft.adapters.all())
    if (p.name().find("lora_B") != std::string::npos) p.set_value(rng.normal<float>(p.shape(), 0.0, 0.2));
    else if (p.name().find("magnitude") != std::string::npos) p.set_value(ops::mul_scalar(p.value(), 1.1));
  const auto ids = Tensor<int64_t>::from({5, 9, 30, 2, 77, 101, 3}, {1, 7});
  autograd::NoGradGuard no_grad;
  const auto logits = model.forward({.input_ids = ids}).logits.value();

  const fs::path dir = testing::scratch_dir("lora_rt");
  train::save_peft_adapter(model, ft, dir.string());
  Model loaded = Model::from_pretrained(testing::fixture_path(kBase));
  auto back = train::load_peft_adapter(loaded, dir.string());
  CHECK(back.mode == o.mode);
  CHECK(back.lora.use_rslora);
  CHECK(back.lora.modules_to_save == std::vector<std::string>{"embed_tokens", "lm_head"});
  REQUIRE(back.adapters.size() == ft.adapters.size());
  for (const auto& p : ft.adapters.all()) CHECK(rel_error(back.adapters.get(p.name()).value(), p.value()) == 0);
  CHECK(rel_error(loaded.forward({.input_ids = ids}).logits.value(), logits) == 0);
  // rsLoRA scaling alpha / √r, with the per-module rank.
  loaded.for_each_dense([](const std::string& name, const llm::Dense<float>& d) {
    if (!d.adapter) return;
    INFO(name);
    CHECK(d.adapter->scaling == Approx(16.0 / std::sqrt(name.ends_with("down_proj") ? 2.0 : 4.0)));
  });
  fs::remove_all(dir);
}

TEST_CASE("DoRA's dropout form equals its folded form when nothing is dropped", "[train][lora]") {
  Model model = Model::from_pretrained(testing::fixture_path(kBase));
  auto ft = train::load_peft_adapter(model, testing::fixture_path("lora/llama_dora_r4/adapter"), true);
  llm::Dense<float>* dense = nullptr;
  model.for_each_dense([&](const std::string& name, llm::Dense<float>& d) {
    if (name == "model.layers.1.self_attn.o_proj") dense = &d;
  });
  REQUIRE((dense && dense->adapter && dense->adapter->dora()));
  const autograd::Variable<float> x(Rng(4).normal<float>({2, 3, 64}), true);
  const autograd::Variable<float> same(x.value(), false);  // another Variable: the two-matmul form
  auto base = [&](const autograd::Variable<float>& v, bool b) { return dense->base(v, b); };
  auto weight = [&] { return dense->weight_value(); };
  const auto folded = (*dense)(x);
  const auto split = dense->adapter->apply(x, same, base, weight, dense->bias);
  CHECK(rel_error(split.value(), folded.value()) <= 1e-6);
  autograd::sum(folded).backward();
  const auto m = ft.adapters.get("model.layers.1.self_attn.o_proj.lora_magnitude_vector");
  const Tensor<float> g_folded = m.grad().clone();
  ft.adapters.zero_grad();
  autograd::sum(split).backward();
  CHECK(rel_error(m.grad(), g_folded) <= 1e-6);
}

TEST_CASE("adapter errors name the module", "[train][lora][errors]") {
  namespace fs = std::filesystem;
  Model model = Model::from_pretrained(testing::fixture_path(kBase));
  auto ft = train::load_peft_adapter(model, testing::fixture_path("lora/llama_r4/adapter"));
  // A second adapter on the same modules.
  CHECK_THROWS_WITH(train::load_peft_adapter(model, testing::fixture_path("lora/llama_r4/adapter")),
                    Catch::Contains("already has an adapter"));
  // An adapter for a module this decoder does not have.
  const fs::path dir = testing::scratch_dir("lora_bad");
  io::Adapter a = io::load_adapter(testing::fixture_path("lora/llama_r4/adapter"));
  a.modules["model.layers.7.self_attn.q_proj"] = a.modules.begin()->second;
  io::save_adapter(a, dir.string());
  Model fresh = Model::from_pretrained(testing::fixture_path(kBase));
  CHECK_THROWS_WITH(train::load_peft_adapter(fresh, dir.string()), Catch::Contains("model.layers.7.self_attn.q_proj"));
  fs::remove_all(dir);
  // Embeddings in bf16 cannot train.
  Model b16 = Model::from_pretrained(testing::fixture_path(kBase), {llm::Storage::bf16});
  train::FineTuneOptions o;
  o.mode = train::FineTuneMode::lora;
  CHECK_THROWS_WITH(train::prepare_finetune(b16, o), Catch::Contains("embed_tokens"));
  o.lora.target_modules = {"no_such_proj"};
  o.train_embeddings = false;
  CHECK_THROWS_WITH(train::prepare_finetune(b16, o), Catch::Contains("match no Linear"));
}
