#pragma once
// Unicode properties over the generated tables (Unicode 16.0, see unicode_tables.hpp):
// the \p{L}, \p{N} and \s classes of the pre-tokenizer regexes, the \w class of added-token
// matching, Python's str.isspace for template `trim`, and the canonical data behind NFC.
#include <algorithm>
#include <cstdint>
#include <span>

#include "ctmllm/text/unicode_tables.hpp"

namespace ctmllm::text {

inline uint8_t unicode_flags(char32_t cp) {
  if (cp >= 0x110000) return 0;
  const uint32_t block = unicode_data::kBlockIndex[cp >> unicode_data::kBlockShift];
  return unicode_data::kBlocks[(block << unicode_data::kBlockShift) | (cp & ((1u << unicode_data::kBlockShift) - 1))];
}

inline bool is_letter(char32_t cp) { return unicode_flags(cp) & unicode_data::kLetter; }
inline bool is_number(char32_t cp) { return unicode_flags(cp) & unicode_data::kNumber; }
inline bool is_white_space(char32_t cp) { return unicode_flags(cp) & unicode_data::kWhiteSpace; }
inline bool is_word_char(char32_t cp) { return unicode_flags(cp) & unicode_data::kWord; }
inline bool is_python_space(char32_t cp) { return unicode_flags(cp) & unicode_data::kPySpace; }

// Canonical combining class (0 for starters).
inline uint8_t combining_class(char32_t cp) {
  if (!(unicode_flags(cp) & unicode_data::kNonzeroCcc)) return 0;
  const auto& t = unicode_data::kCombiningClass;
  const uint32_t key = uint32_t(cp) << 8;
  const auto* it = std::lower_bound(std::begin(t), std::end(t), key);
  return (it != std::end(t) && (*it >> 8) == cp) ? uint8_t(*it & 0xFF) : 0;
}

// Full canonical decomposition of `cp` (Hangul syllables excepted), empty when it has none.
inline std::span<const uint32_t> canonical_decomposition(char32_t cp) {
  const auto& keys = unicode_data::kDecompositionKeys;
  const auto* it = std::lower_bound(std::begin(keys), std::end(keys), uint32_t(cp));
  if (it == std::end(keys) || *it != cp) return {};
  const uint16_t packed = unicode_data::kDecompositionIndex[it - std::begin(keys)];
  return {unicode_data::kDecompositionData + (packed >> 3), size_t(packed & 7)};
}

// The primary composite of `first` + `second` (Hangul excepted), or 0 when there is none.
inline char32_t compose_pair(char32_t first, char32_t second) {
  const auto& keys = unicode_data::kCompositionKeys;
  const uint64_t key = (uint64_t(first) << 21) | second;
  const auto* it = std::lower_bound(std::begin(keys), std::end(keys), key);
  return (it != std::end(keys) && *it == key) ? unicode_data::kCompositionValues[it - std::begin(keys)] : 0;
}

}  // namespace ctmllm::text
