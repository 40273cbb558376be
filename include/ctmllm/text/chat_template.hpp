#pragma once
// Chat templates: the prompt formats of the decoder families, rendered as transformers'
// apply_chat_template renders the families' Jinja templates (no Jinja interpreter here; each
// family is written out below), plus a small JSON format for anything else.
//
// Families (name: what the template writes):
//   llama3    <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>...
//   llama3.1  llama3, behind a system block that always starts with
//             "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
//   phi3      <|system|>\n{content}<|end|>\n<|user|>\n...<|assistant|>\n (eos without generation prompt)
//   chatml    <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
//   qwen2.5   chatml, with Qwen's default system prompt when the conversation has none
//   qwen3     chatml; an assistant turn after the last user turn gets its <think> block
//   mistral   <s> [INST] {system}\n\n{user} [/INST] {assistant}</s> (Mistral-7B-Instruct v0.1/v0.2)
//   gemma     <bos><start_of_turn>user\n{system}\n\n{content|trim}<end_of_turn>\n ... (Gemma-3 style)
// Roles are system / user / assistant (llama3 takes any role name); anything else is an Error, as is
// a mistral / gemma conversation whose user and assistant turns do not alternate.
//
// User-defined templates (ChatTemplate::from_json / from_file); all fields optional but "roles",
// unknown keys an Error:
//   {"bos": "<s>", "default_system": "You are ...", "trim": false,
//    "roles": {"system": {"prefix": "...", "suffix": "..."}, "user": {...}, "assistant": {...}},
//    "generation_prompt": "<|assistant|>\n"}
// renders bos, then (default_system as a system turn when the first message is not one), then
// prefix + content + suffix per message (content stripped of surrounding white space when "trim"),
// then the generation prompt when asked for.
#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/text/unicode.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

struct ChatMessage {
  std::string role, content;
};

class ChatTemplate {
 public:
  // One of the family names above.
  static ChatTemplate family(std::string_view name) {
    for (const auto& f : kFamilies)
      if (name == f.name) {
        ChatTemplate t;
        t.family_ = f.family;
        t.name_ = f.name;
        t.bos_ = f.bos;
        t.eos_ = f.eos;
        return t;
      }
    fail("chat template: unknown family '", name, "' (known: llama3, llama3.1, phi3, chatml, qwen2.5, qwen3, mistral, gemma)");
  }

  // The family whose Jinja template `source` is (tokenizer_config.json's chat_template), if known.
  static std::optional<ChatTemplate> detect(std::string_view source) {
    auto has = [&](std::string_view s) { return source.find(s) != std::string_view::npos; };
    if (has("<|start_header_id|>")) return family(has("Cutting Knowledge Date") ? "llama3.1" : "llama3");
    if (has("<|im_start|>")) {
      if (has("You are Qwen, created by Alibaba Cloud")) return family("qwen2.5");
      return family(has("<think>") ? "qwen3" : "chatml");
    }
    if (has("<start_of_turn>")) return family("gemma");
    if (has("<|user|>") && has("<|assistant|>") && has("<|end|>")) return family("phi3");
    if (has("[INST]") && !has("<<SYS>>")) return family("mistral");
    return std::nullopt;
  }

  static ChatTemplate from_json(const nlohmann::json& j, const std::string& where) {
    CTMLLM_CHECK(j.is_object(), where, ": chat template is not a JSON object");
    ChatTemplate t;
    t.family_ = Family::Custom;
    t.name_ = "custom";
    auto str = [&](const nlohmann::json& o, const char* key, const std::string& what) -> std::string {
      if (!o.contains(key)) return {};
      CTMLLM_CHECK(o[key].is_string(), where, ": chat template ", what, "\"", key, "\" is not a string");
      return o[key].get<std::string>();
    };
    auto only = [&](const nlohmann::json& o, std::initializer_list<std::string_view> keys, const std::string& what) {
      for (auto it = o.begin(); it != o.end(); ++it)
        CTMLLM_CHECK(std::find(keys.begin(), keys.end(), it.key()) != keys.end(), where, ": chat template ", what,
                     "has an unknown key \"", it.key(), "\"");
    };
    only(j, {"bos", "default_system", "trim", "roles", "generation_prompt"}, "");
    t.bos_ = str(j, "bos", "");
    t.default_system_ = str(j, "default_system", "");
    t.generation_prompt_ = str(j, "generation_prompt", "");
    if (j.contains("trim")) {
      CTMLLM_CHECK(j["trim"].is_boolean(), where, ": chat template \"trim\" is not a boolean");
      t.trim_ = j["trim"].get<bool>();
    }
    CTMLLM_CHECK(j.contains("roles") && j["roles"].is_object() && !j["roles"].empty(), where,
                 ": chat template has no \"roles\" object");
    for (auto it = j["roles"].begin(); it != j["roles"].end(); ++it) {
      CTMLLM_CHECK(it.value().is_object(), where, ": chat template role '", it.key(), "' is not an object");
      const std::string what = "role '" + it.key() + "' ";
      only(it.value(), {"prefix", "suffix"}, what);
      t.roles_.push_back({it.key(), str(it.value(), "prefix", what), str(it.value(), "suffix", what)});
    }
    CTMLLM_CHECK(t.default_system_.empty() || t.find_role("system"), where,
                 ": chat template sets default_system but has no \"system\" role");
    return t;
  }
  static ChatTemplate from_file(const std::string& path) { return from_json(read_json_file(path), path); }

  const std::string& name() const { return name_; }
  // The bos / eos token text the families write (from tokenizer_config.json when it has them).
  void set_bos_token(std::string bos) { bos_ = std::move(bos); }
  void set_eos_token(std::string eos) { eos_ = std::move(eos); }

  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const {
    switch (family_) {
      case Family::Llama3: return llama3(messages, add_generation_prompt, false);
      case Family::Llama31: return llama3(messages, add_generation_prompt, true);
      case Family::Phi3: return phi3(messages, add_generation_prompt);
      case Family::ChatML:
      case Family::Qwen25:
      case Family::Qwen3: return chatml(messages, add_generation_prompt);
      case Family::Mistral: return mistral(messages);
      case Family::Gemma: return gemma(messages, add_generation_prompt);
      case Family::Custom: return custom(messages, add_generation_prompt);
    }
    return {};
  }

 private:
  enum class Family { Llama3, Llama31, Phi3, ChatML, Qwen25, Qwen3, Mistral, Gemma, Custom };
  struct FamilyInfo {
    const char* name;
    Family family;
    const char* bos;
    const char* eos;
  };
  static constexpr FamilyInfo kFamilies[] = {
      {"llama3", Family::Llama3, "<|begin_of_text|>", "<|eot_id|>"},
      {"llama3.1", Family::Llama31, "<|begin_of_text|>", "<|eot_id|>"},
      {"phi3", Family::Phi3, "<s>", "<|endoftext|>"},
      {"chatml", Family::ChatML, "", "<|im_end|>"},
      {"qwen2.5", Family::Qwen25, "", "<|im_end|>"},
      {"qwen3", Family::Qwen3, "", "<|im_end|>"},
      {"mistral", Family::Mistral, "<s>", "</s>"},
      {"gemma", Family::Gemma, "<bos>", "<eos>"},
  };
  struct Role {
    std::string name, prefix, suffix;
  };

  // Jinja's |trim: Python's str.strip() of white space.
  static std::string trim(std::string_view s) {
    size_t b = 0, e = s.size();
    while (b < e) {
      size_t i = b;
      if (!is_python_space(next_char(s, i))) break;
      b = i;
    }
    while (e > b) {
      size_t i = e - 1;
      while (i > b && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
      size_t j = i;
      if (!is_python_space(next_char(s, j))) break;
      e = i;
    }
    return std::string(s.substr(b, e - b));
  }
  // Python's str.strip / lstrip / rstrip of '\n' only.
  static std::string_view strip_newlines(std::string_view s, bool left, bool right) {
    while (left && s.starts_with('\n')) s.remove_prefix(1);
    while (right && s.ends_with('\n')) s.remove_suffix(1);
    return s;
  }

  void check_role(const ChatMessage& m, std::initializer_list<std::string_view> allowed) const {
    for (std::string_view r : allowed)
      if (m.role == r) return;
    fail("chat template ", name_, ": role '", m.role, "' is not supported");
  }
  // user, assistant, user, ... as the mistral and gemma templates require.
  void check_alternation(const std::vector<ChatMessage>& turns, size_t first) const {
    for (size_t i = first; i < turns.size(); ++i) {
      check_role(turns[i], {"user", "assistant"});
      CTMLLM_CHECK((turns[i].role == "user") == ((i - first) % 2 == 0), "chat template ", name_,
                   ": after the optional system message, roles must alternate user/assistant/user/...");
    }
  }
  const Role* find_role(std::string_view name) const {
    for (const Role& r : roles_)
      if (r.name == name) return &r;
    return nullptr;
  }

  std::string llama3(const std::vector<ChatMessage>& messages, bool gen, bool v31) const {
    std::string out;
    size_t first = 0;
    if (v31) {
      std::string system;
      if (!messages.empty() && messages[0].role == "system") {
        system = trim(messages[0].content);
        first = 1;
      }
      out += bos_ + "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n";
      out += "Today Date: 26 Jul 2024\n\n" + system + "<|eot_id|>";
    }
    for (size_t i = first; i < messages.size(); ++i) {
      if (v31) check_role(messages[i], {"system", "user", "assistant"});
      if (!v31 && i == 0) out += bos_;
      out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" + trim(messages[i].content) + "<|eot_id|>";
    }
    if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
  }

  std::string phi3(const std::vector<ChatMessage>& messages, bool gen) const {
    std::string out;
    for (const ChatMessage& m : messages) {
      check_role(m, {"system", "user", "assistant"});
      out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
    }
    out += gen ? "<|assistant|>\n" : eos_;
    return out;
  }

  std::string chatml(const std::vector<ChatMessage>& messages, bool gen) const {
    std::string out;
    if (family_ == Family::Qwen25 && (messages.empty() || messages[0].role != "system"))
      out += "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";
    // The last user turn that is not a wrapped tool response (the whole conversation when none).
    size_t last_query = messages.size() - 1;
    for (size_t i = messages.size(); i-- > 0;) {
      const std::string& c = messages[i].content;
      if (messages[i].role == "user" && !(c.starts_with("<tool_response>") && c.ends_with("</tool_response>"))) {
        last_query = i;
        break;
      }
    }
    for (size_t i = 0; i < messages.size(); ++i) {
      const ChatMessage& m = messages[i];
      check_role(m, {"system", "user", "assistant"});
      std::string content = m.content;
      if (family_ == Family::Qwen3 && m.role == "assistant") {
        // Qwen3 moves reasoning into a <think> block, written only after the last user turn.
        std::string reasoning;
        if (const size_t close = content.find("</think>"); close != std::string::npos) {
          std::string_view before(content.data(), close);
          if (const size_t open = before.rfind("<think>"); open != std::string_view::npos) before.remove_prefix(open + 7);
          reasoning = strip_newlines(before, true, true);
          content = strip_newlines(std::string_view(content).substr(content.rfind("</think>") + 8), true, false);
        }
        if (i > last_query && (i + 1 == messages.size() || !reasoning.empty())) {
          out += "<|im_start|>assistant\n<think>\n" + reasoning + "\n</think>\n\n" + content + "<|im_end|>\n";
          continue;
        }
      }
      out += "<|im_start|>" + m.role + "\n" + content + "<|im_end|>\n";
    }
    if (gen) out += "<|im_start|>assistant\n";
    return out;
  }

  std::string mistral(const std::vector<ChatMessage>& messages) const {
    const bool has_system = !messages.empty() && messages[0].role == "system";
    const size_t first = has_system ? 1 : 0;
    check_alternation(messages, first);
    std::string out = bos_;
    for (size_t i = first; i < messages.size(); ++i) {
      const ChatMessage& m = messages[i];
      if (m.role == "user") {
        out += " [INST] " + (i == first && has_system ? messages[0].content + "\n\n" : std::string()) + m.content + " [/INST]";
      } else {
        out += " " + m.content + eos_;
      }
    }
    return out;
  }

  std::string gemma(const std::vector<ChatMessage>& messages, bool gen) const {
    const bool has_system = !messages.empty() && messages[0].role == "system";
    const size_t first = has_system ? 1 : 0;
    check_alternation(messages, first);
    std::string out = bos_;
    for (size_t i = first; i < messages.size(); ++i) {
      const ChatMessage& m = messages[i];
      out += "<start_of_turn>" + std::string(m.role == "assistant" ? "model" : "user") + "\n";
      if (i == first && has_system) out += messages[0].content + "\n\n";
      out += trim(m.content) + "<end_of_turn>\n";
    }
    if (gen) out += "<start_of_turn>model\n";
    return out;
  }

  std::string custom(const std::vector<ChatMessage>& messages, bool gen) const {
    std::string out = bos_;
    auto turn = [&](const std::string& role, const std::string& content) {
      const Role* r = find_role(role);
      CTMLLM_CHECK(r, "chat template ", name_, ": role '", role, "' is not defined");
      out += r->prefix + (trim_ ? trim(content) : content) + r->suffix;
    };
    if (!default_system_.empty() && (messages.empty() || messages[0].role != "system")) turn("system", default_system_);
    for (const ChatMessage& m : messages) turn(m.role, m.content);
    if (gen) out += generation_prompt_;
    return out;
  }

  Family family_ = Family::Custom;
  std::string name_, bos_, eos_;
  std::string default_system_, generation_prompt_;  // custom templates
  bool trim_ = false;
  std::vector<Role> roles_;
};

}  // namespace ctmllm::text
