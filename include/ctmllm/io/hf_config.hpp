#pragma once
// Hugging Face config.json (decoder LLMs: llama, mistral, phi3, qwen2, gemma, gemma2) and
// generation_config.json.
//
// Both RoPE layouts are read: the legacy one (`rope_theta` + `rope_scaling`, as on the hub
// checkpoints) and transformers 5's (`rope_parameters` {rope_type, rope_theta, ...}). Keys that set
// the network's shape are required; the others default to what transformers uses for that
// model_type. Keys this reader has no use for (initializer_range, architectures, ...) are ignored,
// but a value it cannot honour (an unknown activation, an unsupported RoPE scaling, a quantized
// checkpoint) is an Error naming the key, the value and the file.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/dtype.hpp"
#include "ctmllm/core/error.hpp"

namespace ctmllm::io {

// Reads a JSON file that must hold an object.
inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CTMLLM_CHECK(in.good(), path, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  CTMLLM_CHECK(!j.is_discarded(), path, ": not valid JSON");
  CTMLLM_CHECK(j.is_object(), path, ": the top level is not a JSON object");
  return j;
}

// Typed access to the keys of one JSON object. A key that is absent or null takes the default
// (optional_*: absent takes the default, null means none); a value of the wrong type is an Error
// naming the source and the key.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}

  const std::string& source() const { return source_; }
  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  bool contains_key(const std::string& key) const { return j_.contains(key); }
  const nlohmann::json& raw(const std::string& key) const { return j_.at(key); }

  int64_t integer(const std::string& key) const {
    require(key);
    const auto& v = j_[key];
    CTMLLM_CHECK(v.is_number_integer(), source_, ": '", key, "' must be an integer, got ", v.dump());
    return v.get<int64_t>();
  }
  int64_t integer(const std::string& key, int64_t def) const { return has(key) ? integer(key) : def; }
  std::optional<int64_t> optional_integer(const std::string& key, std::optional<int64_t> def = std::nullopt) const {
    if (!contains_key(key)) return def;
    return has(key) ? std::optional<int64_t>(integer(key)) : std::nullopt;
  }
  double number(const std::string& key) const {
    require(key);
    const auto& v = j_[key];
    CTMLLM_CHECK(v.is_number(), source_, ": '", key, "' must be a number, got ", v.dump());
    return v.get<double>();
  }
  double number(const std::string& key, double def) const { return has(key) ? number(key) : def; }
  std::optional<double> optional_number(const std::string& key, std::optional<double> def = std::nullopt) const {
    if (!contains_key(key)) return def;
    return has(key) ? std::optional<double>(number(key)) : std::nullopt;
  }
  bool boolean(const std::string& key, bool def) const {
    if (!has(key)) return def;
    CTMLLM_CHECK(j_[key].is_boolean(), source_, ": '", key, "' must be true or false, got ", j_[key].dump());
    return j_[key].get<bool>();
  }
  std::string string(const std::string& key) const {
    require(key);
    CTMLLM_CHECK(j_[key].is_string(), source_, ": '", key, "' must be a string, got ", j_[key].dump());
    return j_[key].get<std::string>();
  }
  std::string string(const std::string& key, const std::string& def) const { return has(key) ? string(key) : def; }
  // An id or a list of ids (eos_token_id); empty when absent.
  std::vector<int64_t> token_ids(const std::string& key) const {
    if (!has(key)) return {};
    const auto& v = j_[key];
    if (v.is_number_integer()) return {v.get<int64_t>()};
    CTMLLM_CHECK(v.is_array(), source_, ": '", key, "' must be an integer or a list of integers, got ", v.dump());
    std::vector<int64_t> ids;
    for (const auto& e : v) {
      CTMLLM_CHECK(e.is_number_integer(), source_, ": '", key, "' must be an integer or a list of integers, got ", v.dump());
      ids.push_back(e.get<int64_t>());
    }
    return ids;
  }
  // A nested object (rope_scaling) under a source name that says where it sits.
  JsonFields object(const std::string& key) const {
    require(key);
    CTMLLM_CHECK(j_[key].is_object(), source_, ": '", key, "' must be an object, got ", j_[key].dump());
    return JsonFields(j_[key], source_ + ": " + key);
  }

 private:
  void require(const std::string& key) const { CTMLLM_CHECK(has(key), source_, ": missing required key '", key, "'"); }

  const nlohmann::json& j_;
  std::string source_;
};

enum class Activation { Silu, Gelu, GeluTanh };

inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Silu: return "silu";
    case Activation::Gelu: return "gelu";
    case Activation::GeluTanh: return "gelu_pytorch_tanh";
  }
  return "?";
}

enum class RopeType { Default, Linear, Llama3 };

struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double factor = 1.0;                        // linear, llama3
  double low_freq_factor = 1.0;               // llama3
  double high_freq_factor = 4.0;              // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
  double partial_rotary_factor = 1.0;         // the rotated fraction of each head (phi3)
};

struct LlmConfig {
  std::string model_type;  // llama, mistral, phi3, qwen2, gemma, gemma2
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  Activation hidden_act = Activation::Silu;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v (and o for llama) projections have biases; always true for qwen2's q/k/v
  bool mlp_bias = false;        // llama only
  RopeConfig rope;
  std::optional<int64_t> sliding_window;  // mistral; qwen2 when use_sliding_window; gemma2's local layers
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::vector<int64_t> eos_token_ids;
  DType dtype = DType::F32;  // torch_dtype (or dtype): the dtype the weights were saved in
  // gemma2 only
  std::optional<double> query_pre_attn_scalar, attn_logit_softcapping, final_logit_softcapping;

  int64_t rotary_dim() const { return int64_t(double(head_dim) * rope.partial_rotary_factor); }
};

namespace detail {
struct FamilyDefaults {
  const char* model_type;
  int64_t max_position_embeddings;
  double rms_norm_eps;
  bool tie_word_embeddings;
  std::optional<int64_t> head_dim, bos, eos, pad, sliding_window;
};
// transformers 5's defaults for the keys a config may leave out.
inline const FamilyDefaults* family_defaults(const std::string& model_type) {
  static const FamilyDefaults table[] = {
      {"llama", 2048, 1e-6, false, std::nullopt, 1, 2, std::nullopt, std::nullopt},
      {"mistral", 131072, 1e-6, false, std::nullopt, 1, 2, std::nullopt, 4096},
      {"phi3", 4096, 1e-5, false, std::nullopt, 1, 32000, 32000, std::nullopt},
      {"qwen2", 32768, 1e-6, false, std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
      {"gemma", 8192, 1e-6, true, 256, 2, 1, 0, std::nullopt},
      {"gemma2", 8192, 1e-6, true, 256, 2, 1, 0, 4096},
  };
  for (const auto& f : table)
    if (model_type == f.model_type) return &f;
  return nullptr;
}

inline Activation parse_activation(const std::string& name, const std::string& key, const std::string& source) {
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "gelu") return Activation::Gelu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::GeluTanh;
  fail(source, ": unsupported ", key, " '", name, "' (silu, gelu, gelu_pytorch_tanh are supported)");
}

inline DType parse_torch_dtype(const std::string& name, const std::string& source) {
  if (name == "float32") return DType::F32;
  if (name == "bfloat16") return DType::BF16;
  if (name == "float16") return DType::F16;
  if (name == "float64") return DType::F64;
  fail(source, ": unsupported torch_dtype '", name, "'");
}

// `r`: the rope_parameters or rope_scaling object; `top`: the config, for keys older configs keep
// at the top level (phi3's original_max_position_embeddings, partial_rotary_factor).
inline void parse_rope_scaling(const JsonFields& r, const JsonFields& top, RopeConfig& rope) {
  const std::string type = r.has("rope_type") ? r.string("rope_type") : r.string("type", "default");
  if (type == "default") {
    rope.type = RopeType::Default;
  } else if (type == "linear") {
    rope.type = RopeType::Linear;
    rope.factor = r.number("factor");
  } else if (type == "llama3") {
    rope.type = RopeType::Llama3;
    rope.factor = r.number("factor");
    rope.low_freq_factor = r.number("low_freq_factor");
    rope.high_freq_factor = r.number("high_freq_factor");
    rope.original_max_position_embeddings = r.has("original_max_position_embeddings")
                                                ? r.integer("original_max_position_embeddings")
                                                : top.integer("original_max_position_embeddings");
    CTMLLM_CHECK(rope.original_max_position_embeddings > 0, r.source(), ": original_max_position_embeddings must be positive");
    CTMLLM_CHECK(rope.low_freq_factor > 0 && rope.high_freq_factor > rope.low_freq_factor, r.source(),
                 ": llama3 needs 0 < low_freq_factor < high_freq_factor, got ", rope.low_freq_factor, " and ",
                 rope.high_freq_factor);
  } else {
    fail(r.source(), ": unsupported rope_scaling type '", type, "' (default, linear and llama3 are supported)");
  }
  CTMLLM_CHECK(rope.factor > 0, r.source(), ": rope scaling factor must be positive, got ", rope.factor);
}
}  // namespace detail

// Parses a config.json object; `source` (the file) names it in errors.
inline LlmConfig parse_llm_config(const nlohmann::json& j, const std::string& source) {
  CTMLLM_CHECK(j.is_object(), source, ": the config is not a JSON object");
  const JsonFields f(j, source);
  LlmConfig c;
  c.model_type = f.string("model_type");
  const detail::FamilyDefaults* d = detail::family_defaults(c.model_type);
  CTMLLM_CHECK(d, source, ": unsupported model_type '", c.model_type, "' (llama, mistral, phi3, qwen2, gemma, gemma2 are supported)");
  CTMLLM_CHECK(!f.has("quantization_config"), source, ": quantized checkpoints (quantization_config) are not supported");

  c.vocab_size = f.integer("vocab_size");
  c.hidden_size = f.integer("hidden_size");
  c.intermediate_size = f.integer("intermediate_size");
  c.num_hidden_layers = f.integer("num_hidden_layers");
  c.num_attention_heads = f.integer("num_attention_heads");
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
                               {"intermediate_size", c.intermediate_size}, {"num_hidden_layers", c.num_hidden_layers},
                               {"num_attention_heads", c.num_attention_heads}})
    CTMLLM_CHECK(v > 0, source, ": '", key, "' must be positive, got ", v);
  c.num_key_value_heads = f.integer("num_key_value_heads", c.num_attention_heads);
  CTMLLM_CHECK(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0, source,
               ": num_attention_heads ", c.num_attention_heads, " is not a multiple of num_key_value_heads ",
               c.num_key_value_heads);
  if (f.has("head_dim")) {
    c.head_dim = f.integer("head_dim");
  } else if (d->head_dim) {
    c.head_dim = *d->head_dim;
  } else {
    CTMLLM_CHECK(c.hidden_size % c.num_attention_heads == 0, source, ": hidden_size ", c.hidden_size,
                 " is not a multiple of num_attention_heads ", c.num_attention_heads, " and head_dim is not given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  CTMLLM_CHECK(c.head_dim > 0, source, ": 'head_dim' must be positive, got ", c.head_dim);
  c.max_position_embeddings = f.integer("max_position_embeddings", d->max_position_embeddings);
  CTMLLM_CHECK(c.max_position_embeddings > 0, source, ": 'max_position_embeddings' must be positive");
  c.rms_norm_eps = f.number("rms_norm_eps", d->rms_norm_eps);
  CTMLLM_CHECK(c.rms_norm_eps > 0, source, ": 'rms_norm_eps' must be positive, got ", c.rms_norm_eps);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", d->tie_word_embeddings);

  // Activation. Gemma: transformers 4 reads hidden_activation, 5 reads hidden_act, and the legacy
  // value "gelu" in the official Gemma configs means the tanh approximation.
  const bool gemma = c.model_type == "gemma" || c.model_type == "gemma2";
  if (gemma) {
    const std::string key = f.has("hidden_activation") || c.model_type == "gemma2" ? "hidden_activation" : "hidden_act";
    const std::string name = f.string(key, "gelu_pytorch_tanh");
    c.hidden_act = c.model_type == "gemma" && name == "gelu" ? Activation::GeluTanh : detail::parse_activation(name, key, source);
  } else {
    c.hidden_act = detail::parse_activation(f.string("hidden_act", "silu"), "hidden_act", source);
  }

  c.attention_bias = c.model_type == "qwen2" || f.boolean("attention_bias", false);
  c.mlp_bias = f.boolean("mlp_bias", false);

  // RoPE: transformers 5's rope_parameters, else the legacy rope_theta + rope_scaling.
  if (f.has("rope_parameters")) {
    const JsonFields r = f.object("rope_parameters");
    c.rope.theta = r.number("rope_theta", 10000.0);
    detail::parse_rope_scaling(r, f, c.rope);
    c.rope.partial_rotary_factor = r.number("partial_rotary_factor", f.number("partial_rotary_factor", 1.0));
  } else {
    c.rope.theta = f.number("rope_theta", 10000.0);
    if (f.has("rope_scaling")) detail::parse_rope_scaling(f.object("rope_scaling"), f, c.rope);
    c.rope.partial_rotary_factor = f.number("partial_rotary_factor", 1.0);
  }
  CTMLLM_CHECK(c.rope.theta > 0, source, ": rope_theta must be positive, got ", c.rope.theta);
  CTMLLM_CHECK(c.rope.partial_rotary_factor > 0 && c.rope.partial_rotary_factor <= 1, source,
               ": partial_rotary_factor must be in (0, 1], got ", c.rope.partial_rotary_factor);
  CTMLLM_CHECK(c.rotary_dim() > 0 && c.rotary_dim() % 2 == 0, source, ": the rotary dimension ", c.rotary_dim(),
               " (head_dim x partial_rotary_factor) must be even and positive");

  if (c.model_type == "qwen2") {
    if (f.boolean("use_sliding_window", false)) c.sliding_window = f.integer("sliding_window", 4096);
  } else {
    c.sliding_window = f.optional_integer("sliding_window", d->sliding_window);
  }
  CTMLLM_CHECK(!c.sliding_window || *c.sliding_window > 0, source, ": 'sliding_window' must be positive");

  c.bos_token_id = f.optional_integer("bos_token_id", d->bos);
  c.pad_token_id = f.optional_integer("pad_token_id", d->pad);
  if (f.contains_key("eos_token_id")) c.eos_token_ids = f.token_ids("eos_token_id");
  else if (d->eos) c.eos_token_ids = {*d->eos};

  const std::string dtype_key = f.has("torch_dtype") ? "torch_dtype" : "dtype";
  if (f.has(dtype_key)) c.dtype = detail::parse_torch_dtype(f.string(dtype_key), source);

  if (c.model_type == "gemma2") {
    c.query_pre_attn_scalar = f.number("query_pre_attn_scalar", 256.0);
    c.attn_logit_softcapping = f.optional_number("attn_logit_softcapping", 50.0);
    c.final_logit_softcapping = f.optional_number("final_logit_softcapping", 30.0);
  }
  return c;
}

// Reads config.json: `path` is the file or the model folder that holds it.
inline LlmConfig load_llm_config(const std::string& path) {
  const std::string file = std::filesystem::is_directory(path) ? path + "/config.json" : path;
  return parse_llm_config(read_json_file(file), file);
}

// A config.json for `c` in the legacy layout (rope_theta + rope_scaling) that transformers and
// parse_llm_config read back to the same config: what ctmllm writes beside the weights it saves.
inline nlohmann::json llm_config_to_json(const LlmConfig& c) {
  static const std::pair<const char*, const char*> architectures[] = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"phi3", "Phi3ForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"}, {"gemma", "GemmaForCausalLM"},     {"gemma2", "Gemma2ForCausalLM"}};
  nlohmann::json j = {{"model_type", c.model_type},
                      {"vocab_size", c.vocab_size},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.num_hidden_layers},
                      {"num_attention_heads", c.num_attention_heads},
                      {"num_key_value_heads", c.num_key_value_heads},
                      {"head_dim", c.head_dim},
                      {"max_position_embeddings", c.max_position_embeddings},
                      {"rms_norm_eps", c.rms_norm_eps},
                      {"tie_word_embeddings", c.tie_word_embeddings},
                      {"attention_bias", c.attention_bias},
                      {"mlp_bias", c.mlp_bias},
                      {"rope_theta", c.rope.theta},
                      {"partial_rotary_factor", c.rope.partial_rotary_factor},
                      {"torch_dtype", dtype_name(c.dtype)}};
  for (const auto& [type, arch] : architectures)
    if (c.model_type == type) j["architectures"] = {arch};
  const bool gemma = c.model_type == "gemma" || c.model_type == "gemma2";
  j[gemma ? "hidden_activation" : "hidden_act"] = activation_name(c.hidden_act);
  if (c.rope.type != RopeType::Default) {
    nlohmann::json r = {{"rope_type", c.rope.type == RopeType::Linear ? "linear" : "llama3"}, {"factor", c.rope.factor}};
    if (c.rope.type == RopeType::Llama3) {
      r["low_freq_factor"] = c.rope.low_freq_factor;
      r["high_freq_factor"] = c.rope.high_freq_factor;
      r["original_max_position_embeddings"] = c.rope.original_max_position_embeddings;
    }
    j["rope_scaling"] = r;
  } else {
    j["rope_scaling"] = nullptr;
  }
  if (c.sliding_window) {
    j["sliding_window"] = *c.sliding_window;
    if (c.model_type == "qwen2") j["use_sliding_window"] = true;
  } else {
    j["sliding_window"] = nullptr;
  }
  j["bos_token_id"] = c.bos_token_id ? nlohmann::json(*c.bos_token_id) : nlohmann::json(nullptr);
  j["pad_token_id"] = c.pad_token_id ? nlohmann::json(*c.pad_token_id) : nlohmann::json(nullptr);
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  if (c.query_pre_attn_scalar) j["query_pre_attn_scalar"] = *c.query_pre_attn_scalar;
  if (c.model_type == "gemma2") {
    j["attn_logit_softcapping"] = c.attn_logit_softcapping ? nlohmann::json(*c.attn_logit_softcapping) : nlohmann::json(nullptr);
    j["final_logit_softcapping"] = c.final_logit_softcapping ? nlohmann::json(*c.final_logit_softcapping) : nlohmann::json(nullptr);
  }
  return j;
}

// generation_config.json, with transformers' defaults for absent keys.
struct GenerationConfig {
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;
  double top_p = 1.0;
  std::optional<double> min_p;
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  std::optional<int64_t> max_new_tokens;
  int64_t max_length = 20;  // prompt + new tokens; max_new_tokens wins when both are set
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id, pad_token_id;
};

inline GenerationConfig parse_generation_config(const nlohmann::json& j, const std::string& source) {
  CTMLLM_CHECK(j.is_object(), source, ": the generation config is not a JSON object");
  const JsonFields f(j, source);
  GenerationConfig g;
  g.do_sample = f.boolean("do_sample", g.do_sample);
  g.temperature = f.number("temperature", g.temperature);
  g.top_k = f.integer("top_k", g.top_k);
  g.top_p = f.number("top_p", g.top_p);
  g.min_p = f.optional_number("min_p");
  g.repetition_penalty = f.number("repetition_penalty", g.repetition_penalty);
  g.no_repeat_ngram_size = f.integer("no_repeat_ngram_size", g.no_repeat_ngram_size);
  g.num_beams = f.integer("num_beams", g.num_beams);
  g.length_penalty = f.number("length_penalty", g.length_penalty);
  g.max_new_tokens = f.optional_integer("max_new_tokens");
  g.max_length = f.integer("max_length", g.max_length);
  g.eos_token_ids = f.token_ids("eos_token_id");
  g.bos_token_id = f.optional_integer("bos_token_id");
  g.pad_token_id = f.optional_integer("pad_token_id");
  CTMLLM_CHECK(std::isfinite(g.temperature) && g.temperature >= 0, source, ": 'temperature' must be >= 0, got ", g.temperature);
  CTMLLM_CHECK(g.top_k >= 0, source, ": 'top_k' must be >= 0, got ", g.top_k);
  CTMLLM_CHECK(g.top_p > 0 && g.top_p <= 1, source, ": 'top_p' must be in (0, 1], got ", g.top_p);
  CTMLLM_CHECK(!g.min_p || (*g.min_p >= 0 && *g.min_p <= 1), source, ": 'min_p' must be in [0, 1], got ", *g.min_p);
  CTMLLM_CHECK(g.repetition_penalty > 0, source, ": 'repetition_penalty' must be positive, got ", g.repetition_penalty);
  CTMLLM_CHECK(g.no_repeat_ngram_size >= 0, source, ": 'no_repeat_ngram_size' must be >= 0");
  CTMLLM_CHECK(g.num_beams >= 1, source, ": 'num_beams' must be >= 1, got ", g.num_beams);
  CTMLLM_CHECK(!g.max_new_tokens || *g.max_new_tokens >= 0, source, ": 'max_new_tokens' must be >= 0");
  CTMLLM_CHECK(g.max_length >= 0, source, ": 'max_length' must be >= 0");
  return g;
}

// Reads generation_config.json: `path` is the file or the model folder that holds it.
inline GenerationConfig load_generation_config(const std::string& path) {
  const std::string file = std::filesystem::is_directory(path) ? path + "/generation_config.json" : path;
  return parse_generation_config(read_json_file(file), file);
}

}  // namespace ctmllm::io
