#pragma once
// Sentence splitting and case-insensitive matching for report text, shared by the finding
// labeller and the report augmenters. A sentence ends at a line break, or at '.', '!' or '?' (with any run of
// further terminal marks and closing quotes or brackets) followed by white space or the end of
// the text. So "2.3 cm" and "1.5.2018" stay whole, and so does a period after a known abbreviation
// ("e.g.", "approx.", "vs.").
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/eval/utf8.hpp"

namespace ctmllm::eval {

// Words (lowercase, without the final period) whose period does not end a sentence.
inline const std::vector<std::string>& default_abbreviations() {
  static const std::vector<std::string> words = {"approx", "appr", "e.g", "i.e", "vs", "cf", "fig", "dr", "mr", "mrs", "ms", "prof"};
  return words;
}

namespace detail {

inline bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// The word (letters and inner periods) that ends right before position `end`, lowercased.
inline std::string word_before(std::string_view s, size_t end) {
  size_t b = end;
  while (b > 0 && (std::isalpha(static_cast<unsigned char>(s[b - 1])) || s[b - 1] == '.')) --b;
  std::string w(s.substr(b, end - b));
  for (char& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return w;
}

}  // namespace detail

// `s` without leading and trailing ASCII white space.
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && detail::ascii_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && detail::ascii_space(s.back())) s.remove_suffix(1);
  return s;
}

// Does `s` end with a sentence-final '.', '!' or '?'?
inline bool ends_sentence(std::string_view s) {
  return !s.empty() && (s.back() == '.' || s.back() == '!' || s.back() == '?');
}

// The sentences of `text`, trimmed, as views into it; empty pieces are dropped.
inline std::vector<std::string_view> split_sentences(std::string_view text,
                                                     const std::vector<std::string>& abbreviations = default_abbreviations()) {
  const auto terminal = [](char c) { return c == '.' || c == '!' || c == '?'; };
  const auto closing = [&](char c) { return terminal(c) || c == ')' || c == ']' || c == '"' || c == '\''; };
  std::vector<std::string_view> out;
  const auto emit = [&](size_t begin, size_t end) {
    const std::string_view s = trim(text.substr(begin, end - begin));
    if (!s.empty()) out.push_back(s);
  };
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' || text[i] == '\r') {
      emit(start, i);
      start = i + 1;
    } else if (terminal(text[i])) {
      size_t j = i + 1;
      while (j < text.size() && closing(text[j])) ++j;
      if (j < text.size() && !detail::ascii_space(text[j])) continue;
      if (text[i] == '.' && j == i + 1) {
        const std::string w = detail::word_before(text, i);
        bool abbreviation = false;
        for (const std::string& a : abbreviations) abbreviation = abbreviation || w == a;
        if (abbreviation) continue;
      }
      emit(start, j);
      start = j;
      i = j - 1;
    }
  }
  emit(start, text.size());
  return out;
}

// Case-insensitive substring test (lowercase() of both sides).
inline bool contains_ci(std::string_view haystack, std::string_view needle) {
  return lowercase(haystack, "contains_ci").find(lowercase(needle, "contains_ci")) != std::string::npos;
}

}  // namespace ctmllm::eval
