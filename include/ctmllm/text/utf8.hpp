#pragma once
// UTF-8 helpers. Text entering the tokenizer is validated once (utf8_error_offset); everything
// after that decodes without checks. Byte sequences coming back out of token ids can be invalid, and
// utf8_lossy repairs them the way Rust's String::from_utf8_lossy (and so HF tokenizers) does: each
// maximal prefix of a well-formed sequence that breaks off becomes one U+FFFD.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ctmllm/core/error.hpp"

namespace ctmllm::text {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Appends the UTF-8 encoding of `cp` (a Unicode scalar value).
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

// Length of the UTF-8 sequence that starts with lead byte `b` (for valid text).
inline size_t utf8_length(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

// Decodes the character at s[i] of valid UTF-8 and advances i past it.
inline char32_t next_char(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  const size_t n = utf8_length(b);
  char32_t cp = b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

// Length of the well-formed UTF-8 character at s[i], or 0 when it is ill-formed; in that case
// `bad` is the length of the maximal ill-formed subpart to replace (Unicode 16, section 3.9).
inline size_t utf8_char_at(std::string_view s, size_t i, size_t& bad) {
  const auto b = static_cast<unsigned char>(s[i]);
  bad = 1;
  if (b < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;  // no overlong forms
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;  // no overlong forms
    if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    const auto c = static_cast<unsigned char>(s[i + k]);
    if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return 0;
    bad = k + 1;
  }
  return n;
}

// Byte offset of the first ill-formed sequence, or npos when `s` is valid UTF-8.
inline size_t utf8_error_offset(std::string_view s) {
  size_t i = 0, bad = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_char_at(s, i, bad);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

// Throws an Error when `s` is not valid UTF-8; `what` names the operation.
inline void check_utf8(std::string_view s, const char* what) {
  const size_t bad = utf8_error_offset(s);
  CTMLLM_CHECK(bad == std::string_view::npos, what, ": input is not valid UTF-8 (byte ", bad, " of ", s.size(), ")");
}

// `bytes` as valid UTF-8, each maximal ill-formed subpart replaced by U+FFFD.
inline std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0, bad = 0;
  while (i < bytes.size()) {
    const size_t n = utf8_char_at(bytes, i, bad);
    if (n == 0) {
      append_utf8(out, kReplacementChar);
      i += bad;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace ctmllm::text
