#pragma once
// UTF-8 helpers for the text metrics. The reference implementations (sacrebleu, torchmetrics) work
// on Python strings, i.e. on code points, split on Python's notion of white space and lowercase
// with str.lower(); these helpers reproduce the parts of that behaviour the metrics depend on.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::eval {

using text::append_utf8;

// Decodes the character that starts at s[i] and advances i past it. Ill-formed input (overlong
// forms, surrogates, truncated sequences, values above U+10FFFF) throws an Error naming `what`.
inline char32_t decode_next(std::string_view s, size_t& i, std::string_view what) {
  size_t bad = 0;
  CTMLLM_CHECK(text::utf8_char_at(s, i, bad) != 0, what, ": text is not valid UTF-8 (byte ", i, " of ", s.size(), ")");
  return text::next_char(s, i);
}

inline std::u32string decode_utf8(std::string_view s, std::string_view what) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out += decode_next(s, i, what);
  return out;
}

// Python's str.isspace(): what str.split() and str.strip() treat as white space.
inline bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Python's str.split() without arguments: the runs of non-space characters, as views into `s`.
inline std::vector<std::string_view> split_whitespace(std::string_view s, std::string_view what) {
  std::vector<std::string_view> words;
  size_t start = std::string_view::npos;
  for (size_t i = 0; i < s.size();) {
    const size_t at = i;
    if (is_space(decode_next(s, i, what))) {
      if (start != std::string_view::npos) words.push_back(s.substr(start, at - start));
      start = std::string_view::npos;
    } else if (start == std::string_view::npos) {
      start = at;
    }
  }
  if (start != std::string_view::npos) words.push_back(s.substr(start));
  return words;
}

// Python's str.rstrip() without arguments.
inline std::string_view rstrip(std::string_view s, std::string_view what) {
  size_t end = 0;
  for (size_t i = 0; i < s.size();)
    if (!is_space(decode_next(s, i, what))) end = i;
  return s.substr(0, end);
}

// Simple lowercase mapping of one code point, as Python's str.lower() does it for ASCII, Latin-1,
// Latin Extended-A, Greek, basic Cyrillic and the letter-like symbols that lower to them (Kelvin,
// Angstrom and Ohm signs). Other scripts are returned unchanged (Python would lower them too).
inline char32_t lower_char(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0xC0) return c;
  if (c <= 0xDE) return c == 0xD7 ? c : c + 32;
  const bool even = c % 2 == 0;
  if ((c >= 0x100 && c <= 0x137 && c != 0x130) || (c >= 0x14A && c <= 0x177)) return even ? c + 1 : c;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return even ? c : c + 1;
  if (c == 0x178) return 0xFF;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c == 0x2126) return 0x3C9;
  if (c == 0x212A) return 'k';
  if (c == 0x212B) return 0xE5;
  return c;
}

// str.lower() over UTF-8 text (see lower_char). U+0130 lowers to two code points, as in Python.
inline std::string lowercase(std::string_view s, std::string_view what) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const char32_t c = decode_next(s, i, what);
    if (c == 0x130) {
      out += 'i';
      append_utf8(out, 0x307);
    } else {
      append_utf8(out, lower_char(c));
    }
  }
  return out;
}

}  // namespace ctmllm::eval
