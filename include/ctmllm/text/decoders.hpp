#pragma once
// Decoders of tokenizer.json: turn the token strings of an id sequence back into text. Each step
// maps a list of strings to a list of strings, as HF tokenizers' decode_chain, and the results are
// concatenated at the end.
//   ByteLevel    token characters -> the bytes they stand for; invalid UTF-8 -> U+FFFD (lossy)
//   ByteFallback runs of <0xNN> pieces -> their bytes as one string; invalid UTF-8 -> one U+FFFD per byte
//   Replace, Fuse (join all), Strip (n leading / m trailing copies of a character), Metaspace
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/byte_level.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

class Decoder {
 public:
  Decoder() = default;

  static Decoder from_json(const nlohmann::json& j, const std::string& where) {
    Decoder d;
    if (!j.is_null()) d.add(j, where);
    return d;
  }

  std::string decode(std::vector<std::string> tokens) const {
    if (steps_.empty()) return join(tokens, " ");  // no decoder: HF joins with spaces
    for (const Step& s : steps_) tokens = apply(s, std::move(tokens));
    return join(tokens, "");
  }

 private:
  enum class Kind { ByteLevel, ByteFallback, Replace, Fuse, Strip, Metaspace };
  struct Step {
    Kind kind;
    std::string a{}, b{};  // Replace: pattern, content; Strip / Metaspace: the character (UTF-8)
    size_t start = 0, stop = 0;
    bool strip_first = true;  // Metaspace: prepend_scheme is not "never"
  };

  static std::string join(const std::vector<std::string>& v, std::string_view sep) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out.append(sep);
      out.append(v[i]);
    }
    return out;
  }

  static std::string replace_all(const std::string& s, std::string_view from, std::string_view to) {
    std::string out;
    size_t i = 0;
    for (size_t k; (k = s.find(from, i)) != std::string::npos; i = k + from.size()) {
      out.append(s, i, k - i);
      out.append(to);
    }
    out.append(s, i, std::string::npos);
    return out;
  }

  // <0xNN> (hex digits of either case, as Rust's u8::from_str_radix reads them) -> the byte, else -1.
  static int byte_of_piece(const std::string& t) {
    if (t.size() != 6 || !t.starts_with("<0x") || t.back() != '>') return -1;
    auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    const int hi = hex(t[3]), lo = hex(t[4]);
    if (lo < 0) return -1;
    if (t[3] == '+') return lo;  // from_str_radix accepts a leading sign
    return hi < 0 ? -1 : hi * 16 + lo;
  }

  static std::vector<std::string> apply(const Step& s, std::vector<std::string> tokens) {
    switch (s.kind) {
      case Kind::ByteLevel: {
        std::string bytes;
        for (const std::string& t : tokens) {
          const size_t mark = bytes.size();
          bool all_mapped = true;
          for (size_t i = 0; i < t.size() && all_mapped;) {
            const int b = ByteLevelMap::get().decode(next_char(t, i));
            if (b < 0) {
              all_mapped = false;
            } else {
              bytes += char(b);
            }
          }
          if (!all_mapped) bytes.replace(mark, std::string::npos, t);  // such a token stands for itself
        }
        return {utf8_lossy(bytes)};
      }
      case Kind::ByteFallback: {
        std::vector<std::string> out;
        std::string run;
        size_t run_len = 0;
        auto flush = [&] {
          if (run_len == 0) return;
          if (utf8_error_offset(run) == std::string_view::npos) {
            out.push_back(run);
          } else {
            for (size_t k = 0; k < run_len; ++k) out.push_back("\xEF\xBF\xBD");
          }
          run.clear();
          run_len = 0;
        };
        for (std::string& t : tokens) {
          if (const int b = byte_of_piece(t); b >= 0) {
            run += char(b);
            ++run_len;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        return out;
      }
      case Kind::Replace:
        for (std::string& t : tokens) t = replace_all(t, s.a, s.b);
        return tokens;
      case Kind::Fuse: return {join(tokens, "")};
      case Kind::Strip:
        for (std::string& t : tokens) t = strip(t, s.a, s.start, s.stop);
        return tokens;
      case Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = replace_all(tokens[i], s.a, (i == 0 && s.strip_first) ? "" : " ");
        return tokens;
    }
    return tokens;
  }

  // Removes up to `start` leading and `stop` trailing copies of the character `c`.
  static std::string strip(const std::string& t, const std::string& c, size_t start, size_t stop) {
    size_t b = 0, e = t.size();
    for (size_t k = 0; k < start && t.compare(b, c.size(), c) == 0 && b + c.size() <= e; ++k) b += c.size();
    for (size_t k = 0; k < stop && e >= b + c.size() && t.compare(e - c.size(), c.size(), c) == 0; ++k) e -= c.size();
    return t.substr(b, e - b);
  }

  void add(const nlohmann::json& j, const std::string& where) {
    CTMLLM_CHECK(j.is_object() && j.contains("type") && j["type"].is_string(), where, ": decoder has no \"type\" string");
    const std::string type = j["type"].get<std::string>();
    auto str = [&](const char* key, const std::string& fallback) {
      if (!j.contains(key)) return fallback;
      CTMLLM_CHECK(j[key].is_string(), where, ": ", type, " decoder field \"", key, "\" is not a string");
      return j[key].get<std::string>();
    };
    auto count = [&](const char* key) -> size_t {
      if (!j.contains(key)) return 0;
      CTMLLM_CHECK(j[key].is_number_unsigned(), where, ": ", type, " decoder field \"", key, "\" is not a count");
      return j[key].get<size_t>();
    };
    if (type == "Sequence") {
      CTMLLM_CHECK(j.contains("decoders") && j["decoders"].is_array(), where, ": Sequence decoder has no \"decoders\" array");
      for (const auto& d : j["decoders"]) add(d, where);
    } else if (type == "ByteLevel") {
      steps_.push_back({Kind::ByteLevel});
    } else if (type == "ByteFallback") {
      steps_.push_back({Kind::ByteFallback});
    } else if (type == "Fuse") {
      steps_.push_back({Kind::Fuse});
    } else if (type == "Replace") {
      CTMLLM_CHECK(j.contains("pattern") && j["pattern"].is_object() && j["pattern"].contains("String") &&
                       j["pattern"]["String"].is_string(),
                   where, ": Replace decoder: only {\"String\": ...} patterns are supported");
      const std::string from = j["pattern"]["String"].get<std::string>();
      CTMLLM_CHECK(!from.empty(), where, ": Replace decoder with an empty pattern");
      steps_.push_back({Kind::Replace, from, str("content", "")});
    } else if (type == "Strip") {
      const std::string c = str("content", " ");
      size_t len = 0;
      CTMLLM_CHECK(!c.empty() && utf8_error_offset(c) == std::string_view::npos && (next_char(c, len), len == c.size()),
                   where, ": Strip decoder content must be one character");
      Step s{Kind::Strip, c, {}};
      s.start = count("start");
      s.stop = count("stop");
      steps_.push_back(s);
    } else if (type == "Metaspace") {
      Step s{Kind::Metaspace, str("replacement", "\u2581"), {}};
      CTMLLM_CHECK(!s.a.empty(), where, ": Metaspace decoder with an empty replacement");
      if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
        s.strip_first = j["prepend_scheme"].get<std::string>() != "never";
      } else if (j.contains("add_prefix_space") && j["add_prefix_space"].is_boolean()) {
        s.strip_first = j["add_prefix_space"].get<bool>();
      }
      steps_.push_back(s);
    } else {
      fail(where, ": unsupported decoder type '", type,
           "' (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence)");
    }
  }

  std::vector<Step> steps_;
};

}  // namespace ctmllm::text
