#pragma once
// text::Tokenizer: one facade over a Hugging Face tokenizer.json (byte-level BPE: Llama-3, Qwen2;
// SentencePiece-style BPE: Llama-2, Mistral, Phi-3, Gemma) and a SentencePiece tokenizer.model.
//
//   auto tok = text::Tokenizer::from_file("models/llama3");   // a directory or the file itself
//   std::vector<int32_t> ids = tok.encode(report, /*add_special_tokens=*/true);
//   std::string text = tok.decode(ids, /*skip_special_tokens=*/true);
//   tok.add_special_tokens({"<im_patch>", "<bx_start>", "<bx_end>"});
//   std::string prompt = tok.apply_chat_template({{"system", "..."}, {"user", "..."}});
//
// tokenizer_config.json beside the file, when present, supplies bos/eos/pad tokens, the
// chat_template (detected as one of the families of chat_template.hpp) and, for tokenizer.model,
// add_bos_token / add_eos_token.
//
// Input text must be valid UTF-8: encode() throws an Error naming the byte offset otherwise (text
// is not silently altered before it reaches a model). Output of decode() is always valid UTF-8.
// A Tokenizer is move-only; encode / decode are const and safe to call from several threads.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/chat_template.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/text/sentencepiece_tokenizer.hpp"
#include "ctmllm/text/tokenizer_json.hpp"

namespace ctmllm::text {

class Tokenizer {
 public:
  // `path`: a directory holding tokenizer.json (preferred) or tokenizer.model, or one of those
  // files (a name ending in .json is read as tokenizer.json, anything else as a SentencePiece model).
  static Tokenizer from_file(const std::string& path) {
    std::string file = path, dir;
    if (is_directory(path)) {
      dir = path;
      if (is_regular_file(path + "/tokenizer.json")) {
        file = path + "/tokenizer.json";
      } else if (is_regular_file(path + "/tokenizer.model")) {
        file = path + "/tokenizer.model";
      } else {
        fail(path, ": no tokenizer.json or tokenizer.model in this directory");
      }
    } else {
      const size_t slash = path.rfind('/');
      dir = slash == std::string::npos ? "." : path.substr(0, slash);
    }
    Tokenizer t = file.ends_with(".json") ? Tokenizer(JsonTokenizer::from_file(file))
                                          : Tokenizer(SentencePieceTokenizer(SentencePieceModel::from_file(file)));
    if (const std::string config = dir + "/tokenizer_config.json"; is_regular_file(config)) t.apply_config(read_json_file(config), config);
    return t;
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const {
    return std::visit([&](const auto& b) { return b.encode(text, add_special_tokens); }, backend_);
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const {
    return std::visit([&](const auto& b) { return b.decode(ids, skip_special_tokens); }, backend_);
  }

  std::optional<int32_t> token_to_id(std::string_view token) const {
    return std::visit([&](const auto& b) { return b.token_to_id(token); }, backend_);
  }
  std::string id_to_token(int32_t id) const {
    const auto t = std::visit([&](const auto& b) { return b.id_to_token(id); }, backend_);
    CTMLLM_CHECK(t.has_value(), "id_to_token: token id ", id, " is not in the vocabulary (size ", vocab_size(), ")");
    return *t;
  }
  bool is_special(int32_t id) const {
    return std::visit([&](const auto& b) { return b.is_special(id); }, backend_);
  }
  // One past the largest token id: the number of embedding rows a model needs.
  size_t vocab_size() const {
    return std::visit([](const auto& b) { return b.vocab_size(); }, backend_);
  }

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> pad_id() const { return pad_id_; }

  // Adds special tokens that text can contain (skipped by decode with skip_special_tokens): a
  // token already known keeps its id, a new one gets the next id. Returns the ids, in order.
  std::vector<int32_t> add_special_tokens(const std::vector<std::string>& tokens) {
    std::vector<int32_t> ids;
    for (const std::string& t : tokens)
      ids.push_back(std::visit([&](auto& b) { return b.add_special_token(t); }, backend_));
    return ids;
  }

  // The chat template from tokenizer_config.json (nullptr when it had none or it was not
  // recognised), or the one set with set_chat_template.
  const ChatTemplate* chat_template() const { return chat_template_ ? &*chat_template_ : nullptr; }
  // A family template writes this tokenizer's bos / eos text; a custom one keeps its own.
  void set_chat_template(ChatTemplate t) {
    if (t.name() != "custom") {
      if (bos_token_) t.set_bos_token(*bos_token_);
      if (eos_token_) t.set_eos_token(*eos_token_);
    }
    chat_template_ = std::move(t);
  }
  std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const {
    CTMLLM_CHECK(chat_template_, "apply_chat_template: no chat template (", template_note_,
                 "); choose one with set_chat_template(ChatTemplate::family(...))");
    return chat_template_->render(messages, add_generation_prompt);
  }

 private:
  using Backend = std::variant<JsonTokenizer, SentencePieceTokenizer>;

  explicit Tokenizer(JsonTokenizer b) : backend_(std::move(b)) {
    bos_id_ = std::get<JsonTokenizer>(backend_).template_bos_id();
  }
  explicit Tokenizer(SentencePieceTokenizer b) : backend_(std::move(b)) {
    const SentencePieceModel& m = std::get<SentencePieceTokenizer>(backend_).model();
    bos_id_ = m.bos_id();
    eos_id_ = m.eos_id();
    pad_id_ = m.pad_id();
  }

  static bool is_directory(const std::string& p) {
    std::error_code ec;
    return std::filesystem::is_directory(p, ec);
  }
  static bool is_regular_file(const std::string& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec);
  }

  // tokenizer_config.json: special tokens as "text" or {"content": "text"}, null when absent.
  void apply_config(const nlohmann::json& c, const std::string& where) {
    CTMLLM_CHECK(c.is_object(), where, ": not a JSON object");
    auto token = [&](const char* key, std::optional<int32_t>& id) -> std::optional<std::string> {
      if (!c.contains(key) || c[key].is_null()) return std::nullopt;
      const auto& v = c[key];
      CTMLLM_CHECK(v.is_string() || (v.is_object() && v.contains("content") && v["content"].is_string()), where, ": \"",
                   key, "\" is neither a string nor {\"content\": string}");
      std::string text = v.is_string() ? v.get<std::string>() : v["content"].get<std::string>();
      id = token_to_id(text);
      CTMLLM_CHECK(id.has_value(), where, ": ", key, " '", text, "' is not in the vocabulary");
      return text;
    };
    bos_token_ = token("bos_token", bos_id_);
    eos_token_ = token("eos_token", eos_id_);
    token("pad_token", pad_id_);
    if (auto* sp = std::get_if<SentencePieceTokenizer>(&backend_)) {
      auto flag = [&](const char* key, bool fallback) {
        if (!c.contains(key) || c[key].is_null()) return fallback;
        CTMLLM_CHECK(c[key].is_boolean(), where, ": \"", key, "\" is not a boolean");
        return c[key].get<bool>();
      };
      sp->set_add_bos_eos(flag("add_bos_token", true), flag("add_eos_token", false));
    }
    template_note_ = where + " has no chat_template";
    std::string source;
    if (c.contains("chat_template") && c["chat_template"].is_string()) source = c["chat_template"].get<std::string>();
    if (c.contains("chat_template") && c["chat_template"].is_array())  // named templates: take "default"
      for (const auto& named : c["chat_template"])
        if (named.is_object() && json_string_or(named, "name", "", where) == "default" && named.contains("template") &&
            named["template"].is_string())
          source = named["template"].get<std::string>();
    if (!source.empty()) {
      if (auto t = ChatTemplate::detect(source)) {
        set_chat_template(std::move(*t));
      } else {
        template_note_ = where + "'s chat_template is not one of the known families";
      }
    }
  }

  Backend backend_;
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;
  std::optional<std::string> bos_token_, eos_token_;
  std::optional<ChatTemplate> chat_template_;
  std::string template_note_ = "no tokenizer_config.json was read";
};

}  // namespace ctmllm::text
