// BLEU, chrF and ROUGE against their reference implementations: text_metrics.json (sacrebleu 2.6,
// torchmetrics ROUGEScore; tests/tools/gen_fixtures.py, section metrics) and metric_cases.json
// (the options and inputs it lacks; tests/tools/gen_metric_fixtures.py). All within 1e-6.
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/eval/bleu.hpp"
#include "ctmllm/eval/chrf.hpp"
#include "ctmllm/eval/rouge.hpp"
#include "support/catch.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using namespace ctmllm::eval;
using nlohmann::json;

namespace {

json load(const std::string& name) {
  std::ifstream in(testing::fixture_path("metrics/" + name));
  REQUIRE(in);
  return json::parse(in);
}

std::vector<std::string> strings(const json& j) { return j.get<std::vector<std::string>>(); }

constexpr double kTol = 1e-6;

}  // namespace

TEST_CASE("BLEU, chrF and ROUGE match text_metrics.json", "[eval][metrics]") {
  const json f = load("text_metrics.json");
  const auto hyps = strings(f["hyps"]), refs = strings(f["refs"]);
  double worst = 0;
  const auto check = [&](double ours, double ref) {
    worst = std::max(worst, std::abs(ours - ref));
    CHECK(std::abs(ours - ref) <= kTol);
  };
  check(corpus_bleu(hyps, refs).score, f["corpus_bleu"].get<double>());
  for (size_t i = 0; i < hyps.size(); ++i) {
    INFO("pair " << i);
    check(sentence_bleu(hyps[i], {refs[i]}).score, f["sentence_bleu"][i].get<double>());
  }
  check(corpus_chrf(hyps, refs), f["corpus_chrf"].get<double>());
  for (size_t i = 0; i < hyps.size(); ++i) {
    INFO("pair " << i);
    const RougeScore s = rouge(hyps[i], refs[i]);
    const json& r = f["rouge_torchmetrics"][i];
    const std::pair<const char*, const RougePRF*> keys[] = {{"rouge1", &s.rouge1}, {"rouge2", &s.rouge2}, {"rougeL", &s.rougeL}};
    for (const auto& [name, prf] : keys) {
      check(prf->precision, r[std::string(name) + "_precision"].get<double>());
      check(prf->recall, r[std::string(name) + "_recall"].get<double>());
      check(prf->fmeasure, r[std::string(name) + "_fmeasure"].get<double>());
    }
  }
  WARN("text_metrics.json: max |ours - reference| = " << worst);
}

TEST_CASE("13a tokenizer and lowercase match sacrebleu and str.lower", "[eval][bleu]") {
  const json f = load("metric_cases.json");
  for (const json& c : f["tokenize_13a"]) {
    const std::string text = c[0].get<std::string>();
    INFO(text);
    CHECK(tokenize_13a(rstrip(text, "test")) == c[1].get<std::string>());
  }
  for (const json& c : f["lowercase"]) CHECK(lowercase(c[0].get<std::string>(), "test") == c[1].get<std::string>());
}

TEST_CASE("BLEU options match sacrebleu", "[eval][bleu]") {
  const json f = load("metric_cases.json");
  double worst = 0;
  for (const json& c : f["bleu"]) {
    const std::string hyp = c["hyp"].get<std::string>();
    const auto refs = strings(c["refs"]);
    INFO(hyp);
    const auto check = [&](const char* key, const BleuOptions& opt) {
      INFO(key);
      const double d = std::abs(bleu_from_stats(bleu_segment_stats(hyp, refs, opt), opt).score - c[key].get<double>());
      worst = std::max(worst, d);
      CHECK(d <= kTol);
    };
    check("sentence_default", {.effective_order = true});
    check("sentence_lowercase", {.lowercase = true, .effective_order = true});
    check("none", {.smoothing = BleuSmoothing::None});
    check("floor", {.smoothing = BleuSmoothing::Floor});
    check("floor_0.5", {.smoothing = BleuSmoothing::Floor, .smooth_value = 0.5});
    check("add-k", {.smoothing = BleuSmoothing::AddK});
    check("exp_effective", {.effective_order = true});
    check("exp_order2", {.max_order = 2});
    CHECK(std::abs(sentence_bleu(hyp, refs).score - c["sentence_default"].get<double>()) <= kTol);
  }
  const json& corpus = f["corpus"];
  const auto hyps = strings(corpus["hyps"]);
  const auto streams = corpus["ref_streams"].get<std::vector<std::vector<std::string>>>();
  CHECK(std::abs(corpus_bleu(hyps, streams).score - corpus["bleu"].get<double>()) <= kTol);
  CHECK(std::abs(corpus_bleu(hyps, streams[0]).score - corpus["bleu_one_stream"].get<double>()) <= kTol);
  CHECK(std::abs(corpus_bleu(hyps, streams, {.lowercase = true}).score - corpus["bleu_lowercase"].get<double>()) <= kTol);
  WARN("metric_cases.json BLEU: max |ours - sacrebleu| = " << worst);
}

TEST_CASE("chrF options match sacrebleu", "[eval][chrf]") {
  const json f = load("metric_cases.json");
  double worst = 0;
  for (const json& c : f["chrf"]) {
    const std::string hyp = c["hyp"].get<std::string>();
    const auto refs = strings(c["refs"]);
    INFO(hyp);
    const auto check = [&](const char* key, const ChrfOptions& opt) {
      INFO(key);
      const double d = std::abs(sentence_chrf(hyp, refs, opt) - c[key].get<double>());
      worst = std::max(worst, d);
      CHECK(d <= kTol);
    };
    check("default", {});
    check("plus_plus", {.word_order = 2});
    check("eps", {.eps_smoothing = true});
    check("whitespace", {.whitespace = true});
    check("lowercase", {.lowercase = true});
    check("beta1_order3", {.char_order = 3, .beta = 1});
  }
  const json& corpus = f["corpus"];
  const auto hyps = strings(corpus["hyps"]);
  const auto streams = corpus["ref_streams"].get<std::vector<std::vector<std::string>>>();
  CHECK(std::abs(corpus_chrf(hyps, streams) - corpus["chrf"].get<double>()) <= kTol);
  CHECK(std::abs(corpus_chrf(hyps, streams, {.word_order = 2}) - corpus["chrf_plus_plus"].get<double>()) <= kTol);
  WARN("metric_cases.json chrF: max |ours - sacrebleu| = " << worst);
}

TEST_CASE("ROUGE matches torchmetrics on punctuation, digits and non-ASCII text", "[eval][rouge]") {
  const json f = load("metric_cases.json");
  for (const json& c : f["rouge"]) {
    const std::string hyp = c["hyp"].get<std::string>(), ref = c["ref"].get<std::string>();
    INFO(hyp << " | " << ref);
    const RougeScore s = rouge(hyp, ref);
    CHECK(std::abs(s.rouge1.fmeasure - c["rouge1_fmeasure"].get<double>()) <= kTol);
    CHECK(std::abs(s.rouge2.precision - c["rouge2_precision"].get<double>()) <= kTol);
    CHECK(std::abs(s.rouge2.recall - c["rouge2_recall"].get<double>()) <= kTol);
    CHECK(std::abs(s.rougeL.fmeasure - c["rougeL_fmeasure"].get<double>()) <= kTol);
    CHECK(std::abs(s.rougeL.precision - c["rougeL_precision"].get<double>()) <= kTol);
  }
}

TEST_CASE("text metrics: hand-computed edge cases", "[eval][metrics]") {
  SECTION("identical strings score 100 / 1") {
    const std::string s = "The liver is normal in size, with no focal lesion.";
    CHECK(sentence_bleu(s, {s}).score == Catch::Approx(100.0));
    CHECK(sentence_chrf(s, {s}) == Catch::Approx(100.0));
    CHECK(rouge(s, s).rougeL.fmeasure == Catch::Approx(1.0));
  }
  SECTION("empty hypothesis or reference scores 0") {
    CHECK(sentence_bleu("", {"The spleen is normal."}).score == 0.0);
    CHECK(sentence_bleu("The spleen is normal.", {""}).score == 0.0);
    CHECK(sentence_chrf("", {""}) == 0.0);
    CHECK(rouge("", "spleen").rouge1.fmeasure == 0.0);
    CHECK(corpus_bleu(std::vector<std::string>{}, std::vector<std::string>{}).score == 0.0);
  }
  SECTION("sentence BLEU by hand: 'normal .' against 'normal study .'") {
    // Tokens: hyp [Normal, .], ref [Normal, study, .]; unigram 2/2, bigram 0/1 -> exp smoothing
    // 100/(2*1); effective order 2; BP = exp(1 - 3/2).
    const BleuScore b = sentence_bleu("Normal.", {"Normal study."});
    CHECK(b.precisions[0] == Catch::Approx(100.0));
    CHECK(b.precisions[1] == Catch::Approx(50.0));
    CHECK(b.bp == Catch::Approx(std::exp(-0.5)));
    CHECK(b.score == Catch::Approx(std::exp(-0.5) * std::sqrt(100.0 * 50.0)));
  }
  SECTION("ROUGE-L by hand") {
    // hyp [a b c d], ref [a c e d]: LCS a c d = 3 -> P = R = F = 3/4.
    const RougePRF l = rouge_l({"a", "b", "c", "d"}, {"a", "c", "e", "d"});
    CHECK(l.precision == Catch::Approx(0.75));
    CHECK(l.fmeasure == Catch::Approx(0.75));
    CHECK(rouge_tokenize("Liver: 2.3cm, İ K-space") == std::vector<std::string>{"liver", "2", "3cm", "i", "k", "space"});
  }
  SECTION("bad input is an Error") {
    CHECK_THROWS_AS(sentence_bleu("x", {}), Error);
    CHECK_THROWS_AS(corpus_bleu({"a", "b"}, std::vector<std::string>{"a"}), Error);
    CHECK_THROWS_AS(sentence_chrf("bad \xff utf8", {"x"}), Error);
    CHECK_THROWS_AS(corpus_rouge({"a"}, {}), Error);
  }
}
