#pragma once
// Pre-tokenizers of tokenizer.json. The families' split regexes are implemented by hand (no regex
// engine): each function below reproduces the leftmost-first, backtracking semantics of the
// Oniguruma pattern that HF tokenizers runs, alternative by alternative.
//
//   Llama-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   Qwen2:   the same with \p{N} (single digits)
//   GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+   (ByteLevel use_regex)
//
// Every character is a letter, a number, white space or "other", and every alternative set above
// matches any of the four, so the matches tile the text: no gaps and no empty matches.
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/byte_level.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/text/unicode.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

enum class SplitPattern { Llama3, Qwen2, Gpt2 };

inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace detail {

enum CharClass : uint8_t { kLetterClass = 1, kNumberClass = 2, kSpaceClass = 4, kOtherClass = 8 };

struct Char {
  char32_t cp;
  uint8_t len;  // bytes
  uint8_t cls;  // one CharClass
};

inline uint8_t char_class(char32_t cp) {
  const uint8_t f = unicode_flags(cp);
  if (f & unicode_data::kLetter) return kLetterClass;
  if (f & unicode_data::kNumber) return kNumberClass;
  if (f & unicode_data::kWhiteSpace) return kSpaceClass;
  return kOtherClass;
}

// Walks valid UTF-8 one character at a time; at(i) looks at the character starting at byte i.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  size_t size() const { return s_.size(); }
  Char at(size_t i) const {
    const auto b = static_cast<unsigned char>(s_[i]);
    if (b < 0x80) return {b, 1, ascii_class(b)};
    size_t j = i;
    const char32_t cp = next_char(s_, j);
    return {cp, uint8_t(j - i), char_class(cp)};
  }
  bool is(size_t i, uint8_t classes) const { return i < s_.size() && (at(i).cls & classes); }
  // End of the run of characters of `classes` starting at i.
  size_t skip(size_t i, uint8_t classes) const {
    while (i < s_.size()) {
      const Char c = at(i);
      if (!(c.cls & classes)) break;
      i += c.len;
    }
    return i;
  }

 private:
  static uint8_t ascii_class(unsigned char b) {
    static const auto table = [] {
      std::array<uint8_t, 128> t{};
      for (int c = 0; c < 128; ++c) t[c] = char_class(char32_t(c));
      return t;
    }();
    return table[b];
  }
  std::string_view s_;
};

inline bool is_crlf(char32_t cp) { return cp == '\r' || cp == '\n'; }

// 's 't 're 've 'm 'll 'd after the apostrophe at i: the match length, 0 if none. Case-insensitive
// matching follows Unicode case folding, where U+017F (long s) folds to 's'.
inline size_t contraction(const Scanner& sc, size_t i, bool ignore_case) {
  auto letter = [&](size_t k, char lower) -> size_t {  // length of the char at k if it is `lower`
    if (k >= sc.size()) return 0;
    const Char c = sc.at(k);
    if (c.cp == char32_t(lower)) return c.len;
    if (!ignore_case) return 0;
    if (c.cp == char32_t(lower - 'a' + 'A')) return c.len;
    if (lower == 's' && c.cp == 0x17F) return c.len;
    return 0;
  };
  const size_t j = i + 1;
  for (char single : {'s', 't'})
    if (size_t n = letter(j, single)) return 1 + n;
  for (const char* pair : {"re", "ve"})
    if (size_t n = letter(j, pair[0]))
      if (size_t m = letter(j + n, pair[1])) return 1 + n + m;
  if (size_t n = letter(j, 'm')) return 1 + n;
  if (size_t n = letter(j, 'l'))
    if (size_t m = letter(j + n, 'l')) return 1 + n + m;
  if (size_t n = letter(j, 'd')) return 1 + n;
  return 0;
}

// The white-space alternatives once nothing before them matched at i (a white-space character):
// `\s*[\r\n]+` (Llama-3 / Qwen2 only), `\s+(?!\S)`, `\s+`.
inline size_t match_space(const Scanner& sc, size_t i, bool crlf_alternative) {
  size_t j = i, last_char = i, after_crlf = 0;
  while (j < sc.size()) {
    const Char c = sc.at(j);
    if (c.cls != kSpaceClass) break;
    last_char = j;
    j += c.len;
    if (is_crlf(c.cp)) after_crlf = j;
  }
  // \s* backtracks to the last CR/LF of the run and [\r\n]+ takes just that one.
  if (crlf_alternative && after_crlf) return after_crlf;
  // \s+(?!\S): the whole run at the end of the text, else the run minus its last character
  // (which then starts the next match); with a single character left, \s+ takes it.
  if (j == sc.size()) return j;
  return last_char > i ? last_char : j;
}

inline size_t match_llama3_or_qwen2(const Scanner& sc, size_t i, size_t max_digits) {
  const Char c0 = sc.at(i);
  const size_t next = i + c0.len;
  if (c0.cp == '\'')
    if (size_t n = contraction(sc, i, true)) return i + n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c0.cls == kLetterClass) return sc.skip(i, kLetterClass);
  if (c0.cls != kNumberClass && !is_crlf(c0.cp) && sc.is(next, kLetterClass)) return sc.skip(next, kLetterClass);
  // \p{N}{1,3} or \p{N}
  if (c0.cls == kNumberClass) {
    size_t j = i;
    for (size_t k = 0; k < max_digits && sc.is(j, kNumberClass); ++k) j += sc.at(j).len;
    return j;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t start = std::string_view::npos;
  if (c0.cp == ' ' && sc.is(next, kOtherClass)) start = next;
  if (c0.cls == kOtherClass) start = i;
  if (start != std::string_view::npos) {
    size_t j = sc.skip(start, kOtherClass);
    while (j < sc.size() && is_crlf(sc.at(j).cp)) ++j;
    return j;
  }
  return match_space(sc, i, true);
}

inline size_t match_gpt2(const Scanner& sc, size_t i) {
  const Char c0 = sc.at(i);
  const size_t next = i + c0.len;
  if (c0.cp == '\'')
    if (size_t n = contraction(sc, i, false)) return i + n;
  for (uint8_t cls : {kLetterClass, kNumberClass, kOtherClass}) {  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
    if (c0.cp == ' ' && sc.is(next, cls)) return sc.skip(next, cls);
    if (c0.cls == cls) return sc.skip(i, cls);
  }
  return match_space(sc, i, false);
}

}  // namespace detail

// Calls emit(piece) for each consecutive match of `pattern` in valid UTF-8 `text`.
template <class Emit>
void split_by_pattern(SplitPattern pattern, std::string_view text, Emit&& emit) {
  const detail::Scanner sc(text);
  for (size_t i = 0; i < text.size();) {
    const size_t end = pattern == SplitPattern::Gpt2     ? detail::match_gpt2(sc, i)
                       : pattern == SplitPattern::Llama3 ? detail::match_llama3_or_qwen2(sc, i, 3)
                                                         : detail::match_llama3_or_qwen2(sc, i, 1);
    emit(text.substr(i, end - i));
    i = end;
  }
}

// A tokenizer.json "pre_tokenizer": Split (the known regexes), ByteLevel, Metaspace, or a Sequence.
// run() feeds each resulting pre-token to a sink; pieces never come out empty.
class PreTokenizer {
 public:
  PreTokenizer() = default;

  static PreTokenizer from_json(const nlohmann::json& j, const std::string& where) {
    PreTokenizer p;
    if (!j.is_null()) p.add(j, where);
    return p;
  }

  // `at_start`: the piece begins the input text (Metaspace's prepend_scheme "first" needs it).
  template <class Sink>
  void run(std::string_view piece, bool at_start, Sink&& sink) const {
    if (piece.empty()) return;
    std::vector<std::string> scratch(steps_.size());
    run_step(0, piece, at_start, scratch, sink);
  }

 private:
  enum class Kind { Split, ByteLevel, Metaspace };
  enum class Prepend { Always, First, Never };
  struct Step {
    Kind kind;
    SplitPattern pattern = SplitPattern::Gpt2;
    bool add_prefix_space = false, use_regex = false;  // ByteLevel
    std::string replacement{};                          // Metaspace
    Prepend prepend = Prepend::Always;
    bool split = false;
  };

  template <class Sink>
  void run_step(size_t k, std::string_view piece, bool at_start, std::vector<std::string>& scratch, Sink& sink) const {
    if (k == steps_.size()) {
      sink(piece);
      return;
    }
    const Step& s = steps_[k];
    auto next = [&](std::string_view sub, bool sub_at_start) {
      if (!sub.empty()) run_step(k + 1, sub, sub_at_start, scratch, sink);
    };
    switch (s.kind) {
      case Kind::Split: {
        bool first = at_start;
        split_by_pattern(s.pattern, piece, [&](std::string_view m) {
          next(m, first);
          first = false;
        });
        return;
      }
      case Kind::ByteLevel: {
        std::string prefixed;
        if (s.add_prefix_space && piece.front() != ' ') {
          prefixed = " " + std::string(piece);
          piece = prefixed;
        }
        auto map_bytes = [&](std::string_view sub, bool sub_at_start) {
          std::string& out = scratch[k];
          out.clear();
          ByteLevelMap::get().encode(sub, out);
          next(out, sub_at_start);
        };
        if (!s.use_regex) {
          map_bytes(piece, at_start);
          return;
        }
        bool first = at_start;
        split_by_pattern(SplitPattern::Gpt2, piece, [&](std::string_view m) {
          map_bytes(m, first);
          first = false;
        });
        return;
      }
      case Kind::Metaspace: {
        std::string& out = scratch[k];
        out.clear();
        for (size_t i = 0, j; i <= piece.size(); i = j + 1) {  // every ' ' becomes the replacement
          j = piece.find(' ', i);
          if (j == std::string_view::npos) j = piece.size();
          out.append(piece.substr(i, j - i));
          if (j < piece.size()) out += s.replacement;
        }
        const bool starts = out.starts_with(s.replacement);
        if (!starts && (s.prepend == Prepend::Always || (s.prepend == Prepend::First && at_start)))
          out.insert(0, s.replacement);
        const std::string_view text = out;
        if (!s.split) {
          next(text, at_start);
          return;
        }
        // Split with the replacement merged into the piece that follows it.
        size_t begin = 0;
        for (size_t pos = text.find(s.replacement, 1); pos != std::string_view::npos;
             pos = text.find(s.replacement, pos + s.replacement.size())) {
          next(text.substr(begin, pos - begin), at_start && begin == 0);
          begin = pos;
        }
        next(text.substr(begin), at_start && begin == 0);
        return;
      }
    }
  }

  void add(const nlohmann::json& j, const std::string& where) {
    CTMLLM_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), where,
                 ": pre_tokenizer has no \"type\" string");
    const std::string type = j["type"].get<std::string>();
    auto flag = [&](const char* key, bool fallback) {
      if (!j.contains(key) || j[key].is_null()) return fallback;
      CTMLLM_CHECK(j[key].is_boolean(), where, ": ", type, " pre_tokenizer field \"", key, "\" is not a boolean");
      return j[key].get<bool>();
    };
    if (type == "Sequence") {
      CTMLLM_CHECK(j.contains("pretokenizers") && j["pretokenizers"].is_array(), where,
                   ": Sequence pre_tokenizer has no \"pretokenizers\" array");
      for (const auto& p : j["pretokenizers"]) add(p, where);
    } else if (type == "Split") {
      CTMLLM_CHECK(j.contains("pattern") && j["pattern"].is_object() && j["pattern"].contains("Regex") &&
                       j["pattern"]["Regex"].is_string(),
                   where, ": Split pre_tokenizer: only {\"Regex\": ...} patterns are supported");
      const std::string regex = j["pattern"]["Regex"].get<std::string>();
      Step s{Kind::Split};
      if (regex == kLlama3Pattern) {
        s.pattern = SplitPattern::Llama3;
      } else if (regex == kQwen2Pattern) {
        s.pattern = SplitPattern::Qwen2;
      } else if (regex == kGpt2Pattern) {
        s.pattern = SplitPattern::Gpt2;
      } else {
        fail(where, ": Split pre_tokenizer with an unknown regex '", regex,
             "' (known: the Llama-3, Qwen2 and GPT-2 patterns)");
      }
      const std::string behavior = json_string_or(j, "behavior", "Isolated", where);
      CTMLLM_CHECK(behavior == "Isolated", where, ": Split pre_tokenizer behavior '", behavior,
                   "' is not supported (only Isolated)");
      CTMLLM_CHECK(!flag("invert", false), where, ": Split pre_tokenizer with invert=true is not supported");
      steps_.push_back(s);
    } else if (type == "ByteLevel") {
      Step s{Kind::ByteLevel};
      s.add_prefix_space = flag("add_prefix_space", true);
      s.use_regex = flag("use_regex", true);
      steps_.push_back(s);
    } else if (type == "Metaspace") {
      Step s{Kind::Metaspace};
      s.replacement = json_string_or(j, "replacement", "\u2581", where);
      CTMLLM_CHECK(!s.replacement.empty(), where, ": Metaspace pre_tokenizer with an empty replacement");
      if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
        const std::string scheme = j["prepend_scheme"].get<std::string>();
        if (scheme == "always") {
          s.prepend = Prepend::Always;
        } else if (scheme == "first") {
          s.prepend = Prepend::First;
        } else if (scheme == "never") {
          s.prepend = Prepend::Never;
        } else {
          fail(where, ": Metaspace pre_tokenizer has an unknown prepend_scheme '", scheme, "'");
        }
      } else {
        s.prepend = flag("add_prefix_space", true) ? Prepend::Always : Prepend::Never;
      }
      s.split = flag("split", true);
      steps_.push_back(s);
    } else {
      fail(where, ": unsupported pre_tokenizer type '", type, "' (supported: Split, ByteLevel, Metaspace, Sequence)");
    }
  }

  std::vector<Step> steps_;
};

}  // namespace ctmllm::text
