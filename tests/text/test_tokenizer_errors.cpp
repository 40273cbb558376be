// Bad input raises ctmllm::Error naming the file and field: broken or unsupported tokenizer.json,
// corrupt tokenizer.model, invalid UTF-8 text, unknown token ids. Never a crash.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ctmllm/text/tokenizer.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::message_of;
using text::JsonTokenizer;
using text::Tokenizer;

namespace {
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const char* kTinyModel = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})";
}  // namespace

TEST_CASE("a minimal tokenizer.json works: no normalizer, pre-tokenizer or decoder", "[text][errors]") {
  const JsonTokenizer t = JsonTokenizer::from_string(kTinyModel, "tiny.json");
  CHECK(t.encode("abab", false) == std::vector<int32_t>{2, 2});
  CHECK(t.encode("acb", false) == std::vector<int32_t>{2});  // no unk_token: HF drops "c", then merges a b
  CHECK(t.decode(std::vector<int32_t>{2, 0}, false) == "ab a");                    // no decoder: tokens joined by spaces
}

TEST_CASE("broken tokenizer.json is an Error naming the file and the field", "[text][errors]") {
  CHECK_THAT(message_of([] { JsonTokenizer::from_string("{\"model\": ", "t.json"); }),
             Catch::Matchers::Contains("t.json") && Catch::Matchers::Contains("invalid JSON"));
  CHECK_THAT(message_of([] { JsonTokenizer::from_string("[1, 2]", "t.json"); }), Catch::Matchers::Contains("not a JSON object"));
  CHECK_THAT(message_of([] { JsonTokenizer::from_string("{}", "t.json"); }), Catch::Matchers::Contains("no \"model\" section"));
  CHECK_THAT(message_of([] { JsonTokenizer::from_string(R"({"model": {"type": "WordPiece", "vocab": {}}})", "t.json"); }),
             Catch::Matchers::Contains("unknown model type 'WordPiece'"));
  CHECK_THAT(message_of([] { JsonTokenizer::from_string(R"({"model": {"type": "Unigram", "vocab": []}})", "t.json"); }),
             Catch::Matchers::Contains("Unigram"));
  CHECK_THAT(message_of([] { JsonTokenizer::from_string(R"({"model": {"type": "BPE", "merges": []}})", "t.json"); }),
             Catch::Matchers::Contains("\"vocab\""));
  CHECK_THAT(message_of([] {
               JsonTokenizer::from_string(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}})", "t.json");
             }),
             Catch::Matchers::Contains("merge 0"));
  CHECK_THAT(message_of([] {
               JsonTokenizer::from_string(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]}})", "t.json");
             }),
             Catch::Matchers::Contains("one space"));
  CHECK_THAT(message_of([] {
               JsonTokenizer::from_string(R"({"model": {"type": "BPE", "vocab": {"a": -4}, "merges": []}})", "t.json");
             }),
             Catch::Matchers::Contains("vocab entry 'a'"));
  CHECK_THAT(message_of([] {
               JsonTokenizer::from_string(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}})",
                                          "t.json");
             }),
             Catch::Matchers::Contains("unk_token"));
  CHECK_THAT(message_of([] {
               JsonTokenizer::from_string(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}})",
                                          "t.json");
             }),
             Catch::Matchers::Contains("dropout"));
  auto with = [](const char* key, const char* value) {
    nlohmann::json j = nlohmann::json::parse(kTinyModel);
    j[key] = nlohmann::json::parse(value);
    return j;
  };
  CHECK_THAT(message_of([&] { JsonTokenizer::from_json(with("normalizer", R"({"type": "BertNormalizer"})"), "t.json"); }),
             Catch::Matchers::Contains("normalizer type 'BertNormalizer'"));
  CHECK_THAT(message_of([&] { JsonTokenizer::from_json(with("pre_tokenizer", R"({"type": "Whitespace"})"), "t.json"); }),
             Catch::Matchers::Contains("pre_tokenizer type 'Whitespace'"));
  CHECK_THAT(message_of([&] { JsonTokenizer::from_json(with("decoder", R"({"type": "CTC"})"), "t.json"); }),
             Catch::Matchers::Contains("decoder type 'CTC'"));
  CHECK_THAT(message_of([&] { JsonTokenizer::from_json(with("post_processor", R"({"type": "BertProcessing"})"), "t.json"); }),
             Catch::Matchers::Contains("post_processor type 'BertProcessing'"));
  CHECK_THAT(message_of([&] { JsonTokenizer::from_json(with("truncation", R"({"max_length": 8})"), "t.json"); }),
             Catch::Matchers::Contains("truncation"));
  CHECK_THAT(message_of([&] { JsonTokenizer::from_json(with("added_tokens", R"([{"id": 3}])"), "t.json"); }),
             Catch::Matchers::Contains("added_tokens"));
  CHECK_THAT(message_of([&] {
               JsonTokenizer::from_json(with("post_processor", R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}]})"),
                                        "t.json");
             }),
             Catch::Matchers::Contains("'<s>'"));
}

TEST_CASE("fields of the wrong JSON type are Errors naming the field", "[text][errors]") {
  // Found by fuzz_tokenizer: a "type" that is not a string threw nlohmann's exception, not an Error.
  CHECK_THAT(message_of([] {
               JsonTokenizer::from_string(R"({"model": {"type": true, "vocab": {"a": 0}, "merges": []}})", "t.json");
             }),
             Catch::Matchers::Contains("t.json") && Catch::Matchers::Contains("\"type\" is not a string"));
  auto with = [](const char* key, const char* value) {
    nlohmann::json j = nlohmann::json::parse(kTinyModel);
    j[key] = nlohmann::json::parse(value);
    return j;
  };
  const std::string llama3_split = nlohmann::json(std::string(text::kLlama3Pattern)).dump();
  CHECK_THAT(message_of([&] {
               JsonTokenizer::from_json(
                   with("pre_tokenizer", (R"({"type": "Split", "pattern": {"Regex": )" + llama3_split + R"(}, "behavior": 5})").c_str()),
                   "t.json");
             }),
             Catch::Matchers::Contains("\"behavior\" is not a string"));
  CHECK_THAT(message_of([&] {
               JsonTokenizer::from_json(with("pre_tokenizer", R"({"type": "Metaspace", "replacement": 1})"), "t.json");
             }),
             Catch::Matchers::Contains("\"replacement\" is not a string"));
  const std::string dir = testing::scratch_dir("named_template");
  std::filesystem::create_directories(dir);
  write_file(dir + "/tokenizer.json", kTinyModel);
  write_file(dir + "/tokenizer_config.json", R"({"chat_template": [{"name": 3, "template": "x"}]})");
  CHECK_THAT(message_of([&] { Tokenizer::from_file(dir); }),
             Catch::Matchers::Contains("tokenizer_config.json") && Catch::Matchers::Contains("\"name\" is not a string"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("missing files and directories are errors", "[text][errors]") {
  CHECK_THAT(message_of([] { Tokenizer::from_file("/nonexistent/tokenizer.json"); }),
             Catch::Matchers::Contains("/nonexistent/tokenizer.json"));
  const std::string empty = testing::scratch_dir("empty");
  std::filesystem::create_directories(empty);
  CHECK_THAT(message_of([&] { Tokenizer::from_file(empty); }), Catch::Matchers::Contains("no tokenizer.json or tokenizer.model"));
  std::filesystem::remove_all(empty);
}

TEST_CASE("tokenizer_config.json naming a token the vocab lacks is an Error", "[text][errors]") {
  const std::string dir = testing::scratch_dir("config");
  std::filesystem::create_directories(dir);
  write_file(dir + "/tokenizer.json", kTinyModel);
  write_file(dir + "/tokenizer_config.json", R"({"bos_token": {"content": "ab"}, "eos_token": "b"})");
  const Tokenizer ok = Tokenizer::from_file(dir);
  CHECK(ok.bos_id() == 2);
  CHECK(ok.eos_id() == 1);
  write_file(dir + "/tokenizer_config.json", R"({"bos_token": "<s>"})");
  CHECK_THAT(message_of([&] { Tokenizer::from_file(dir); }),
             Catch::Matchers::Contains("tokenizer_config.json") && Catch::Matchers::Contains("bos_token '<s>'"));
  write_file(dir + "/tokenizer_config.json", R"({"eos_token": 7})");
  CHECK_THAT(message_of([&] { Tokenizer::from_file(dir); }), Catch::Matchers::Contains("eos_token"));
  write_file(dir + "/tokenizer_config.json", "{oops");
  CHECK_THAT(message_of([&] { Tokenizer::from_file(dir); }), Catch::Matchers::Contains("invalid JSON"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("invalid UTF-8 text is an Error naming the byte", "[text][errors]") {
  const Tokenizer tok = Tokenizer::from_file(testing::fixture_path("tokenizer/bpe_llama3/tokenizer.json"));
  CHECK_THAT(message_of([&] { tok.encode("liv\xFF" "er"); }), Catch::Matchers::Contains("byte 3"));
  CHECK_THROWS_AS(tok.encode("\xC3"), Error);
  CHECK_THROWS_AS(tok.encode("\xED\xA0\x80"), Error);  // an encoded surrogate
  const Tokenizer sp = Tokenizer::from_file(testing::fixture_path("tokenizer/sp_llama/tokenizer.model"));
  CHECK_THROWS_AS(sp.encode("\xE4\xBD"), Error);
}

TEST_CASE("decoding an id outside the vocabulary is an Error", "[text][errors]") {
  const Tokenizer tok = Tokenizer::from_file(testing::fixture_path("tokenizer/bpe_llama3/tokenizer.json"));
  const int32_t n = int32_t(tok.vocab_size());
  CHECK_THAT(message_of([&] { tok.decode(std::vector<int32_t>{1, n}); }), Catch::Matchers::Contains(std::to_string(n)));
  CHECK_THROWS_AS(tok.decode(std::vector<int32_t>{-1}), Error);
  const Tokenizer sp = Tokenizer::from_file(testing::fixture_path("tokenizer/sp_llama/tokenizer.model"));
  CHECK_THROWS_AS(sp.decode(std::vector<int32_t>{500}), Error);
  CHECK_THROWS_AS(sp.decode(std::vector<int32_t>{-7}), Error);
  // Byte pieces that do not form UTF-8 decode to U+FFFD rather than failing.
  CHECK(sp.decode(std::vector<int32_t>{*sp.token_to_id("<0xE4>"), *sp.token_to_id("<0xBD>")}) ==
        "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(sp.decode(std::vector<int32_t>{*sp.token_to_id("<0xE4>"), *sp.token_to_id("<0xBD>"), *sp.token_to_id("<0xA0>")}) ==
        "\xE4\xBD\xA0");
}

TEST_CASE("corrupt or unsupported tokenizer.model files are errors, never crashes", "[text][errors]") {
  const std::string good = read_file(testing::fixture_path("tokenizer/sp_llama/tokenizer.model"));
  REQUIRE(good.size() > 1000);
  size_t errors = 0;
  for (size_t n = 0; n < good.size(); n += 37) {  // every truncation either parses or throws Error
    try {
      text::SentencePieceModel::from_bytes(std::string_view(good).substr(0, n), "cut.model");
    } catch (const Error& e) {
      ++errors;
      CHECK_THAT(e.what(), Catch::Matchers::Contains("cut.model"));
    }
  }
  CHECK(errors > 0);
  std::string flipped = good;
  for (size_t i = 0; i < flipped.size(); i += 11) flipped[i] = char(flipped[i] ^ 0x5A);
  CHECK_THROWS_AS(text::SentencePieceModel::from_bytes(flipped, "flipped.model"), Error);

  // A hand-written ModelProto: one UNKNOWN piece, trainer_spec.model_type = 1 (unigram).
  const std::string piece = std::string("\x0A\x05<unk>\x18\x02", 9);
  const std::string unigram = "\x0A" + std::string(1, char(piece.size())) + piece + std::string("\x12\x02\x18\x01", 4);
  CHECK_THAT(message_of([&] { text::SentencePieceModel::from_bytes(unigram, "u.model"); }),
             Catch::Matchers::Contains("u.model") && Catch::Matchers::Contains("unigram"));
  const std::string bpe = "\x0A" + std::string(1, char(piece.size())) + piece + std::string("\x12\x02\x18\x02", 4);
  CHECK_NOTHROW(text::SentencePieceModel::from_bytes(bpe, "bpe.model"));
  CHECK_THAT(message_of([&] { text::SentencePieceModel::from_bytes(bpe + std::string("\x1A\x03\x12\x01x", 5), "c.model"); }),
             Catch::Matchers::Contains("charsmap"));
  CHECK_THROWS_AS(text::SentencePieceModel::from_bytes("", "empty.model"), Error);
  CHECK_THROWS_AS(text::SentencePieceModel::from_bytes("\x0A\xFF", "len.model"), Error);
}
