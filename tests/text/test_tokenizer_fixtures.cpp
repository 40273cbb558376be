// Every case of every tokenizer fixture (tests/fixtures/tokenizer*, references from HF tokenizers and
// sentencepiece): ids, ids with special tokens, tokens / pieces, decoded text, exactly; the chat
// entries of the real Llama-3 and Qwen3 tokenizers; special-token bookkeeping.
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "ctmllm/text/tokenizer.hpp"
#include "support/catch.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using text::Tokenizer;

namespace {

// Loading the real tokenizers takes a second each: load every one once.
const Tokenizer& tokenizer(const std::string& relative) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(relative);
  if (it == cache.end()) it = cache.emplace(relative, Tokenizer::from_file(testing::fixture_path(relative))).first;
  return it->second;
}

nlohmann::json cases_of(const std::string& dir) {
  const nlohmann::json j = text::read_json_file(testing::fixture_path(dir + "/cases.json"));
  return j.is_array() ? j : j.at("cases");
}

std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

// Checks every case of `dir`; `specials_key` names the ids-with-special-tokens field (if any) and
// `tokens_key` the token strings field (if any).
void check_cases(const std::string& dir, const std::string& specials_key, const std::string& tokens_key) {
  const Tokenizer& tok = tokenizer(dir);
  const nlohmann::json cases = cases_of(dir);
  REQUIRE(cases.size() > 0);
  for (const auto& c : cases) {
    const std::string input = c.at("text").get<std::string>();
    INFO(dir << " text: " << nlohmann::json(input).dump());
    const std::vector<int32_t> ids = ids_of(c.at("ids"));
    CHECK(tok.encode(input, false) == ids);
    if (!specials_key.empty()) CHECK(tok.encode(input, true) == ids_of(c.at(specials_key)));
    if (!tokens_key.empty()) {
      std::vector<std::string> tokens;
      for (int32_t id : ids) tokens.push_back(tok.id_to_token(id));
      CHECK(tokens == c.at(tokens_key).get<std::vector<std::string>>());
    }
    CHECK(tok.decode(ids, false) == c.at("decoded").get<std::string>());
  }
}

}  // namespace

TEST_CASE("byte-level BPE, small Llama-3-style tokenizer: every fixture case", "[text][fixtures]") {
  check_cases("tokenizer/bpe_llama3", "ids_with_bos", "tokens");
}

TEST_CASE("byte-level BPE, small Qwen2-style tokenizer: every fixture case", "[text][fixtures]") {
  check_cases("tokenizer/bpe_qwen2", "ids_with_bos", "tokens");
}

TEST_CASE("SentencePiece tokenizer.model with byte fallback and a user-defined symbol: every case", "[text][fixtures]") {
  check_cases("tokenizer/sp_llama", "", "pieces");
}

TEST_CASE("real Llama-3 tokenizer.json: every fixture case", "[text][fixtures]") {
  check_cases("tokenizer_real/llama3", "ids_with_specials", "");
}

TEST_CASE("real Qwen3 tokenizer.json (NFC normalizer): every fixture case", "[text][fixtures]") {
  check_cases("tokenizer_real/qwen3", "ids_with_specials", "");
}

TEST_CASE("real Mistral-7B SentencePiece-style tokenizer.json: every fixture case", "[text][fixtures]") {
  check_cases("tokenizer_real/llama2", "ids_with_specials", "");
}

TEST_CASE("chat template of the real tokenizers renders the transformers text and ids", "[text][fixtures][chat]") {
  for (const char* dir : {"tokenizer_real/llama3", "tokenizer_real/qwen3"}) {
    INFO(dir);
    const Tokenizer& tok = tokenizer(dir);
    const nlohmann::json chat = text::read_json_file(testing::fixture_path(std::string(dir) + "/cases.json")).at("chat");
    std::vector<text::ChatMessage> messages;
    for (const auto& m : chat.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    REQUIRE(tok.chat_template() != nullptr);
    const std::string rendered = tok.apply_chat_template(messages, chat.at("add_generation_prompt").get<bool>());
    CHECK(rendered == chat.at("text").get<std::string>());
    CHECK(tok.encode(rendered, false) == ids_of(chat.at("ids")));
  }
  CHECK(tokenizer("tokenizer_real/llama3").chat_template()->name() == "llama3");
  CHECK(tokenizer("tokenizer_real/qwen3").chat_template()->name() == "qwen3");
  // The Mistral fixture's tokenizer_config.json has no chat_template.
  CHECK(tokenizer("tokenizer_real/llama2").chat_template() == nullptr);
  CHECK_THROWS_AS(tokenizer("tokenizer_real/llama2").apply_chat_template({{"user", "hi"}}), Error);
}

TEST_CASE("vocab sizes and bos / eos / pad ids come from the files", "[text][fixtures]") {
  const Tokenizer& llama3 = tokenizer("tokenizer_real/llama3");
  CHECK(llama3.vocab_size() == 128256);
  CHECK(llama3.bos_id() == 128000);
  CHECK(llama3.eos_id() == 128001);
  CHECK_FALSE(llama3.pad_id().has_value());
  const Tokenizer& qwen3 = tokenizer("tokenizer_real/qwen3");
  CHECK(qwen3.vocab_size() == 151669);
  CHECK_FALSE(qwen3.bos_id().has_value());
  CHECK(qwen3.eos_id() == 151645);
  CHECK(qwen3.pad_id() == 151643);
  const Tokenizer& mistral = tokenizer("tokenizer_real/llama2");
  CHECK(mistral.vocab_size() == 32000);
  CHECK(mistral.bos_id() == 1);
  CHECK(mistral.eos_id() == 2);
  const Tokenizer& sp = tokenizer("tokenizer/sp_llama");
  CHECK(sp.vocab_size() == 500);
  CHECK(sp.bos_id() == 1);
  CHECK(sp.eos_id() == 2);
  CHECK_FALSE(sp.pad_id().has_value());
  CHECK(sp.encode("The liver", true).front() == 1);
  CHECK(tokenizer("tokenizer/bpe_llama3").bos_id() == 0);  // from the TemplateProcessing post-processor
}

TEST_CASE("token_to_id / id_to_token cover the vocab and the added tokens", "[text][fixtures]") {
  const Tokenizer& llama3 = tokenizer("tokenizer_real/llama3");
  CHECK(llama3.token_to_id("<|eot_id|>") == 128009);
  CHECK(llama3.id_to_token(128009) == "<|eot_id|>");
  CHECK(llama3.token_to_id("Ġliver") == 26587);
  CHECK(llama3.id_to_token(26587) == "Ġliver");
  CHECK_FALSE(llama3.token_to_id("no such token").has_value());
  CHECK_THROWS_AS(llama3.id_to_token(128256), Error);
  CHECK_THROWS_AS(llama3.id_to_token(-1), Error);
  CHECK(llama3.is_special(128009));
  CHECK_FALSE(llama3.is_special(26587));
  const Tokenizer& sp = tokenizer("tokenizer/sp_llama");
  CHECK(sp.token_to_id("<im_patch>") == 3);
  CHECK(sp.token_to_id("<0x0A>") == 14);
  CHECK(sp.id_to_token(1) == "<s>");
  CHECK(sp.is_special(1));
  CHECK_FALSE(sp.is_special(3));  // a user-defined symbol is ordinary text
}

TEST_CASE("skip_special_tokens drops the chat headers of a Llama-3 prompt", "[text][fixtures]") {
  const Tokenizer& tok = tokenizer("tokenizer_real/llama3");
  const auto ids = tok.encode("<|start_header_id|>user<|end_header_id|>\n\nThe liver is normal.<|eot_id|>", true);
  CHECK(ids.front() == 128006);  // no BOS: this tokenizer.json's post_processor is ByteLevel only
  CHECK(tok.decode(ids, true) == "user\n\nThe liver is normal.");
  CHECK(tok.decode(ids, false) == "<|start_header_id|>user<|end_header_id|>\n\nThe liver is normal.<|eot_id|>");
}

TEST_CASE("add_special_tokens appends new ids that encode whole and decode away", "[text][fixtures]") {
  Tokenizer tok = Tokenizer::from_file(testing::fixture_path("tokenizer/bpe_llama3/tokenizer.json"));
  const size_t before = tok.vocab_size();
  const auto ids = tok.add_special_tokens({"<im_patch>", "<bx_start>", "<bx_end>"});
  REQUIRE(ids.size() == 3);
  CHECK(ids[0] == 5);  // already an added token
  CHECK(ids[1] == int32_t(before));
  CHECK(ids[2] == int32_t(before) + 1);
  CHECK(tok.vocab_size() == before + 2);
  CHECK(tok.add_special_tokens({"<bx_end>"}) == std::vector<int32_t>{ids[2]});  // idempotent
  const auto enc = tok.encode("<bx_start>liver<bx_end><im_patch>", false);
  REQUIRE(enc.size() >= 4);
  CHECK(enc.front() == ids[1]);
  CHECK(enc[enc.size() - 2] == ids[2]);
  CHECK(enc.back() == 5);
  CHECK(tok.decode(enc, false) == "<bx_start>liver<bx_end><im_patch>");
  CHECK(tok.decode(enc, true) == "liver");

  Tokenizer sp = Tokenizer::from_file(testing::fixture_path("tokenizer/sp_llama/tokenizer.model"));
  const auto sp_ids = sp.add_special_tokens({"<im_patch>", "<bx_start>"});
  CHECK(sp_ids == std::vector<int32_t>{3, 500});
  const auto sp_enc = sp.encode("<bx_start><im_patch>", false);
  CHECK(sp_enc == std::vector<int32_t>{500, 3});
  CHECK(sp.decode(sp_enc, false) == "<bx_start><im_patch>");
  CHECK(sp.decode(sp_enc, true).empty());
}

TEST_CASE("the same tokenizer loads from its directory and from its file", "[text][fixtures]") {
  const Tokenizer a = Tokenizer::from_file(testing::fixture_path("tokenizer/sp_llama"));
  const Tokenizer b = Tokenizer::from_file(testing::fixture_path("tokenizer/sp_llama/tokenizer.model"));
  const std::string s = "Hounsfield ≈ 40 HU; café";
  CHECK(a.encode(s) == b.encode(s));
  CHECK(a.decode(a.encode(s), true) == s);
}
