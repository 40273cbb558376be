#pragma once
// Normalizers of tokenizer.json: NFC (Qwen), Prepend and Replace (Llama-2 / Mistral SentencePiece
// style), and a Sequence of them. Each applies to one piece of text between added tokens, as in HF
// tokenizers.
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/unicode.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

namespace detail {
inline constexpr char32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
inline constexpr int kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
inline constexpr int kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

inline void decompose_into(char32_t cp, std::u32string& out) {
  if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
    const int s = int(cp - kHangulS);
    out += char32_t(kHangulL + s / kHangulNCount);
    out += char32_t(kHangulV + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount) out += char32_t(kHangulT + s % kHangulTCount);
    return;
  }
  const auto d = canonical_decomposition(cp);
  if (d.empty()) {
    out += cp;
  } else {
    for (uint32_t c : d) out += char32_t(c);
  }
}

inline char32_t compose(char32_t a, char32_t b) {
  if (a >= kHangulL && a < kHangulL + kHangulLCount && b >= kHangulV && b < kHangulV + kHangulVCount)
    return kHangulS + ((a - kHangulL) * kHangulVCount + (b - kHangulV)) * kHangulTCount;
  if (a >= kHangulS && a < kHangulS + kHangulSCount && (a - kHangulS) % kHangulTCount == 0 && b > kHangulT &&
      b < kHangulT + kHangulTCount)
    return a + (b - kHangulT);
  return compose_pair(a, b);
}

// The NFC quick check: true when `s` is certainly in NFC already.
inline bool nfc_quick_check(std::string_view s) {
  uint8_t last_ccc = 0;
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {  // ASCII: starters that never compose backwards
      ++i;
      last_ccc = 0;
      continue;
    }
    const char32_t cp = next_char(s, i);
    const uint8_t f = unicode_flags(cp);
    if (f & unicode_data::kNfcQcNotYes) return false;
    const uint8_t ccc = (f & unicode_data::kNonzeroCcc) ? combining_class(cp) : 0;
    if (ccc != 0 && last_ccc > ccc) return false;
    last_ccc = ccc;
  }
  return true;
}
}  // namespace detail

// Unicode Normalization Form C of valid UTF-8 text.
inline std::string nfc(std::string_view s) {
  if (detail::nfc_quick_check(s)) return std::string(s);
  std::u32string d;
  d.reserve(s.size());
  for (size_t i = 0; i < s.size();) detail::decompose_into(next_char(s, i), d);
  // Canonical ordering: a stable sort of each run of non-starters by combining class.
  for (size_t i = 1; i < d.size(); ++i) {
    const uint8_t c = combining_class(d[i]);
    if (c == 0) continue;
    for (size_t j = i; j > 0 && combining_class(d[j - 1]) > c; --j) std::swap(d[j], d[j - 1]);
  }
  // Canonical composition (UAX #15): a character joins the last starter unless a character in
  // between blocks it; last_ccc == 0 means the starter is the last character kept.
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;
  int last_ccc = 0;
  for (char32_t ch : d) {
    const int ccc = combining_class(ch);
    if (starter != std::u32string::npos && (last_ccc < ccc || last_ccc == 0)) {
      if (const char32_t c = detail::compose(out[starter], ch); c != 0) {
        out[starter] = c;
        continue;
      }
    }
    if (ccc == 0) starter = out.size();
    last_ccc = ccc;
    out += ch;
  }
  std::string r;
  r.reserve(s.size() + 8);
  for (char32_t ch : out) append_utf8(r, ch);
  return r;
}

// A tokenizer.json "normalizer": a list of steps applied in order to each piece of input text.
class Normalizer {
 public:
  Normalizer() = default;

  // `where` names the file for error messages.
  static Normalizer from_json(const nlohmann::json& j, const std::string& where) {
    Normalizer n;
    if (!j.is_null()) n.add(j, where);
    return n;
  }

  void apply(std::string& text) const {
    for (const Step& s : steps_) {
      switch (s.kind) {
        case Kind::Nfc: text = nfc(text); break;
        case Kind::Prepend:
          if (!text.empty()) text.insert(0, s.a);
          break;
        case Kind::Replace: text = replace_all(text, s.a, s.b); break;
      }
    }
  }

 private:
  enum class Kind { Nfc, Prepend, Replace };
  struct Step {
    Kind kind;
    std::string a, b;
  };

  static std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    for (size_t k; (k = text.find(from, i)) != std::string_view::npos; i = k + from.size()) {
      out.append(text.substr(i, k - i));
      out.append(to);
    }
    out.append(text.substr(i));
    return out;
  }

  void add(const nlohmann::json& j, const std::string& where) {
    CTMLLM_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), where,
                 ": normalizer has no \"type\" string");
    const std::string type = j["type"].get<std::string>();
    if (type == "Sequence") {
      CTMLLM_CHECK(j.contains("normalizers") && j["normalizers"].is_array(), where,
                   ": Sequence normalizer has no \"normalizers\" array");
      for (const auto& n : j["normalizers"]) add(n, where);
    } else if (type == "NFC") {
      steps_.push_back({Kind::Nfc, {}, {}});
    } else if (type == "Prepend") {
      CTMLLM_CHECK(j.contains("prepend") && j["prepend"].is_string(), where, ": Prepend normalizer has no \"prepend\" string");
      steps_.push_back({Kind::Prepend, j["prepend"].get<std::string>(), {}});
    } else if (type == "Replace") {
      CTMLLM_CHECK(j.contains("pattern") && j["pattern"].is_object() && j["pattern"].contains("String") &&
                       j["pattern"]["String"].is_string(),
                   where, ": Replace normalizer: only {\"String\": ...} patterns are supported");
      CTMLLM_CHECK(j.contains("content") && j["content"].is_string(), where, ": Replace normalizer has no \"content\" string");
      const std::string from = j["pattern"]["String"].get<std::string>();
      CTMLLM_CHECK(!from.empty(), where, ": Replace normalizer with an empty pattern");
      steps_.push_back({Kind::Replace, from, j["content"].get<std::string>()});
    } else {
      fail(where, ": unsupported normalizer type '", type, "' (supported: NFC, Prepend, Replace, Sequence)");
    }
  }

  std::vector<Step> steps_;
};

}  // namespace ctmllm::text
