// The pieces under the tokenizers: UTF-8 handling, the generated Unicode tables, NFC, the hand-written
// pre-tokenizer regexes, the GPT-2 byte map and the decoders. Expected values come from HF
// tokenizers 0.23 (Split pre-tokenizer, decoders) and Python's unicodedata (Unicode 16.0).
#include <string>
#include <vector>

#include "ctmllm/text/byte_level.hpp"
#include "ctmllm/text/decoders.hpp"
#include "ctmllm/text/normalize.hpp"
#include "ctmllm/text/pretokenize.hpp"
#include "ctmllm/text/unicode.hpp"
#include "ctmllm/text/utf8.hpp"
#include "support/catch.hpp"

using namespace ctmllm;
using namespace ctmllm::text;

TEST_CASE("UTF-8 validation finds the first ill-formed byte", "[text][utf8]") {
  CHECK(utf8_error_offset("plain ASCII") == std::string_view::npos);
  CHECK(utf8_error_offset("caf\xC3\xA9 \xF0\x9F\x98\x80") == std::string_view::npos);
  CHECK(utf8_error_offset("ab\xC3") == 2);              // truncated
  CHECK(utf8_error_offset("ab\xC0\xAF") == 2);          // overlong
  CHECK(utf8_error_offset("\xED\xA0\x80") == 0);        // surrogate
  CHECK(utf8_error_offset("x\xF4\x90\x80\x80") == 1);   // above U+10FFFF
  CHECK(utf8_error_offset("xy\x80") == 2);              // stray continuation byte
  CHECK(utf8_error_offset(std::string("a\0b", 3)) == std::string_view::npos);
}

TEST_CASE("lossy UTF-8 replaces each maximal ill-formed subpart by one U+FFFD", "[text][utf8]") {
  const std::string r = "\xEF\xBF\xBD";
  CHECK(utf8_lossy("ok \xC3\xA9") == "ok \xC3\xA9");
  CHECK(utf8_lossy("\xE4\xBD") == r);                   // one truncated character
  CHECK(utf8_lossy("\xE4\xBDx") == r + "x");
  CHECK(utf8_lossy("\xFF\xFE") == r + r);
  CHECK(utf8_lossy("\xF0\x9F\x98") == r);
  CHECK(utf8_lossy("\xED\xA0\x80") == r + r + r);       // a surrogate breaks off after its lead byte
  CHECK(utf8_lossy("\xC3\xA9\x80") == "\xC3\xA9" + r);
}

TEST_CASE("Unicode classes of the pre-tokenizer regexes (Unicode 16.0)", "[text][unicode]") {
  CHECK(std::string(unicode_data::kUnicodeVersion) == "16.0.0");
  for (char32_t c : {U'a', U'Z', U'é', U'ß', U'ǅ', U'肝', U'ア', U'Ω', U'\U00031350', U'\U00010D50'}) CHECK(is_letter(c));
  for (char32_t c : {U'0', U'9', U'½', U'³', U'Ⅻ', U'①', U'٣', U'\U0001E4F0'}) CHECK(is_number(c));
  for (char32_t c : {U' ', U'\t', U'\n', U'\r', U'\v', U'\f', U'\u0085', U'\u00A0', U'\u1680', U'\u2000', U'\u2028',
                     U'\u2029', U'\u202F', U'\u3000'})
    CHECK(is_white_space(c));
  for (char32_t c : {U'\u200B', U'\u180E', U'\x1C', U'.', U'\u0301', U'😀'}) CHECK_FALSE(is_white_space(c));
  CHECK(is_python_space(U'\x1C'));  // str.isspace() counts the information separators
  for (char32_t c : {U'.', U'-', U'😀', U'\u0301', U'\u0558', U'\U0003FFFF'}) {
    CHECK_FALSE(is_letter(c));  // U+0558 is a letter only from Unicode 17
    CHECK_FALSE(is_number(c));
  }
  CHECK(is_word_char(U'_'));
  CHECK(is_word_char(U'\u0301'));
  CHECK(is_word_char(U'Ⓐ'));
  CHECK_FALSE(is_word_char(U'-'));
  CHECK(combining_class(U'\u0301') == 230);
  CHECK(combining_class(U'\u0316') == 220);
  CHECK(combining_class(U'a') == 0);
}

TEST_CASE("NFC matches Python's unicodedata.normalize", "[text][nfc]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"e\u0301", "\u00e9"},
      {"A\u030a", "\u00c5"},
      {"\u212b", "\u00c5"},
      {"\u1100\u1161\u11a8", "\uac01"},
      {"\uac00\u11a8", "\uac01"},
      {"a\u0328\u0301", "\u0105\u0301"},
      {"\u0344", "\u0308\u0301"},
      {"q\u0307\u0323", "q\u0323\u0307"},
      {"\u1e0b\u0323", "\u1e0d\u0307"},
      {"\ufb01", "\ufb01"},
      {"\u0301e", "\u0301e"},
      {"caf\u00e9", "caf\u00e9"},
      {"\u0b47\u0b3e", "\u0b4b"},
      {"\u00c5\u0301\u0323", "\u1ea0\u030a\u0301"},
      {"x\u0301\u0316\u0302", "x\u0316\u0301\u0302"},
      {"\U0001D15E", "\U0001D157\U0001D165"},
      {"e\u0301\u0301", "\u00e9\u0301"},
      {"", ""},
  };
  for (const auto& [in, want] : cases) {
    INFO(in);
    CHECK(nfc(in) == want);
  }
}

TEST_CASE("hand-written split regexes match HF tokenizers' Split pre-tokenizer", "[text][pretokenize]") {
  struct Case {
    SplitPattern pattern;
    std::string text;
    std::vector<std::string> pieces;
  };
  // Produced with tokenizers.pre_tokenizers.Split(Regex(pattern), "isolated").pre_tokenize_str.
  const std::vector<Case> cases = {
      {SplitPattern::Llama3, "Hypodense lesion 3.5 cm (HU -12), 1234567 digits!", {"Hypodense", " lesion", " ", "3", ".", "5", " cm", " (", "HU", " -", "12", "),", " ", "123", "456", "7", " digits", "!"}},
      {SplitPattern::Llama3, "it's WE'RE I'M they'll x'ſt", {"it", "'s", " WE", "'RE", " I", "'M", " they", "'ll", " x", "'ſ", "t"}},
      {SplitPattern::Llama3, "a  \n\n  b\t\tc   ", {"a", "  \n\n", " ", " b", "\t", "\tc", "   "}},
      {SplitPattern::Llama3, "  \n  \t \n", {"  \n  \t \n"}},
      {SplitPattern::Llama3, "1,234,567.89 mm³ // 0.001%", {"1", ",", "234", ",", "567", ".", "89", " mm", "³", " //", " ", "0", ".", "001", "%"}},
      {SplitPattern::Llama3, "肝脏 未见异常。\u00a0Hello\u3000world\r\n!!\r\n", {"肝脏", " 未见异常", "。", "\u00a0Hello", "\u3000world", "\r\n", "!!\r\n"}},
      {SplitPattern::Llama3, "ab'cd 'x ?!\n", {"ab", "'cd", " '", "x", " ?!\n"}},
      {SplitPattern::Qwen2, "Hypodense lesion 3.5 cm (HU -12), 1234567 digits!", {"Hypodense", " lesion", " ", "3", ".", "5", " cm", " (", "HU", " -", "1", "2", "),", " ", "1", "2", "3", "4", "5", "6", "7", " digits", "!"}},
      {SplitPattern::Qwen2, "1,234,567.89 mm³ // 0.001%", {"1", ",", "2", "3", "4", ",", "5", "6", "7", ".", "8", "9", " mm", "³", " //", " ", "0", ".", "0", "0", "1", "%"}},
      {SplitPattern::Qwen2, "a  \n\n  b\t\tc   ", {"a", "  \n\n", " ", " b", "\t", "\tc", "   "}},
      {SplitPattern::Gpt2, "Hypodense lesion 3.5 cm (HU -12), 1234567 digits!", {"Hypodense", " lesion", " 3", ".", "5", " cm", " (", "HU", " -", "12", "),", " 1234567", " digits", "!"}},
      {SplitPattern::Gpt2, "it's WE'RE I'M they'll x'ſt", {"it", "'s", " WE", "'", "RE", " I", "'", "M", " they", "'ll", " x", "'", "ſt"}},
      {SplitPattern::Gpt2, "a  \n\n  b\t\tc   ", {"a", "  \n\n ", " b", "\t", "\t", "c", "   "}},
      {SplitPattern::Gpt2, "肝脏 未见异常。\u00a0Hello\u3000world\r\n!!\r\n", {"肝脏", " 未见异常", "。", "\u00a0", "Hello", "\u3000", "world", "\r", "\n", "!!", "\r\n"}},
      {SplitPattern::Gpt2, "ab'cd 'x ?!\n", {"ab", "'", "cd", " '", "x", " ?!", "\n"}},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    std::vector<std::string> got;
    split_by_pattern(c.pattern, c.text, [&](std::string_view p) { got.emplace_back(p); });
    CHECK(got == c.pieces);
  }
}

TEST_CASE("Split pre-tokenizer dispatches on the regex read from the file", "[text][pretokenize]") {
  const auto split = [](std::string_view regex) {
    return nlohmann::json{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  CHECK_NOTHROW(PreTokenizer::from_json(split(kLlama3Pattern), "t.json"));
  CHECK_NOTHROW(PreTokenizer::from_json(split(kQwen2Pattern), "t.json"));
  CHECK_NOTHROW(PreTokenizer::from_json(split(kGpt2Pattern), "t.json"));
  try {
    PreTokenizer::from_json(split("\\w+|\\s+"), "t.json");
    FAIL("an unknown regex was accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("t.json") && Catch::Matchers::Contains("\\w+|\\s+"));
  }
  nlohmann::json merged = split(kLlama3Pattern);
  merged["behavior"] = "MergedWithPrevious";
  CHECK_THROWS_AS(PreTokenizer::from_json(merged, "t.json"), Error);
}

TEST_CASE("Metaspace pre-tokenizer replaces spaces, prepends and splits", "[text][pretokenize]") {
  const auto run = [](const nlohmann::json& j, std::string_view text, bool at_start) {
    std::vector<std::string> out;
    PreTokenizer::from_json(j, "t.json").run(text, at_start, [&](std::string_view p) { out.emplace_back(p); });
    return out;
  };
  const nlohmann::json first = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}};
  CHECK(run(first, "Hey friend  x", true) == std::vector<std::string>{"▁Hey", "▁friend", "▁", "▁x"});
  CHECK(run(first, "Hey friend", false) == std::vector<std::string>{"Hey", "▁friend"});
  const nlohmann::json whole = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", false}};
  CHECK(run(whole, "a b", false) == std::vector<std::string>{"▁a▁b"});
  CHECK(run(whole, " a", false) == std::vector<std::string>{"▁a"});
}

TEST_CASE("GPT-2 byte map: printable bytes stand for themselves, the rest from U+0100 on", "[text][byte_level]") {
  const ByteLevelMap& m = ByteLevelMap::get();
  CHECK(m.encode('A') == "A");
  CHECK(m.encode(' ') == "Ġ");
  CHECK(m.encode('\n') == "Ċ");
  CHECK(m.encode(0x00) == "Ā");
  CHECK(m.encode(0xAD) == "Ń");
  for (int b = 0; b < 256; ++b) {
    const std::string_view s = m.encode(uint8_t(b));
    size_t i = 0;
    CHECK(m.decode(next_char(s, i)) == b);
  }
  CHECK(m.decode(U'€') == -1);
}

TEST_CASE("decoders: byte fallback, byte-level and strip as HF tokenizers", "[text][decoders]") {
  const Decoder sp = Decoder::from_json(
      nlohmann::json::parse(R"({"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})"),
      "t.json");
  CHECK(sp.decode({"▁你", "<0xE4>", "<0xBD>", "<0xA0>", "▁ok"}) == "你你 ok");
  // An invalid run becomes one U+FFFD per byte piece.
  CHECK(sp.decode({"a", "<0xE4>", "<0xBD>", "b"}) == "a\xEF\xBF\xBD\xEF\xBF\xBD" "b");
  CHECK(sp.decode({"▁▁x"}) == " x");
  const Decoder bl = Decoder::from_json(nlohmann::json{{"type", "ByteLevel"}}, "t.json");
  CHECK(bl.decode({"The", "Ġliver", "Ċ"}) == "The liver\n");
  CHECK(bl.decode({"ä½", "ł"}) == "你");
  CHECK(bl.decode({"ä½"}) == "\xEF\xBF\xBD");  // lossy: a truncated character is one U+FFFD
  CHECK(bl.decode({"<|eot_id|>"}) == "<|eot_id|>");
  const Decoder none = Decoder::from_json(nullptr, "t.json");
  CHECK(none.decode({"a", "b"}) == "a b");
  CHECK_THROWS_AS(Decoder::from_json(nlohmann::json{{"type", "WordPiece"}}, "t.json"), Error);
}

TEST_CASE("normalizer: NFC, Prepend and Replace in sequence", "[text][nfc]") {
  const Normalizer n = Normalizer::from_json(
      nlohmann::json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})"),
      "t.json");
  std::string s = "cafe\u0301 au lait";
  n.apply(s);
  CHECK(s == "▁café▁au▁lait");
  std::string empty;
  n.apply(empty);
  CHECK(empty.empty());  // Prepend leaves empty text alone
  CHECK_THROWS_AS(Normalizer::from_json(nlohmann::json{{"type", "Lowercase"}}, "t.json"), Error);
}
