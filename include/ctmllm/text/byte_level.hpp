#pragma once
// The GPT-2 byte <-> unicode map of byte-level BPE: every byte gets a printable character, so token
// strings never contain raw control bytes or spaces. Printable Latin-1 bytes map to themselves; the
// other 68 map, in byte order, to U+0100, U+0101, ...
#include <array>
#include <string>
#include <string_view>

#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

class ByteLevelMap {
 public:
  static const ByteLevelMap& get() {
    static const ByteLevelMap m;
    return m;
  }

  // The UTF-8 of the character standing for byte b.
  std::string_view encode(unsigned char b) const { return {utf8_[b].data(), len_[b]}; }

  // Appends the characters standing for each byte of `bytes`.
  void encode(std::string_view bytes, std::string& out) const {
    for (char c : bytes) out.append(encode(static_cast<unsigned char>(c)));
  }

  // The byte a character stands for, or -1 when `cp` is not one of the 256.
  int decode(char32_t cp) const { return cp < char_to_byte_.size() ? char_to_byte_[cp] : -1; }

 private:
  ByteLevelMap() {
    char_to_byte_.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? char32_t(b) : char32_t(256 + extra++);
      std::string s;
      append_utf8(s, cp);
      len_[b] = uint8_t(s.size());
      std::copy(s.begin(), s.end(), utf8_[b].begin());
      char_to_byte_[cp] = int16_t(b);
    }
  }

  std::array<std::array<char, 2>, 256> utf8_{};
  std::array<uint8_t, 256> len_{};
  std::array<int16_t, 324> char_to_byte_{};  // the largest mapped character is U+0143
};

}  // namespace ctmllm::text
