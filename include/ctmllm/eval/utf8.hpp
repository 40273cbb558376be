#pragma once
// UTF-8 helpers for the text metrics. The reference implementations (sacrebleu, torchmetrics) work
// on Python strings, i.e. on code points, split on Python's notion of white space and lowercase
// with str.lower(); these helpers reproduce the parts of that behaviour the metrics depend on.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/core/error.hpp"

namespace ctmllm::eval {

inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Decodes the character that starts at s[i] and advances i past it. Ill-formed input (overlong
// forms, surrogates, truncated sequences, values above U+10FFFF) throws an Error naming `what`.
inline char32_t decode_next(std::string_view s, size_t& i, std::string_view what) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  size_t n = 0;
  char32_t cp = 0, min = 0;
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2, cp = b & 0x1F, min = 0x80;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3, cp = b & 0x0F, min = 0x800;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4, cp = b & 0x07, min = 0x10000;
  }
  bool ok = n != 0 && i + n <= s.size();
  for (size_t k = 1; ok && k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    ok = (c & 0xC0) == 0x80;
    cp = (cp << 6) | (c & 0x3F);
  }
  ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
  CTMLLM_CHECK(ok, what, ": text is not valid UTF-8 (byte ", i, " of ", s.size(), ")");
  i += n;
  return cp;
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
