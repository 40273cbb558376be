// Every shipped fixture through the fixture runner (the code `ctmllm_fixture` runs): each output it
// writes matches the reference key of the same name — floats <= 1e-4 relative (the AdamW trajectory,
// losses, norms and final weights, <= 1e-5), token ids exactly — and every reference output of the
// kind is produced.
#include <cstdio>
#include <functional>
#include <set>
#include <string>

#include "support/fixture_runner.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;

namespace {
using Tolerance = std::function<double(const std::string& key)>;

void check_against_reference(const std::string& kind, const std::string& name, const std::set<std::string>& expected,
                             const Tolerance& tolerance = [](const std::string&) { return 1e-4; }) {
  const std::string dir = testing::fixture_path(kind + "/" + name);
  const auto out = fixture_runner::run(kind == "vision" ? (name == "vit3d" ? "vision" : "projector") : kind, dir);
  const io::SafeTensorsFile ref(dir + "/reference.safetensors");
  std::set<std::string> produced;
  for (const auto& [key, t] : out.floats) {
    INFO(kind << "/" << name << " " << key);
    REQUIRE(ref.contains(key));
    const double e = testing::rel_error(t, ref.get<float>(key));
    std::printf("fixture %s/%s %-60s rel error %.3g\n", kind.c_str(), name.c_str(), key.c_str(), e);
    CHECK(e <= tolerance(key));
    produced.insert(key);
  }
  for (const auto& [key, t] : out.ints) {
    INFO(kind << "/" << name << " " << key);
    REQUIRE(ref.contains(key));
    CHECK(t.to_vector() == ref.get<int64_t>(key).to_vector());
    produced.insert(key);
  }
  for (const std::string& key : expected) {
    INFO("expected output " << key);
    CHECK(produced.count(key) == 1);
  }
}
}  // namespace

TEST_CASE("fixture runner: every LLM family", "[fixtures][llm]") {
  const std::string family = GENERATE("llama", "mistral", "phi3", "qwen2", "gemma");
  check_against_reference("llm", family, {"logits", "padded_logits", "greedy_output"});
}

TEST_CASE("fixture runner: vision encoder", "[fixtures][vision]") {
  check_against_reference("vision", "vit3d",
                          {"output", "cls", "output_32x64x48_size", "output_32x64x48_scale", "output_native_scale"});
}

TEST_CASE("fixture runner: projectors", "[fixtures][projector]") {
  const std::string projector = GENERATE("projector_spp", "projector_mlp_mix", "projector_linear", "projector_token_packer");
  check_against_reference("vision", projector, {"output"});
}

TEST_CASE("fixture runner: the tiny MLLM, CT and CT + mask, frozen-LLM gradients", "[fixtures][mllm]") {
  const io::SafeTensorsFile ref(testing::fixture_path("mllm/tiny/reference.safetensors"));
  std::set<std::string> expected;
  for (const std::string& key : ref.names())
    if (key.starts_with("ct.") || key.starts_with("ct_mask.")) expected.insert(key);
  for (const char* input : {"ct.input_ids", "ct.labels", "ct_mask.input_ids", "ct_mask.labels"}) expected.erase(input);
  check_against_reference("mllm", "tiny", expected);
}

// The reference's gradient keys (grad.*, grad0.*) and the other outputs the kind writes.
std::set<std::string> expected_outputs(const std::string& fixture, const std::set<std::string>& others) {
  const io::SafeTensorsFile ref(testing::fixture_path(fixture + "/reference.safetensors"));
  std::set<std::string> expected = others;
  for (const std::string& key : ref.names())
    if (key.starts_with("grad.") || key.starts_with("grad0.") || key.starts_with("final.")) expected.insert(key);
  return expected;
}

TEST_CASE("fixture runner: peft LoRA and DoRA adapters, logits, loss, gradients, merged logits", "[fixtures][lora]") {
  const std::string name = GENERATE("llama_r4", "llama_dora_r4");
  check_against_reference("lora", name, expected_outputs("lora/" + name, {"logits", "loss", "merged_logits"}));
}

TEST_CASE("fixture runner: AdamW steps with clipping follow torch", "[fixtures][train]") {
  check_against_reference("train", "llama_adamw",
                          expected_outputs("train/llama_adamw", {"loss.0", "loss.1", "loss.2", "grad_norm.0", "grad_norm.1",
                                                                 "grad_norm.2"}),
                          [](const std::string& key) { return key.starts_with("grad0.") ? 1e-4 : 1e-5; });
}
