#pragma once
// A Hugging Face tokenizer.json: added tokens -> normalizer -> pre-tokenizer -> BPE model ->
// post-processor, and the decoder for the way back. Encoding follows HF tokenizers' order exactly:
//   1. split the raw text at added tokens with normalized=false;
//   2. normalize each remaining piece, then split it at added tokens with normalized=true;
//   3. pre-tokenize each remaining piece and run the model on each pre-token;
//   4. post-process (BOS) when add_special_tokens is set.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/added_vocabulary.hpp"
#include "ctmllm/text/bpe.hpp"
#include "ctmllm/text/decoders.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/text/normalize.hpp"
#include "ctmllm/text/post_processor.hpp"
#include "ctmllm/text/pretokenize.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

class JsonTokenizer {
 public:
  // `where` names the source in error messages.
  static JsonTokenizer from_string(std::string_view json_text, const std::string& where) {
    return from_json(parse_json_text(json_text, where), where);
  }
  static JsonTokenizer from_file(const std::string& path) { return from_json(read_json_file(path), path); }

  static JsonTokenizer from_json(const nlohmann::json& j, const std::string& where) {
    CTMLLM_CHECK(j.is_object(), where, ": tokenizer.json is not a JSON object");
    CTMLLM_CHECK(j.contains("model") && j["model"].is_object(), where, ": no \"model\" section");
    auto section = [&](const char* key) { return j.contains(key) ? j[key] : nlohmann::json(); };
    for (const char* key : {"truncation", "padding"})
      CTMLLM_CHECK(section(key).is_null(), where, ": \"", key, "\" is set; truncation and padding are not supported");
    JsonTokenizer t(BpeModel::from_json(j["model"], where));
    t.normalizer_ = Normalizer::from_json(section("normalizer"), where);
    t.pre_tokenizer_ = PreTokenizer::from_json(section("pre_tokenizer"), where);
    t.post_processor_ = PostProcessor::from_json(section("post_processor"), where);
    t.decoder_ = Decoder::from_json(section("decoder"), where);
    const auto added = section("added_tokens");
    CTMLLM_CHECK(added.is_null() || added.is_array(), where, ": \"added_tokens\" is not an array");
    if (added.is_array()) {
      for (const auto& a : added) {
        CTMLLM_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_unsigned() &&
                         a["id"].get<uint64_t>() <= uint64_t(INT32_MAX) && a.contains("content") && a["content"].is_string(),
                     where, ": an added_tokens entry lacks a valid \"id\" or \"content\"");
        AddedToken tok;
        tok.content = a["content"].get<std::string>();
        auto flag = [&](const char* key, bool fallback) {
          return a.contains(key) && a[key].is_boolean() ? a[key].get<bool>() : fallback;
        };
        tok.special = flag("special", false);
        tok.single_word = flag("single_word", false);
        tok.lstrip = flag("lstrip", false);
        tok.rstrip = flag("rstrip", false);
        tok.normalized = flag("normalized", !tok.special);
        CTMLLM_CHECK(!tok.content.empty() && utf8_error_offset(tok.content) == std::string_view::npos, where,
                     ": added token ", a["id"].get<uint64_t>(), " has empty or invalid UTF-8 content");
        // As HF: the stored id is only a hint; a token the vocab has keeps its vocab id, a new one
        // gets the next free id (the same as the stored one in any consistent file).
        tok.id = t.token_to_id(tok.content).value_or(int32_t(t.vocab_size()));
        t.add_token(tok);
      }
    }
    return t;
  }

  // Ids of `text`; text that is not valid UTF-8 is an Error.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const {
    check_utf8(text, "encode");
    std::vector<int32_t> ids;
    std::vector<AddedSplit> raw, normalized_splits;
    added_.split(text, false, raw);
    std::string normalized;
    for (const AddedSplit& r : raw) {
      if (r.id >= 0) {
        ids.push_back(r.id);
        continue;
      }
      normalized.assign(text.substr(r.begin, r.end - r.begin));
      normalizer_.apply(normalized);
      normalized_splits.clear();
      added_.split(normalized, true, normalized_splits);
      for (const AddedSplit& n : normalized_splits) {
        if (n.id >= 0) {
          ids.push_back(n.id);
          continue;
        }
        const std::string_view piece = std::string_view(normalized).substr(n.begin, n.end - n.begin);
        pre_tokenizer_.run(piece, r.begin == 0 && n.begin == 0,
                           [&](std::string_view pre_token) { model_.tokenize(pre_token, ids); });
      }
    }
    return post_processor_.apply(std::move(ids), add_special_tokens);
  }

  // Text of `ids`; an id that is neither in the vocab nor an added token is an Error.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      const std::string* t = added_.pattern_of(id);
      if (!t) t = model_.id_to_token(id);
      CTMLLM_CHECK(t, "decode: token id ", id, " is not in the vocabulary (size ", vocab_size(), ")");
      // HF decides "special" by the token text, so a normalized special token whose text the
      // normalizer changed is never skipped.
      if (skip_special_tokens && special_contents_.count(*t)) continue;
      tokens.push_back(*t);
    }
    return decoder_.decode(std::move(tokens));
  }

  std::optional<int32_t> token_to_id(std::string_view token) const {
    if (const AddedToken* a = added_.by_content(token)) return a->id;
    return model_.token_to_id(token);
  }
  std::optional<std::string> id_to_token(int32_t id) const {
    if (const std::string* a = added_.pattern_of(id)) return *a;
    if (const std::string* t = model_.id_to_token(id)) return *t;
    return std::nullopt;
  }
  bool is_special(int32_t id) const {
    const AddedToken* a = added_.by_id(id);
    return a && a->special;
  }
  size_t vocab_size() const { return size_t(std::max<int64_t>(int64_t(model_.size()), added_.end_id())); }
  std::optional<int32_t> template_bos_id() const { return post_processor_.leading_special_id(); }

  // Registers `content` as a special added token: its existing id when it is known, a new id
  // (vocab_size()) otherwise. Returns the id.
  int32_t add_special_token(const std::string& content) {
    CTMLLM_CHECK(!content.empty() && utf8_error_offset(content) == std::string_view::npos,
                 "add_special_tokens: empty or invalid UTF-8 token");
    AddedToken tok;
    tok.content = content;
    tok.id = token_to_id(content).value_or(int32_t(vocab_size()));
    tok.special = true;
    add_token(tok);
    return tok.id;
  }

 private:
  explicit JsonTokenizer(BpeModel model) : model_(std::move(model)) {}

  void add_token(const AddedToken& tok) {
    std::string pattern = tok.content;
    if (tok.normalized) normalizer_.apply(pattern);
    added_.add(tok, std::move(pattern));
    if (tok.special) special_contents_.insert(tok.content);
  }

  BpeModel model_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  PostProcessor post_processor_;
  Decoder decoder_;
  AddedVocabulary added_;
  std::unordered_set<std::string> special_contents_;
};

}  // namespace ctmllm::text
