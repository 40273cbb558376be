// The byte-level BPE trainer: HF's merge order and tie-break on a corpus small enough to work out by
// hand, training on synthetic reports then reloading the written files with text::Tokenizer (exact
// round trips, special tokens as single ids, BOS, chat template), determinism, and bad options.
// The hidden case [.hf_reference] writes a bigger trained tokenizer plus ctmllm's ids for
// tests/tools/check_trained_tokenizer.py, which compares them with HF tokenizers / transformers.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/data/report_writer.hpp"
#include "ctmllm/text/bpe_trainer.hpp"
#include "ctmllm/text/tokenizer.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"

using namespace ctmllm;
using testing::message_of;
using text::BpeTrainerOptions;
using text::TrainedBpe;

namespace {

// Synthetic reports: findings chosen and sized by the seed, the phrasing by the report writer.
std::vector<std::string> reports(int n) {
  using data::FindingKind;
  std::vector<std::string> out;
  for (int s = 0; s < n; ++s) {
    std::vector<data::Finding> findings;
    for (const auto& info : data::kFindingKinds) {
      if ((s >> int(info.kind)) % 3 != 0) continue;
      data::Finding f;
      f.kind = info.kind;
      f.side = s % 2 ? "left" : "right";
      f.location = s % 5 ? "lower pole" : "diffuse";
      f.size_mm = info.min_size_mm + (info.max_size_mm - info.min_size_mm) * double(s % 11) / 10.0;
      findings.push_back(f);
    }
    const data::Report r = data::write_report(findings, uint64_t(s));
    out.push_back("FINDINGS:\nChest: " + r.findings[0] + "\nAbdomen: " + r.findings[1] + "\nPelvis: " +
                  r.findings[2] + "\n\nIMPRESSION:\n" + r.impression);
  }
  return out;
}

// ~`bytes` of prose from a Zipf-distributed lexicon of 20,000 made-up words (syllables joined), with
// numbers and punctuation: unlike the template reports, its vocabulary does not saturate.
std::vector<std::string> varied_text(size_t bytes, uint64_t seed) {
  static const char* kSyllables[] = {"ab", "ra", "cal", "lo", "pe", "ri", "to", "ne", "um", "ic", "al", "os",
                                     "ar", "ter", "ven", "dys", "gram", "li", "mo", "sis", "thy", "ro", "pul", "hep"};
  auto word = [&](uint64_t k) {
    std::string w;
    for (int n = 1 + int(k % 4); n-- > 0; k /= 24) w += kSyllables[(k / 4) % 24];
    return w;
  };
  std::vector<std::string> out(1);
  uint64_t state = seed;
  for (size_t total = 0; total < bytes;) {
    state = data::splitmix64(state);
    const double u = double(state >> 11) / double(1ull << 53);
    const auto rank = uint64_t(std::pow(20000.0, u));  // Zipf-like: log-uniform rank
    std::string piece = (out.back().empty() ? "" : " ") + word(data::splitmix64(rank));
    if (state % 13 == 0) piece += " " + std::to_string(state % 1000) + "." + std::to_string(state % 10) + " mm";
    if (state % 7 == 0) piece += state % 2 ? "." : ",";
    total += piece.size();
    out.back() += piece;
    if (out.back().size() > 400) out.emplace_back();
  }
  return out;
}

// Texts the reports never contain: other scripts, symbols, odd white space, specials inline.
const std::vector<std::string> kUnseen = {
    "Größe 2×3 cm, 37 °C, µSv — ok?",
    "  leading spaces\tand\ttabs\r\nwindows line\n\n\ntrailing   ",
    "肝脏未见异常。 Лёгкие чистые. 🫁🩻 done",
    "It's the patient's 3rd CT; they'll compare 12345 values.",
    "<|im_start|>user\n<im_patch><im_patch>Describe the CT.<|im_end|>\n<|im_start|>assistant\n",
    "<bx_start>0.12,0.5<bx_end> <|pad|><|end_of_text|>",
    "",
};

std::vector<std::string> merge_strings(const TrainedBpe& b) {
  std::vector<std::string> out;
  for (const auto& [l, r] : b.merges) out.push_back(b.tokens[size_t(l)] + " " + b.tokens[size_t(r)]);
  return out;
}

}  // namespace

TEST_CASE("bpe trainer: merge order and tie-break as HF tokenizers", "[text][bpe_trainer]") {
  BpeTrainerOptions opt;
  opt.special_tokens = {"<s>"};
  opt.bos_token = "<s>";
  opt.eos_token = opt.pad_token = "";
  opt.chatml_template = false;
  // Words "low", " lower", " lowest" (Ġ is the byte-level space). Counts: (l,o) 3 and (o,w) 3 tie:
  // 'l' < 'o' by id wins. Then (lo,w) 3; then (Ġ,low) 2 and (low,e) 2 tie: Ġ is a byte symbol, so
  // its id is below every merged token's. Pairs seen once stay unmerged with min_frequency 2.
  const TrainedBpe b = text::train_bpe({"low lower lowest"}, opt);
  CHECK(merge_strings(b) == std::vector<std::string>{"l o", "lo w", "Ġ low", "Ġlow e"});
  CHECK(b.tokens.size() == 1 + 256 + 4);
  CHECK(b.tokens[0] == "<s>");
  CHECK(b.tokens[1] == "!");  // the byte symbols follow, by code point: '!' (0x21) is the smallest
  CHECK(b.tokens[256] == "Ń");  // and U+0143 the largest

  opt.min_frequency = 1;  // now the count-1 pairs merge too, smallest pair first: (s,t) before (Ġlowe,r)
  CHECK(merge_strings(text::train_bpe({"low lower lowest"}, opt)) ==
        std::vector<std::string>{"l o", "lo w", "Ġ low", "Ġlow e", "s t", "Ġlowe r", "Ġlowe st"});
  opt.vocab_size = 1 + 256 + 2;  // the vocab size caps the merges
  CHECK(merge_strings(text::train_bpe({"low lower lowest"}, opt)) == std::vector<std::string>{"l o", "lo w"});
}

TEST_CASE("bpe trainer: trained on reports, written and reloaded", "[text][bpe_trainer]") {
  const std::vector<std::string> corpus = reports(200);
  BpeTrainerOptions opt;
  opt.vocab_size = 700;
  const TrainedBpe b = text::train_bpe(corpus, opt);
  REQUIRE(b.tokens.size() == 700);
  const std::string dir = testing::scratch_dir("bpe_reload");
  b.save(dir);
  const text::Tokenizer tok = text::Tokenizer::from_file(dir);
  CHECK(tok.vocab_size() == 700);

  size_t bytes = 0, tokens = 0;
  for (const std::string& t : corpus) {
    const std::vector<int32_t> ids = tok.encode(t, false);
    CHECK(tok.decode(ids) == t);
    bytes += t.size();
    tokens += ids.size();
  }
  // A vocab fitted to the reports compresses them well beyond bytes.
  CHECK(double(bytes) / double(tokens) > 3.0);
  for (const std::string& t : kUnseen) {
    INFO(t);
    CHECK(tok.decode(tok.encode(t, false)) == t);  // every byte has a symbol: nothing unknown
  }

  for (size_t i = 0; i < opt.special_tokens.size(); ++i) {
    const std::string& s = opt.special_tokens[i];
    INFO(s);
    CHECK(tok.token_to_id(s) == int32_t(i));
    CHECK(tok.is_special(int32_t(i)));
    CHECK(tok.encode("x" + s + "x", false) == std::vector<int32_t>{*tok.token_to_id("x"), int32_t(i), *tok.token_to_id("x")});
  }
  CHECK(tok.bos_id() == tok.token_to_id("<|begin_of_text|>"));
  CHECK(tok.eos_id() == tok.token_to_id("<|im_end|>"));
  CHECK(tok.pad_id() == tok.token_to_id("<|pad|>"));
  const std::vector<int32_t> with_bos = tok.encode("The liver is normal.", true);
  CHECK(with_bos.front() == *tok.bos_id());
  CHECK(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()) == tok.encode("The liver is normal.", false));
  CHECK(tok.decode(tok.encode(kUnseen[4], true), true) == "user\nDescribe the CT.\nassistant\n");

  REQUIRE(tok.chat_template());
  CHECK(tok.chat_template()->name() == "chatml");
  CHECK(tok.apply_chat_template({{"user", "<im_patch>Describe the CT."}}) ==
        "<|im_start|>user\n<im_patch>Describe the CT.<|im_end|>\n<|im_start|>assistant\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("bpe trainer: deterministic", "[text][bpe_trainer]") {
  std::vector<std::string> corpus = reports(60);
  corpus.insert(corpus.end(), kUnseen.begin(), kUnseen.end());
  BpeTrainerOptions opt;
  opt.vocab_size = 500;
  opt.pre_tokenizer = text::SplitPattern::Gpt2;
  const TrainedBpe a = text::train_bpe(corpus, opt), b = text::train_bpe(corpus, opt);
  CHECK(a.tokens == b.tokens);
  CHECK(a.merges == b.merges);
  CHECK(a.tokenizer_json().dump() == b.tokenizer_json().dump());
  CHECK(a.tokenizer_json()["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == std::string(text::kGpt2Pattern));
}

TEST_CASE("bpe trainer: bad options and text are errors", "[text][bpe_trainer]") {
  const std::vector<std::string> corpus = {"the liver"};
  auto with = [](auto change) {
    BpeTrainerOptions o;
    change(o);
    return o;
  };
  CHECK_THAT(message_of([&] { text::train_bpe(corpus, with([](auto& o) { o.vocab_size = 263; })); }),
             Catch::Contains("leaves no room"));
  CHECK_THAT(message_of([&] { text::train_bpe(corpus, with([](auto& o) { o.bos_token = "<s>"; })); }),
             Catch::Contains("'<s>' is not one of the special tokens"));
  CHECK_THAT(message_of([&] { text::train_bpe(corpus, with([](auto& o) { o.special_tokens.push_back("<|pad|>"); })); }),
             Catch::Contains("listed twice"));
  CHECK_THAT(message_of([&] { text::train_bpe(corpus, with([](auto& o) { o.special_tokens.push_back(""); })); }),
             Catch::Contains("empty or not valid UTF-8"));
  CHECK_THAT(message_of([&] {
               text::train_bpe(corpus, with([](auto& o) {
                                 o.special_tokens = {"<s>"};
                                 o.bos_token = o.eos_token = o.pad_token = "";
                               }));
             }),
             Catch::Contains("ChatML chat template needs"));
  CHECK_THAT(message_of([&] { text::train_bpe({"ok", "bad \xC3"}, BpeTrainerOptions{}); }),
             Catch::Contains("text 1 is not valid UTF-8"));
  CHECK_THAT(message_of([&] { text::train_bpe(corpus, BpeTrainerOptions{}).save("/proc/ctmllm_no_such_dir"); }),
             Catch::Contains("/proc/ctmllm_no_such_dir"));
}

// ~1.5 MB (0.5 MB of reports, 1 MB of varied text, the unseen texts), 2048 tokens: prints the training time, and with CTMLLM_TRAINED_TOKENIZER_DIR
// set writes the tokenizer, the corpus and ctmllm's ids there for check_trained_tokenizer.py.
TEST_CASE("bpe trainer: 1.5 MB reference run", "[.hf_reference]") {
  std::vector<std::string> corpus = reports(500);
  const std::vector<std::string> varied = varied_text(1'000'000, 7);
  corpus.insert(corpus.end(), varied.begin(), varied.end());
  corpus.insert(corpus.end(), kUnseen.begin(), kUnseen.end());
  BpeTrainerOptions opt;
  const auto t0 = std::chrono::steady_clock::now();
  const TrainedBpe b = text::train_bpe(corpus, opt);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t bytes = 0;
  for (const std::string& t : corpus) bytes += t.size();
  WARN("trained " << b.tokens.size() << " tokens (" << b.merges.size() << " merges) on " << bytes << " bytes in "
                  << seconds << " s");
  CHECK(b.tokens.size() == opt.vocab_size);

  const char* env = std::getenv("CTMLLM_TRAINED_TOKENIZER_DIR");
  if (!env) return;
  const std::string dir = env;
  b.save(dir);
  const text::Tokenizer tok = text::Tokenizer::from_file(dir);
  std::vector<std::string> texts(corpus.begin(), corpus.begin() + 30);
  texts.insert(texts.end(), corpus.end() - 30, corpus.end());
  texts.insert(texts.end(), kUnseen.begin(), kUnseen.end());
  nlohmann::json ref = {{"vocab_size", opt.vocab_size},
                        {"min_frequency", opt.min_frequency},
                        {"special_tokens", opt.special_tokens},
                        {"corpus", corpus},
                        {"texts", texts}};
  for (const std::string& t : texts) {
    ref["ids"].push_back(tok.encode(t, false));
    ref["ids_with_special"].push_back(tok.encode(t, true));
  }
  const std::vector<text::ChatMessage> chat = {{"system", "You read CT."}, {"user", "<im_patch>Findings?"}};
  ref["chat"] = tok.apply_chat_template(chat);
  std::ofstream(dir + "/ctmllm_reference.json") << ref.dump();
}
