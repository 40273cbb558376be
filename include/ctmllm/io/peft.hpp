#pragma once
// PEFT LoRA / DoRA adapters: adapter_config.json + adapter_model.safetensors, read and written in
// the layout peft's save_pretrained uses, so adapters move both ways between ctmllm and peft.
//
// Tensor names in the file: base_model.model.<module>.lora_A.weight      [r, in]
//                           base_model.model.<module>.lora_B.weight      [out, r]
//                           base_model.model.<module>.lora_magnitude_vector  [out]  (DoRA)
//                           base_model.model.<parameter>                 a whole base parameter the
//                           adapter replaces (modules_to_save, trained biases)
// where <module> is the base model's module name, e.g. model.layers.0.self_attn.q_proj.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/tensor.hpp"
#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/io/safetensors.hpp"

namespace ctmllm::io {

struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 8;
  double lora_dropout = 0;
  std::vector<std::string> target_modules;  // module names or name suffixes ("q_proj")...
  std::string target_regex;                 // ...or one regex the whole module name must match
  bool use_dora = false;
  bool use_rslora = false;
  std::string bias = "none";  // none, all, lora_only
  bool fan_in_fan_out = false;
  std::string base_model_name_or_path;
  std::vector<std::string> modules_to_save;
  std::map<std::string, int64_t> rank_pattern;  // module-name regex -> r
  std::map<std::string, double> alpha_pattern;  // module-name regex -> lora_alpha
  std::string task_type;                        // e.g. CAUSAL_LM; empty for none
  nlohmann::json extra = nlohmann::json::object();  // every other key, written back unchanged

  // peft's get_pattern_key: the first pattern P (in key order) with `(.*\.)?(P)$` matching the module.
  template <class V>
  static const V* pattern_value(const std::map<std::string, V>& patterns, const std::string& module) {
    for (const auto& [pattern, value] : patterns)
      if (regex_full_match("(.*\\.)?(" + pattern + ")", module)) return &value;
    return nullptr;
  }
  int64_t rank_for(const std::string& module) const {
    const int64_t* v = pattern_value(rank_pattern, module);
    return v ? *v : r;
  }
  double alpha_for(const std::string& module) const {
    const double* v = pattern_value(alpha_pattern, module);
    return v ? *v : lora_alpha;
  }
  // The factor on B·A: alpha / r, or alpha / sqrt(r) with rsLoRA.
  double scaling_for(const std::string& module) const {
    const double rk = double(rank_for(module));
    return alpha_for(module) / (use_rslora ? std::sqrt(rk) : rk);
  }
  // Whether a new adapter puts LoRA on `module` (peft's check_target_module_exists, without
  // exclude_modules and layer selection, which this reader refuses).
  bool targets(const std::string& module) const {
    if (!target_regex.empty()) return regex_full_match(target_regex, module);
    for (const std::string& t : target_modules) {
      // A suffix at a '.' boundary. (No line starts with `module`: nvcc reads that as a C++20 module
      // declaration and warns.)
      const bool suffix = module.size() > t.size() && module.compare(module.size() - t.size(), t.size(), t) == 0;
      if (module == t || (suffix && module[module.size() - t.size() - 1] == '.')) return true;
    }
    return false;
  }

  static bool regex_full_match(const std::string& pattern, const std::string& s) {
    try {
      return std::regex_match(s, std::regex(pattern));
    } catch (const std::regex_error&) {
      fail("LoRA config: cannot compile the pattern '", pattern, "'");
    }
  }
};

struct LoraWeights {
  Tensor<float, Cpu> A;          // [r, in]
  Tensor<float, Cpu> B;          // [out, r]
  Tensor<float, Cpu> magnitude;  // [out]; DoRA only, undefined otherwise
  double scaling = 1;            // LoraConfig::scaling_for(module)
};

struct Adapter {
  LoraConfig config;
  std::map<std::string, LoraWeights> modules;           // base module name -> weights
  std::map<std::string, Tensor<float, Cpu>> overrides;  // base parameter name -> replacement
};

namespace detail {
inline const std::string kPeftPrefix = "base_model.model.";

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
// JSON for a value peft writes as an int when it is whole (lora_alpha = 8, not 8.0).
inline nlohmann::json json_number(double v) {
  if (std::floor(v) == v && std::abs(v) < 9e15) return int64_t(v);
  return v;
}
inline std::vector<std::string> string_list(const JsonFields& f, const std::string& key) {
  if (!f.has(key)) return {};
  const auto& v = f.raw(key);
  CTMLLM_CHECK(v.is_array(), f.source(), ": '", key, "' must be a list of strings, got ", v.dump());
  std::vector<std::string> out;
  for (const auto& e : v) {
    CTMLLM_CHECK(e.is_string(), f.source(), ": '", key, "' must be a list of strings, got ", v.dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}
inline void check_regex(const std::string& pattern, const std::string& source, const std::string& key) {
  try {
    std::regex re(pattern);
  } catch (const std::regex_error&) {
    fail(source, ": '", key, "' pattern '", pattern, "' is not a valid regular expression");
  }
}
// Checks one module's tensors against the config; `where` names the file in errors.
inline void check_lora_module(const LoraConfig& c, const std::string& module, const LoraWeights& w, const std::string& where) {
  CTMLLM_CHECK(w.A.defined() && w.B.defined(), where, ": LoRA module '", module, "' needs both lora_A and lora_B");
  const int64_t r = c.rank_for(module);
  CTMLLM_CHECK(w.A.rank() == 2 && w.B.rank() == 2 && w.A.size(0) == r && w.B.size(1) == r, where, ": LoRA module '",
               module, "' has lora_A ", w.A.shape(), " and lora_B ", w.B.shape(), ", expected [", r, ", in] and [out, ", r, "]");
  CTMLLM_CHECK(c.use_dora == w.magnitude.defined(), where, ": LoRA module '", module, "' ",
               c.use_dora ? "has no lora_magnitude_vector (use_dora is set)" : "has a lora_magnitude_vector without use_dora");
  CTMLLM_CHECK(!w.magnitude.defined() || w.magnitude.shape() == Shape{w.B.size(0)}, where, ": LoRA module '", module,
               "' has lora_magnitude_vector ", w.magnitude.shape(), ", expected [", w.B.size(0), "]");
}
}  // namespace detail

inline LoraConfig parse_lora_config(const nlohmann::json& j, const std::string& source) {
  CTMLLM_CHECK(j.is_object(), source, ": the adapter config is not a JSON object");
  const JsonFields f(j, source);
  const std::string type = f.string("peft_type");
  CTMLLM_CHECK(type == "LORA", source, ": peft_type '", type, "' is not supported (only LORA)");
  // Variants whose weights mean something else, or that select modules in ways not read here.
  for (const char* key : {"layers_to_transform", "layers_pattern", "exclude_modules", "layer_replication",
                          "target_parameters", "trainable_token_indices", "alora_invocation_tokens"}) {
    const bool unset = !f.has(key) || ((f.raw(key).is_array() || f.raw(key).is_string()) && f.raw(key).empty());
    CTMLLM_CHECK(unset, source, ": '", key, "' is not supported");
  }
  for (const char* key : {"lora_bias", "use_qalora", "use_bdlora"})
    CTMLLM_CHECK(!f.boolean(key, false), source, ": '", key, "' is not supported");

  LoraConfig c;
  c.r = f.integer("r");
  CTMLLM_CHECK(c.r > 0, source, ": 'r' must be positive, got ", c.r);
  c.lora_alpha = f.number("lora_alpha", double(c.r));
  c.lora_dropout = f.number("lora_dropout", 0.0);
  CTMLLM_CHECK(c.lora_dropout >= 0 && c.lora_dropout < 1, source, ": 'lora_dropout' must be in [0, 1), got ", c.lora_dropout);
  if (f.has("target_modules") && f.raw("target_modules").is_string()) c.target_regex = f.string("target_modules");
  else c.target_modules = detail::string_list(f, "target_modules");
  if (!c.target_regex.empty()) detail::check_regex(c.target_regex, source, "target_modules");
  c.use_dora = f.boolean("use_dora", false);
  c.use_rslora = f.boolean("use_rslora", false);
  c.bias = f.string("bias", "none");
  CTMLLM_CHECK(c.bias == "none" || c.bias == "all" || c.bias == "lora_only", source, ": 'bias' must be none, all or lora_only, got '",
               c.bias, "'");
  c.fan_in_fan_out = f.boolean("fan_in_fan_out", false);
  c.base_model_name_or_path = f.string("base_model_name_or_path", "");
  c.modules_to_save = detail::string_list(f, "modules_to_save");
  c.task_type = f.string("task_type", "");
  if (f.has("rank_pattern")) {
    const JsonFields p = f.object("rank_pattern");
    for (const auto& [pattern, _] : f.raw("rank_pattern").items()) {
      detail::check_regex(pattern, source, "rank_pattern");
      c.rank_pattern[pattern] = p.integer(pattern);
      CTMLLM_CHECK(c.rank_pattern[pattern] > 0, source, ": rank_pattern '", pattern, "' must be positive");
    }
  }
  if (f.has("alpha_pattern")) {
    const JsonFields p = f.object("alpha_pattern");
    for (const auto& [pattern, _] : f.raw("alpha_pattern").items()) {
      detail::check_regex(pattern, source, "alpha_pattern");
      c.alpha_pattern[pattern] = p.number(pattern);
    }
  }
  static const char* const known[] = {"peft_type", "r", "lora_alpha", "lora_dropout", "target_modules", "use_dora",
                                      "use_rslora", "bias", "fan_in_fan_out", "base_model_name_or_path",
                                      "modules_to_save", "task_type", "rank_pattern", "alpha_pattern"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find_if(std::begin(known), std::end(known), [&](const char* k) { return it.key() == k; }) == std::end(known))
      c.extra[it.key()] = it.value();
  return c;
}

inline nlohmann::json lora_config_json(const LoraConfig& c) {
  nlohmann::json j = c.extra;
  if (!j.contains("inference_mode")) j["inference_mode"] = true;
  j["peft_type"] = "LORA";
  j["r"] = c.r;
  j["lora_alpha"] = detail::json_number(c.lora_alpha);
  j["lora_dropout"] = c.lora_dropout;
  j["target_modules"] = c.target_regex.empty() ? nlohmann::json(c.target_modules) : nlohmann::json(c.target_regex);
  j["use_dora"] = c.use_dora;
  j["use_rslora"] = c.use_rslora;
  j["bias"] = c.bias;
  j["fan_in_fan_out"] = c.fan_in_fan_out;
  j["base_model_name_or_path"] = c.base_model_name_or_path.empty() ? nlohmann::json() : nlohmann::json(c.base_model_name_or_path);
  j["modules_to_save"] = c.modules_to_save.empty() ? nlohmann::json() : nlohmann::json(c.modules_to_save);
  j["task_type"] = c.task_type.empty() ? nlohmann::json() : nlohmann::json(c.task_type);
  j["rank_pattern"] = nlohmann::json::object();
  for (const auto& [k, v] : c.rank_pattern) j["rank_pattern"][k] = v;
  j["alpha_pattern"] = nlohmann::json::object();
  for (const auto& [k, v] : c.alpha_pattern) j["alpha_pattern"][k] = detail::json_number(v);
  return j;
}

// Reads an adapter folder (adapter_config.json + adapter_model.safetensors). Tensors come back as
// float32 (views of the mapped file when stored as float32).
inline Adapter load_adapter(const std::string& dir) {
  const std::string cfg_path = dir + "/adapter_config.json";
  Adapter a;
  a.config = parse_lora_config(read_json_file(cfg_path), cfg_path);
  const std::string st_path = dir + "/adapter_model.safetensors";
  CTMLLM_CHECK(std::filesystem::exists(st_path), dir, ": no adapter_model.safetensors (adapter_model.bin is not read)");
  const SafeTensorsFile st(st_path);
  const LoraConfig& c = a.config;
  for (const std::string& name : st.names()) {
    CTMLLM_CHECK(name.compare(0, detail::kPeftPrefix.size(), detail::kPeftPrefix) == 0, st_path, ": tensor '", name,
                 "' does not start with '", detail::kPeftPrefix, "'");
    const std::string rest = name.substr(detail::kPeftPrefix.size());
    CTMLLM_CHECK(rest.find("lora_embedding_") == std::string::npos, st_path, ": tensor '", name,
                 "': LoRA on embeddings is not supported");
    Tensor<float, Cpu> t = st.get<float>(name);
    auto module_of = [&](const std::string& suffix) { return rest.substr(0, rest.size() - suffix.size()); };
    if (detail::ends_with(rest, ".lora_A.weight")) {
      a.modules[module_of(".lora_A.weight")].A = t;
    } else if (detail::ends_with(rest, ".lora_B.weight")) {
      a.modules[module_of(".lora_B.weight")].B = t;
    } else if (detail::ends_with(rest, ".lora_magnitude_vector")) {
      a.modules[module_of(".lora_magnitude_vector")].magnitude = t;
    } else {
      CTMLLM_CHECK(rest.find(".lora_") == std::string::npos, st_path, ": unknown LoRA tensor '", name, "'");
      CTMLLM_CHECK(!c.modules_to_save.empty() || c.bias != "none", st_path, ": tensor '", name,
                   "' replaces a base parameter, but the config has no modules_to_save and bias is 'none'");
      a.overrides[rest] = t;
    }
  }
  for (auto& [module, w] : a.modules) {
    detail::check_lora_module(c, module, w, st_path);
    w.scaling = c.scaling_for(module);
  }
  return a;
}

// Writes `dir`/adapter_config.json and `dir`/adapter_model.safetensors (float32, peft's names),
// creating the folder if needed.
inline void save_adapter(const Adapter& a, const std::string& dir) {
  std::filesystem::create_directories(dir);
  SafeTensorsWriter w;
  for (const auto& [module, lw] : a.modules) {
    detail::check_lora_module(a.config, module, lw, dir);
    const std::string base = detail::kPeftPrefix + module;
    w.add(base + ".lora_A.weight", lw.A);
    w.add(base + ".lora_B.weight", lw.B);
    if (lw.magnitude.defined()) w.add(base + ".lora_magnitude_vector", lw.magnitude);
  }
  for (const auto& [name, t] : a.overrides) w.add(detail::kPeftPrefix + name, t);
  w.set_metadata("format", "pt");
  w.write(dir + "/adapter_model.safetensors");
  const std::string cfg = dir + "/adapter_config.json";
  std::ofstream out(cfg, std::ios::trunc);
  CTMLLM_CHECK(out.good(), cfg, ": cannot open for writing");
  out << lora_config_json(a.config).dump(2) << "\n";
  CTMLLM_CHECK(out.good(), cfg, ": write failed");
}

}  // namespace ctmllm::io
