// PEFT adapters: the peft-saved LoRA fixture (llama r=4) and a DoRA + rsLoRA adapter with rank and
// alpha patterns, regex targets and modules_to_save; write -> read round trips that reproduce
// peft's files exactly; bad adapters.

#include <filesystem>
#include <fstream>
#include <functional>

#include "ctmllm/io/peft.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::message_of;
using testing::scratch_dir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
// Writes `a`, reads it back, and checks that both files match peft's originals in `fixture`:
// the same config keys and values, the same tensor names, bit-identical float32 values.
void check_round_trip(const std::string& fixture, const std::string& name) {
  const io::Adapter a = io::load_adapter(fixture);
  const std::string out = scratch_dir(name);
  io::save_adapter(a, out);
  CHECK(io::read_json_file(out + "/adapter_config.json") == io::read_json_file(fixture + "/adapter_config.json"));
  const io::SafeTensorsFile ref(fixture + "/adapter_model.safetensors"), got(out + "/adapter_model.safetensors");
  REQUIRE(got.names() == ref.names());
  for (const std::string& n : ref.names()) {
    INFO(n);
    CHECK(got.info(n).dtype == ref.info(n).dtype);
    CHECK(got.info(n).shape == ref.info(n).shape);
    CHECK(std::equal(got.raw(n).begin(), got.raw(n).end(), ref.raw(n).begin(), ref.raw(n).end()));
  }
  const io::Adapter b = io::load_adapter(out);
  CHECK(b.modules.size() == a.modules.size());
  CHECK(b.overrides.size() == a.overrides.size());
  fs::remove_all(out);
}
// A copy of the llama_r4 adapter with `edit` applied to its config.
std::string adapter_with_config(const std::string& name, const std::function<void(json&)>& edit) {
  const std::string d = scratch_dir(name);
  const std::string src = testing::fixture_path("lora/llama_r4/adapter");
  fs::create_directories(d);
  fs::copy_file(src + "/adapter_model.safetensors", d + "/adapter_model.safetensors");
  json j = io::read_json_file(src + "/adapter_config.json");
  edit(j);
  std::ofstream(d + "/adapter_config.json") << j.dump();
  return d;
}
}  // namespace

TEST_CASE("reads the LoRA adapter peft saved", "[io][peft]") {
  const io::Adapter a = io::load_adapter(testing::fixture_path("lora/llama_r4/adapter"));
  const io::LoraConfig& c = a.config;
  CHECK(c.r == 4);
  CHECK(c.lora_alpha == 8);
  CHECK(c.lora_dropout == 0);
  CHECK(c.target_modules.size() == 7);
  CHECK(c.target_regex.empty());
  CHECK_FALSE(c.use_dora);
  CHECK_FALSE(c.use_rslora);
  CHECK(c.bias == "none");
  CHECK(c.base_model_name_or_path.empty());
  CHECK(c.modules_to_save.empty());
  CHECK(c.extra.at("peft_version") == "0.21.0");
  CHECK(a.modules.size() == 14);  // 7 projections x 2 layers
  CHECK(a.overrides.empty());
  const io::LoraWeights& q = a.modules.at("model.layers.0.self_attn.q_proj");
  CHECK(q.A.shape() == Shape{4, 64});
  CHECK(q.B.shape() == Shape{64, 4});
  CHECK_FALSE(q.magnitude.defined());
  CHECK(q.scaling == 2.0);
  CHECK(a.modules.at("model.layers.1.mlp.down_proj").A.shape() == Shape{4, 160});
  CHECK(a.modules.at("model.layers.1.self_attn.k_proj").B.shape() == Shape{32, 4});
  const io::SafeTensorsFile st(testing::fixture_path("lora/llama_r4/adapter/adapter_model.safetensors"));
  CHECK(q.B.to_vector() == st.get<float>("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight").to_vector());
  CHECK(c.targets("model.layers.0.self_attn.q_proj"));
  CHECK(c.targets("model.layers.1.mlp.down_proj"));
  CHECK_FALSE(c.targets("model.layers.0.input_layernorm"));
  CHECK_FALSE(c.targets("model.layers.0.self_attn.xq_proj"));  // suffixes match whole name parts only
}

TEST_CASE("reads a DoRA + rsLoRA adapter with patterns and modules_to_save", "[io][peft]") {
  const io::Adapter a = io::load_adapter(testing::fixture_path("io/peft/dora"));
  const io::LoraConfig& c = a.config;
  CHECK(c.use_dora);
  CHECK(c.use_rslora);
  CHECK(c.lora_dropout == 0.05);
  CHECK(c.target_regex == R"(.*\.(q_proj|v_proj))");
  CHECK(c.rank_pattern.at("v_proj") == 2);
  CHECK(c.alpha_pattern.at("layers.1.self_attn.q_proj") == 3);
  CHECK(c.modules_to_save == std::vector<std::string>{"norm"});
  REQUIRE(a.modules.size() == 4);
  const auto& q0 = a.modules.at("model.layers.0.self_attn.q_proj");
  const auto& q1 = a.modules.at("model.layers.1.self_attn.q_proj");
  const auto& v0 = a.modules.at("model.layers.0.self_attn.v_proj");
  CHECK(q0.magnitude.shape() == Shape{64});
  CHECK(v0.A.shape() == Shape{2, 64});
  CHECK(v0.B.shape() == Shape{32, 2});
  CHECK(v0.magnitude.shape() == Shape{32});
  CHECK(q0.scaling == Catch::Approx(8.0 / 2.0));           // alpha / sqrt(r)
  CHECK(q1.scaling == Catch::Approx(3.0 / 2.0));           // alpha_pattern
  CHECK(v0.scaling == Catch::Approx(8.0 / std::sqrt(2.0)));  // rank_pattern
  // peft matches modules_to_save by plain suffix, so "norm" also caught the layer norms.
  CHECK(a.overrides.size() == 5);
  CHECK(a.overrides.at("model.norm.weight").shape() == Shape{64});
  CHECK(a.overrides.count("model.layers.1.post_attention_layernorm.weight") == 1);
  CHECK(c.targets("model.layers.3.self_attn.v_proj"));
  CHECK_FALSE(c.targets("model.layers.3.self_attn.k_proj"));
}

TEST_CASE("writing reproduces peft's files exactly", "[io][peft]") {
  check_round_trip(testing::fixture_path("lora/llama_r4/adapter"), "rt_lora");
  check_round_trip(testing::fixture_path("io/peft/dora"), "rt_dora");
}

TEST_CASE("a new adapter written from scratch reads back", "[io][peft]") {
  io::Adapter a;
  a.config.r = 2;
  a.config.lora_alpha = 4;
  a.config.target_modules = {"q_proj"};
  a.config.task_type = "CAUSAL_LM";
  a.modules["model.layers.0.self_attn.q_proj"] = {Tensor<float>::ones({2, 8}), Tensor<float>::zeros({6, 2}), {}, 0};
  const std::string out = scratch_dir("new");
  io::save_adapter(a, out);
  const json j = io::read_json_file(out + "/adapter_config.json");
  CHECK(j.at("peft_type") == "LORA");
  CHECK(j.at("lora_alpha").is_number_integer());
  CHECK(j.at("inference_mode") == true);
  CHECK(j.at("modules_to_save").is_null());
  const io::Adapter b = io::load_adapter(out);
  CHECK(b.config.task_type == "CAUSAL_LM");
  CHECK(b.modules.at("model.layers.0.self_attn.q_proj").scaling == 2.0);
  CHECK(b.modules.at("model.layers.0.self_attn.q_proj").A.to_vector() == std::vector<float>(16, 1.f));

  // The writer checks shapes against the config before writing anything.
  a.modules["model.layers.0.self_attn.q_proj"].B = Tensor<float>::zeros({6, 3});
  CHECK(message_of([&] { io::save_adapter(a, out); }).find("expected [2, in] and [out, 2]") != std::string::npos);
  a.modules["model.layers.0.self_attn.q_proj"].B = Tensor<float>::zeros({6, 2});
  a.modules["model.layers.0.self_attn.q_proj"].magnitude = Tensor<float>::ones({6});
  CHECK(message_of([&] { io::save_adapter(a, out); }).find("without use_dora") != std::string::npos);
  fs::remove_all(out);
}

TEST_CASE("bad adapters raise ctmllm::Error naming the file and the key or tensor", "[io][peft][errors]") {
  auto err = [](const std::string& name, const std::function<void(json&)>& edit) {
    const std::string d = adapter_with_config(name, edit);
    const std::string m = message_of([&] { io::load_adapter(d); });
    fs::remove_all(d);
    return m;
  };
  std::string m = err("ia3", [](json& j) { j["peft_type"] = "IA3"; });
  CHECK(m.find("adapter_config.json") != std::string::npos);
  CHECK(m.find("peft_type 'IA3'") != std::string::npos);
  CHECK(err("nor", [](json& j) { j.erase("r"); }).find("missing required key 'r'") != std::string::npos);
  CHECK(err("r0", [](json& j) { j["r"] = 0; }).find("'r' must be positive") != std::string::npos);
  m = err("r8", [](json& j) { j["r"] = 8; });  // the tensors have rank 4
  CHECK(m.find("adapter_model.safetensors") != std::string::npos);
  CHECK(m.find("expected [8, in]") != std::string::npos);
  CHECK(err("dora", [](json& j) { j["use_dora"] = true; }).find("has no lora_magnitude_vector") != std::string::npos);
  CHECK(err("layers", [](json& j) { j["layers_to_transform"] = {0}; }).find("'layers_to_transform' is not supported") !=
        std::string::npos);
  CHECK(err("lbias", [](json& j) { j["lora_bias"] = true; }).find("'lora_bias'") != std::string::npos);
  CHECK(err("bias", [](json& j) { j["bias"] = "some"; }).find("'bias'") != std::string::npos);
  CHECK(err("regex", [](json& j) { j["target_modules"] = "(q_proj"; }).find("not a valid regular expression") != std::string::npos);
  CHECK(err("rp", [](json& j) { j["rank_pattern"] = {{"q_proj", "2"}}; }).find("must be an integer") != std::string::npos);
  CHECK(message_of([] { io::load_adapter(scratch_dir("no_such_adapter")); }).find("cannot open") != std::string::npos);

  // Tensors that are not peft's: no prefix, an unknown LoRA part, a half-present module.
  auto bad_tensor = [&](const std::string& name, const std::string& tensor) {
    const std::string d = adapter_with_config(name, [](json&) {});
    io::SafeTensorsWriter w;
    w.add("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", Tensor<float>::zeros({4, 64}));
    w.add("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", Tensor<float>::zeros({64, 4}));
    w.add(tensor, Tensor<float>::zeros({4, 4}));
    w.write(d + "/adapter_model.safetensors");
    const std::string msg = message_of([&] { io::load_adapter(d); });
    fs::remove_all(d);
    CHECK(msg.find(tensor) != std::string::npos);
    return msg;
  };
  CHECK(bad_tensor("prefix", "model.layers.0.self_attn.k_proj.lora_A.weight").find("does not start with") != std::string::npos);
  CHECK(bad_tensor("unknown", "base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight").find("unknown LoRA tensor") !=
        std::string::npos);
  CHECK(bad_tensor("embed", "base_model.model.model.embed_tokens.lora_embedding_A").find("embeddings") != std::string::npos);
  CHECK(bad_tensor("override", "base_model.model.lm_head.weight").find("no modules_to_save") != std::string::npos);
  const std::string d = adapter_with_config("half", [](json&) {});
  io::SafeTensorsWriter w;
  w.add("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", Tensor<float>::zeros({4, 64}));
  w.write(d + "/adapter_model.safetensors");
  m = message_of([&] { io::load_adapter(d); });
  fs::remove_all(d);
  CHECK(m.find("'model.layers.0.self_attn.k_proj' needs both lora_A and lora_B") != std::string::npos);
}
