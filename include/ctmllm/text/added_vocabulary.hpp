#pragma once
// Added tokens (special tokens such as <|eot_id|>, and tokens added after training such as
// <im_patch>): found inside text before the model sees it, exactly as HF tokenizers' AddedVocabulary
// does. Matching is leftmost-longest; a match of a `single_word` token is dropped when a word
// character (\w) touches it; `lstrip` / `rstrip` make the token absorb white space on that side.
// Tokens with normalized=false match the raw text, the others match the normalized text.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ctmllm/text/string_map.hpp"
#include "ctmllm/text/unicode.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// A piece of text between added tokens ([begin, end) of the searched text, id < 0), or the
// span an added token covers (id >= 0).
struct AddedSplit {
  size_t begin, end;
  int32_t id;
};

class AddedVocabulary {
 public:
  // Adds or replaces (same content) a token; `pattern` is what it matches: its content, or for
  // normalized tokens its content after the tokenizer's normalizer.
  void add(const AddedToken& t, std::string pattern) {
    size_t i = tokens_.size();
    if (const auto it = by_content_.find(t.content); it != by_content_.end()) {
      i = it->second;
      unlist(i);
      by_id_.erase(tokens_[i].id);
      tokens_[i] = t;
      patterns_[i] = std::move(pattern);
    } else {
      tokens_.push_back(t);
      patterns_.push_back(std::move(pattern));
      by_content_[t.content] = i;
    }
    by_id_[t.id] = i;
    end_id_ = std::max<int64_t>(end_id_, int64_t(t.id) + 1);
    list(i);
  }

  const AddedToken* by_id(int32_t id) const {
    const auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
  }
  // The text a token matches: its content, or for a normalized token its normalized content (HF
  // decodes a normalized token as that text too).
  const std::string* pattern_of(int32_t id) const {
    const auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &patterns_[it->second];
  }
  const AddedToken* by_content(std::string_view content) const {
    const auto it = by_content_.find(content);
    return it == by_content_.end() ? nullptr : &tokens_[it->second];
  }
  // One past the largest id, 0 when empty.
  int64_t end_id() const { return end_id_; }

  // Splits `text` at the tokens whose `normalized` flag equals `normalized` (HF find_matches),
  // appending non-empty splits in order to `out`.
  void split(std::string_view text, bool normalized, std::vector<AddedSplit>& out) const {
    const Matcher& m = matchers_[normalized ? 1 : 0];
    size_t start_offset = 0, pos = 0;
    while (true) {
      size_t index = 0, match_begin = 0;
      if (!m.find(text, patterns_, pos, match_begin, index)) break;
      const AddedToken& t = tokens_[index];
      const size_t match_end = match_begin + patterns_[index].size();
      pos = match_end;
      size_t start = match_begin, stop = match_end;
      if (t.single_word) {
        const bool word_before = start > 0 && is_word_char(last_char(text.substr(0, start)));
        const bool word_after = stop < text.size() && is_word_char(first_char(text.substr(stop)));
        if (word_before || word_after) continue;
      }
      if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
      if (t.rstrip) stop += leading_space_length(text.substr(stop));
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, t.id});
      start_offset = stop;
    }
    if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
  }

 private:
  // Candidates by first byte, longest pattern first, so the first hit at a position is the
  // leftmost-longest match.
  struct Matcher {
    std::array<std::vector<size_t>, 256> by_first_byte;

    bool find(std::string_view text, const std::vector<std::string>& patterns, size_t from, size_t& at,
              size_t& index) const {
      for (size_t i = from; i < text.size(); ++i) {
        const auto& cands = by_first_byte[static_cast<unsigned char>(text[i])];
        for (size_t c : cands) {
          if (text.substr(i).starts_with(patterns[c])) {
            at = i;
            index = c;
            return true;
          }
        }
      }
      return false;
    }
  };

  std::vector<size_t>* candidates(size_t i) {
    if (patterns_[i].empty()) return nullptr;  // an empty pattern never matches
    return &matchers_[tokens_[i].normalized ? 1 : 0].by_first_byte[static_cast<unsigned char>(patterns_[i][0])];
  }
  // Files token i under its pattern's first byte, after the longer and equally long patterns.
  void list(size_t i) {
    if (auto* v = candidates(i)) {
      const auto at = std::find_if(v->begin(), v->end(), [&](size_t c) { return patterns_[c].size() < patterns_[i].size(); });
      v->insert(at, i);
    }
  }
  void unlist(size_t i) {
    if (auto* v = candidates(i)) v->erase(std::find(v->begin(), v->end(), i));
  }

  static char32_t first_char(std::string_view s) {
    size_t i = 0;
    return next_char(s, i);
  }
  static char32_t last_char(std::string_view s) {
    size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return first_char(s.substr(i));
  }
  // Start of the run of white space that ends `s` (s.size() when there is none).
  static size_t trailing_space_start(std::string_view s) {
    size_t end = s.size();
    while (end > 0) {
      size_t i = end - 1;
      while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
      if (!is_white_space(first_char(s.substr(i)))) break;
      end = i;
    }
    return end;
  }
  static size_t leading_space_length(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
      size_t j = i;
      if (!is_white_space(next_char(s, j))) break;
      i = j;
    }
    return i;
  }

  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  std::unordered_map<int32_t, size_t> by_id_;
  StringMap<size_t> by_content_;
  int64_t end_id_ = 0;
  std::array<Matcher, 2> matchers_;  // [0]: normalized=false tokens, [1]: normalized=true
};

}  // namespace ctmllm::text
