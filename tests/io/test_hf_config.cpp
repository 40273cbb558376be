// config.json and generation_config.json: the five fixture families and gemma2 in both RoPE layouts,
// checked against what transformers itself reads from each file (io/config/expected.json), then
// variants and bad configs written here.
#include <fstream>
#include <functional>

#include "ctmllm/io/hf_config.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::message_of;
using nlohmann::json;

namespace {
io::LlmConfig parse(const json& j) { return io::parse_llm_config(j, "test/config.json"); }
// The llama fixture config with `edit` applied.
json llama_with(const std::function<void(json&)>& edit) {
  json j = io::read_json_file(testing::fixture_path("llm/llama/config.json"));
  edit(j);
  return j;
}
const char* rope_type_name(io::RopeType t) {
  switch (t) {
    case io::RopeType::Default: return "default";
    case io::RopeType::Linear: return "linear";
    case io::RopeType::Llama3: return "llama3";
  }
  return "?";
}
}  // namespace

TEST_CASE("reads every fixture config as transformers does, in both RoPE layouts", "[io][config]") {
  const json expected = io::read_json_file(testing::fixture_path("io/config/expected.json"));
  REQUIRE(expected.size() == 11);
  for (const auto& [file, e] : expected.items()) {
    INFO(file);
    const io::LlmConfig c = io::load_llm_config(testing::fixture_path(file));
    CHECK(c.model_type == e["model_type"].get<std::string>());
    CHECK(c.vocab_size == e["vocab_size"].get<int64_t>());
    CHECK(c.hidden_size == e["hidden_size"].get<int64_t>());
    CHECK(c.intermediate_size == e["intermediate_size"].get<int64_t>());
    CHECK(c.num_hidden_layers == e["num_hidden_layers"].get<int64_t>());
    CHECK(c.num_attention_heads == e["num_attention_heads"].get<int64_t>());
    CHECK(c.num_key_value_heads == e["num_key_value_heads"].get<int64_t>());
    CHECK(c.head_dim == e["head_dim"].get<int64_t>());
    CHECK(c.max_position_embeddings == e["max_position_embeddings"].get<int64_t>());
    CHECK(c.rms_norm_eps == e["rms_norm_eps"].get<double>());
    CHECK(std::string(io::activation_name(c.hidden_act)) == e["hidden_act"].get<std::string>());
    CHECK(c.tie_word_embeddings == e["tie_word_embeddings"].get<bool>());
    CHECK(c.attention_bias == e["attention_bias"].get<bool>());
    CHECK(std::string(rope_type_name(c.rope.type)) == e["rope_type"].get<std::string>());
    CHECK(c.rope.theta == e["rope_theta"].get<double>());
    CHECK(c.rope.partial_rotary_factor == e["partial_rotary_factor"].get<double>());
    if (c.rope.type == io::RopeType::Llama3) {
      CHECK(c.rope.factor == e["factor"].get<double>());
      CHECK(c.rope.low_freq_factor == e["low_freq_factor"].get<double>());
      CHECK(c.rope.high_freq_factor == e["high_freq_factor"].get<double>());
      CHECK(c.rope.original_max_position_embeddings == e["original_max_position_embeddings"].get<int64_t>());
    }
    CHECK(c.sliding_window.has_value() == !e["sliding_window"].is_null());
    if (c.sliding_window) CHECK(*c.sliding_window == e["sliding_window"].get<int64_t>());
    CHECK(c.bos_token_id.has_value() == !e["bos_token_id"].is_null());
    CHECK(c.pad_token_id.has_value() == !e["pad_token_id"].is_null());
    if (c.pad_token_id) CHECK(*c.pad_token_id == e["pad_token_id"].get<int64_t>());
    CHECK(c.eos_token_ids == e["eos_token_id"].get<std::vector<int64_t>>());
    CHECK(std::string(dtype_name(c.dtype)) == e["dtype"].get<std::string>());
  }
}

TEST_CASE("family specifics: gemma head_dim and activation, qwen2 bias, phi3 rotary, gemma2 capping", "[io][config]") {
  const io::LlmConfig gemma = io::load_llm_config(testing::fixture_path("llm/gemma"));  // a folder works too
  CHECK(gemma.head_dim == 24);
  CHECK(gemma.hidden_size / gemma.num_attention_heads != gemma.head_dim);
  CHECK(gemma.hidden_act == io::Activation::GeluTanh);
  // The official Gemma configs say "gelu" and mean the tanh approximation.
  const json g = io::read_json_file(testing::fixture_path("llm/gemma/config.json"));
  json legacy = g;
  legacy.erase("hidden_activation");
  legacy["hidden_act"] = "gelu";
  CHECK(parse(legacy).hidden_act == io::Activation::GeluTanh);
  CHECK(io::load_llm_config(testing::fixture_path("llm/qwen2")).attention_bias);
  CHECK(io::load_llm_config(testing::fixture_path("llm/phi3")).rotary_dim() == 16);
  const io::LlmConfig g2 = io::load_llm_config(testing::fixture_path("io/config/gemma2_v5.json"));
  CHECK(g2.query_pre_attn_scalar == 24.0);
  CHECK(g2.attn_logit_softcapping == 50.0);
  CHECK(g2.final_logit_softcapping == 30.0);
  CHECK(g2.dtype == DType::BF16);
  json uncapped = io::read_json_file(testing::fixture_path("io/config/gemma2_v5.json"));
  uncapped["final_logit_softcapping"] = nullptr;
  CHECK_FALSE(parse(uncapped).final_logit_softcapping.has_value());
}

TEST_CASE("RoPE scaling in the legacy and the transformers 5 layouts", "[io][config][rope]") {
  // Legacy rope_scaling with the old "type" key.
  io::LlmConfig c = parse(llama_with([](json& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; }));
  CHECK(c.rope.type == io::RopeType::Linear);
  CHECK(c.rope.factor == 2.0);
  CHECK(c.rope.theta == 500000.0);
  // rope_parameters wins over the legacy keys and carries theta and partial_rotary_factor.
  c = parse(llama_with([](json& j) {
    j["rope_parameters"] = {{"rope_type", "linear"}, {"rope_theta", 1e6}, {"factor", 4.0}, {"partial_rotary_factor", 0.5}};
  }));
  CHECK(c.rope.type == io::RopeType::Linear);
  CHECK(c.rope.theta == 1e6);
  CHECK(c.rope.factor == 4.0);
  CHECK(c.rotary_dim() == 8);
  c = parse(llama_with([](json& j) {
    j.erase("rope_scaling");
    j.erase("rope_theta");
  }));
  CHECK(c.rope.type == io::RopeType::Default);
  CHECK(c.rope.theta == 10000.0);
  c = parse(llama_with([](json& j) { j["rope_scaling"] = nullptr; }));
  CHECK(c.rope.type == io::RopeType::Default);
  // phi3 keeps original_max_position_embeddings at the top level.
  c = parse(llama_with([](json& j) {
    j["rope_scaling"].erase("original_max_position_embeddings");
    j["original_max_position_embeddings"] = 4096;
  }));
  CHECK(c.rope.original_max_position_embeddings == 4096);

  for (const char* type : {"dynamic", "yarn", "longrope", "su"}) {
    const std::string m = message_of([&] { parse(llama_with([&](json& j) { j["rope_scaling"]["rope_type"] = type; })); });
    CHECK(m.find(std::string("unsupported rope_scaling type '") + type + "'") != std::string::npos);
    CHECK(m.find("test/config.json") != std::string::npos);
  }
  const std::string m = message_of([] { parse(llama_with([](json& j) { j["rope_scaling"].erase("low_freq_factor"); })); });
  CHECK(m.find("missing required key 'low_freq_factor'") != std::string::npos);
  CHECK(m.find("rope_scaling") != std::string::npos);
  CHECK_THROWS_AS(parse(llama_with([](json& j) { j["rope_scaling"]["factor"] = -1.0; })), Error);
  CHECK_THROWS_AS(parse(llama_with([](json& j) { j["rope_scaling"]["low_freq_factor"] = 8.0; })), Error);
  CHECK_THROWS_AS(parse(llama_with([](json& j) { j["rope_scaling"] = "llama3"; })), Error);
  CHECK_THROWS_AS(parse(llama_with([](json& j) { j["partial_rotary_factor"] = 1.5; })), Error);
  CHECK_THROWS_AS(parse(llama_with([](json& j) { j["partial_rotary_factor"] = 0.1; })), Error);  // 1.6 rotary dims
}

TEST_CASE("token ids, dtype and defaults", "[io][config]") {
  io::LlmConfig c = parse(llama_with([](json& j) {
    j["eos_token_id"] = {128001, 128008, 128009};
    j["pad_token_id"] = nullptr;
    j["torch_dtype"] = "bfloat16";
    j.erase("num_key_value_heads");
    j.erase("max_position_embeddings");
  }));
  CHECK(c.eos_token_ids == std::vector<int64_t>{128001, 128008, 128009});
  CHECK_FALSE(c.pad_token_id.has_value());
  CHECK(c.dtype == DType::BF16);
  CHECK(c.num_key_value_heads == c.num_attention_heads);
  CHECK(c.max_position_embeddings == 2048);
  c = parse(llama_with([](json& j) {
    j.erase("torch_dtype");
    j["dtype"] = "float16";
    j.erase("eos_token_id");
  }));
  CHECK(c.dtype == DType::F16);
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});  // llama's default
}

TEST_CASE("bad configs raise ctmllm::Error naming the key, the value and the file", "[io][config][errors]") {
  auto err = [](const std::function<void(json&)>& edit) { return message_of([&] { parse(llama_with(edit)); }); };
  std::string m = err([](json& j) { j.erase("hidden_size"); });
  CHECK(m.find("test/config.json") != std::string::npos);
  CHECK(m.find("missing required key 'hidden_size'") != std::string::npos);
  CHECK(err([](json& j) { j["model_type"] = "gpt2"; }).find("unsupported model_type 'gpt2'") != std::string::npos);
  CHECK(err([](json& j) { j.erase("model_type"); }).find("'model_type'") != std::string::npos);
  CHECK(err([](json& j) { j["hidden_act"] = "relu"; }).find("unsupported hidden_act 'relu'") != std::string::npos);
  CHECK(err([](json& j) { j["num_key_value_heads"] = 3; }).find("num_key_value_heads 3") != std::string::npos);
  CHECK(err([](json& j) { j["hidden_size"] = "64"; }).find("'hidden_size' must be an integer") != std::string::npos);
  CHECK(err([](json& j) { j["vocab_size"] = 0; }).find("'vocab_size' must be positive") != std::string::npos);
  CHECK(err([](json& j) { j["hidden_size"] = 66; }).find("not a multiple of num_attention_heads") != std::string::npos);
  CHECK(err([](json& j) { j["eos_token_id"] = {1, "2"}; }).find("'eos_token_id'") != std::string::npos);
  CHECK(err([](json& j) { j["torch_dtype"] = "int8"; }).find("torch_dtype 'int8'") != std::string::npos);
  CHECK(err([](json& j) { j["quantization_config"] = {{"quant_method", "gptq"}}; }).find("quantization_config") != std::string::npos);
  CHECK(err([](json& j) { j["tie_word_embeddings"] = 1; }).find("'tie_word_embeddings' must be true or false") != std::string::npos);
  CHECK(err([](json& j) { j["sliding_window"] = -4; }).find("sliding_window") != std::string::npos);
  CHECK_THROWS_AS(io::parse_llm_config(json::array(), "x"), Error);

  const std::string bad = testing::scratch_dir("bad_config.json");
  std::ofstream(bad) << "{\"model_type\": \"llama\",";
  m = message_of([&] { io::load_llm_config(bad); });
  CHECK(m.find(bad) != std::string::npos);
  CHECK(m.find("not valid JSON") != std::string::npos);
  std::remove(bad.c_str());
  CHECK_THROWS_AS(io::load_llm_config(testing::scratch_dir("no_such_config.json")), Error);
}

TEST_CASE("generation_config.json: Llama-3.1's, every field, defaults, bad values", "[io][config][generation]") {
  const io::GenerationConfig l = io::load_generation_config(testing::fixture_path("io/config/generation_llama31.json"));
  CHECK(l.do_sample);
  CHECK(l.temperature == 0.6);
  CHECK(l.top_p == 0.9);
  CHECK(l.top_k == 50);
  CHECK(l.eos_token_ids == std::vector<int64_t>{128001, 128008, 128009});
  CHECK(l.bos_token_id == 128000);
  CHECK_FALSE(l.pad_token_id.has_value());

  const io::GenerationConfig f = io::load_generation_config(testing::fixture_path("io/config/generation_full.json"));
  CHECK(f.temperature == 0.7);
  CHECK(f.top_k == 20);
  CHECK(f.top_p == 0.8);
  CHECK(f.min_p == 0.05);
  CHECK(f.repetition_penalty == 1.1);
  CHECK(f.no_repeat_ngram_size == 3);
  CHECK(f.num_beams == 4);
  CHECK(f.length_penalty == 0.9);
  CHECK(f.max_new_tokens == 512);
  CHECK(f.eos_token_ids == std::vector<int64_t>{2});
  CHECK(f.pad_token_id == 0);

  const io::GenerationConfig d = io::parse_generation_config(json::object(), "g.json");
  CHECK_FALSE(d.do_sample);
  CHECK(d.temperature == 1.0);
  CHECK(d.num_beams == 1);
  CHECK(d.max_length == 20);
  CHECK_FALSE(d.max_new_tokens.has_value());
  CHECK(d.eos_token_ids.empty());
  CHECK(io::parse_generation_config(json{{"temperature", nullptr}}, "g.json").temperature == 1.0);

  auto err = [](const json& j) { return message_of([&] { io::parse_generation_config(j, "g.json"); }); };
  CHECK(err(json{{"top_p", 0.0}}).find("'top_p'") != std::string::npos);
  CHECK(err(json{{"temperature", -1.0}}).find("'temperature'") != std::string::npos);
  CHECK(err(json{{"num_beams", 0}}).find("'num_beams'") != std::string::npos);
  CHECK(err(json{{"min_p", 2.0}}).find("'min_p'") != std::string::npos);
  CHECK(err(json{{"top_k", 1.5}}).find("'top_k' must be an integer") != std::string::npos);
  CHECK(err(json{{"do_sample", "yes"}}).find("g.json") != std::string::npos);
  CHECK(err(json{{"eos_token_id", "2"}}).find("'eos_token_id'") != std::string::npos);
}
