#pragma once
// A tokenizer over a SentencePiece tokenizer.model: the model's encode/decode plus tokens added
// later (add_special_token, e.g. <im_patch>), which are split out of the text first, as HF's
// slow Llama tokenizer does, and BOS / EOS around the ids when add_special_tokens is set.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/added_vocabulary.hpp"
#include "ctmllm/text/sentencepiece_model.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

class SentencePieceTokenizer {
 public:
  explicit SentencePieceTokenizer(SentencePieceModel model) : model_(std::move(model)) {}

  const SentencePieceModel& model() const { return model_; }
  // Whether encode(text, true) adds BOS / EOS (tokenizer_config.json add_bos_token / add_eos_token;
  // Llama's defaults: BOS yes, EOS no).
  void set_add_bos_eos(bool bos, bool eos) {
    add_bos_ = bos;
    add_eos_ = eos;
  }

  // Ids of `text`; text that is not valid UTF-8 is an Error.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const {
    check_utf8(text, "encode");
    std::vector<int32_t> ids;
    if (add_special_tokens && add_bos_ && model_.bos_id()) ids.push_back(*model_.bos_id());
    std::vector<AddedSplit> splits;
    added_.split(text, false, splits);
    for (const AddedSplit& s : splits) {
      if (s.id >= 0) {
        ids.push_back(s.id);
      } else {
        model_.encode(text.substr(s.begin, s.end - s.begin), ids);
      }
    }
    if (add_special_tokens && add_eos_ && model_.eos_id()) ids.push_back(*model_.eos_id());
    return ids;
  }

  // Special pieces (<s>, </s>, <unk>) and special added tokens are dropped with skip_special_tokens;
  // otherwise control pieces and added tokens appear as their text and <unk> as unk_surface.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    std::string out;
    bool bos_space_allowed = true;
    size_t run = 0;  // start of the current run of ordinary model pieces
    for (size_t i = 0; i <= ids.size(); ++i) {
      const bool end = i == ids.size();
      const AddedToken* a = end ? nullptr : added_.by_id(ids[i]);
      if (!end) {
        CTMLLM_CHECK(a || model_.valid_id(ids[i]), "decode: token id ", ids[i], " is not in the vocabulary (size ",
                     vocab_size(), ")");
        if (!a && !model_.is_special(ids[i])) continue;
      }
      model_.decode(ids.data() + run, ids.data() + i, bos_space_allowed, out);
      run = i + 1;
      if (end || (skip_special_tokens && is_special(ids[i]))) continue;
      out += a ? a->content
               : model_.piece(ids[i]).type == SentencePieceModel::PieceType::Unknown ? model_.unk_surface()
                                                                                       : model_.piece(ids[i]).text;
    }
    return out;
  }

  std::optional<int32_t> token_to_id(std::string_view token) const {
    if (const AddedToken* a = added_.by_content(token)) return a->id;
    return model_.piece_to_id(token);
  }
  std::optional<std::string> id_to_token(int32_t id) const {
    if (const AddedToken* a = added_.by_id(id)) return a->content;
    if (model_.valid_id(id)) return model_.piece(id).text;
    return std::nullopt;
  }
  bool is_special(int32_t id) const {
    if (const AddedToken* a = added_.by_id(id)) return a->special;
    return model_.is_special(id);
  }
  size_t vocab_size() const { return size_t(std::max<int64_t>(int64_t(model_.size()), added_.end_id())); }

  // Registers `content` as a special token split out of text before the model sees it: its
  // existing piece id when it is one, a new id (vocab_size()) otherwise. Returns the id.
  int32_t add_special_token(const std::string& content) {
    CTMLLM_CHECK(!content.empty() && utf8_error_offset(content) == std::string_view::npos,
                 "add_special_tokens: empty or invalid UTF-8 token");
    AddedToken tok;
    tok.content = content;
    tok.id = token_to_id(content).value_or(int32_t(vocab_size()));
    tok.special = true;
    added_.add(tok, content);
    return tok.id;
  }

 private:
  SentencePieceModel model_;
  AddedVocabulary added_;
  bool add_bos_ = true, add_eos_ = false;
};

}  // namespace ctmllm::text
