// Normality knowledge-base augmentation: which entries fire, where their sentences go, the
// plain-string keyword rule, the default knowledge base and the JSON format's errors.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/augment/default_knowledge_base.hpp"
#include "ctmllm/augment/normality.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"

using namespace ctmllm;
using namespace ctmllm::augment;
using nlohmann::json;

namespace {
const json kSmall = json::parse(R"({
  "chest": [
    {"keywords": ["lymph", "mediastin"], "sentence": "No enlarged mediastinal lymph nodes"},
    {"keywords": "heart", "sentence": "The heart is normal."},
    {"keywords": ["trachea|airway"], "sentence": "The trachea is patent."},
    {"keywords": ["mediastin"], "sentence": "The mediastinum is central."}
  ]})");
}  // namespace

TEST_CASE("normality: entries whose keywords are missing add their sentence, in order", "[augment][normality]") {
  const KnowledgeBase kb = KnowledgeBase::from_json(kSmall);
  SECTION("keywords must meet in one sentence") {
    // "lymph" and "mediastinum" sit in different sentences: entry 0 fires. Its sentence then
    // holds "mediastin", so entry 3 does not repeat it.
    const NormalityResult r = augment_normality("The HEART is enlarged. Lymph nodes: none. Mediastinum: see above",
                                                "chest", kb);
    CHECK(r.added == std::vector<size_t>{0, 2});
    CHECK(r.report ==
          "The HEART is enlarged. Lymph nodes: none. Mediastinum: see above. No enlarged mediastinal lymph nodes. "
          "The trachea is patent.");
  }
  SECTION("alternatives, substrings and decimals") {
    // "airways" holds "airway"; "2.5 cm" does not split the sentence that joins lymph and mediastinum.
    const NormalityResult r = augment_normality("A 2.5 cm lymph node in the mediastinum. Airways patent. Heart normal.",
                                                "chest", kb);
    CHECK(r.added.empty());
    CHECK(r.report == "A 2.5 cm lymph node in the mediastinum. Airways patent. Heart normal.");
  }
  SECTION("an empty report gets every sentence") {
    const NormalityResult r = augment_normality("  ", "chest", kb);
    CHECK(r.added == std::vector<size_t>{0, 1, 2});  // entry 3 is covered by entry 0's sentence
    CHECK(r.report == "No enlarged mediastinal lymph nodes. The heart is normal. The trachea is patent.");
  }
  SECTION("a plain string is one keyword, not a set of characters") {
    // Character by character, "heart" would be found in any text holding h, e, a, r, t.
    const NormalityResult r = augment_normality("The earth rotates.", "chest", kb);
    CHECK(std::find(r.added.begin(), r.added.end(), 1) != r.added.end());
  }
  CHECK_THROWS_AS(augment_normality("x", "abdomen", kb), Error);
}

TEST_CASE("normality: the default knowledge base", "[augment][normality]") {
  const KnowledgeBase kb = default_knowledge_base();
  CHECK(kb.regions.size() == 3);
  CHECK(kb.region("chest").size() >= 9);
  CHECK(kb.region("abdomen").size() >= 10);
  CHECK(kb.region("pelvis").size() >= 6);
  CHECK(KnowledgeBase::from_json(kb.to_json()).to_json() == kb.to_json());

  // A report that covers every organ is left alone.
  const std::string full =
      "The liver and gallbladder are normal. No biliary dilatation. The pancreas, spleen and adrenal glands are "
      "normal. A 1.2 cm cyst in the left kidney; no hydronephrosis. Ureters normal. Bowel normal. No enlarged lymph "
      "nodes. No ascites.";
  CHECK(augment_normality(full, "abdomen", kb).report == full);

  // A finding keeps the normal sentence of its organ out; the other organs are filled in.
  const NormalityResult r = augment_normality("Small right pleural effusion", "chest", kb);
  CHECK(r.report.rfind("Small right pleural effusion. ", 0) == 0);
  CHECK(r.report.find("no pleural effusion") == std::string::npos);
  CHECK(r.report.find("The heart is normal in size and shape.") != std::string::npos);
  // The added sentences never trigger each other's absence again: augmenting twice changes nothing.
  CHECK(augment_normality(r.report, "chest", kb).report == r.report);
}

TEST_CASE("normality: JSON format errors", "[augment][normality]") {
  const auto bad = [](const char* text) { return KnowledgeBase::from_json(json::parse(text)); };
  CHECK_THROWS_AS(bad(R"([])"), Error);
  CHECK_THROWS_AS(bad(R"({"chest": {}})"), Error);
  CHECK_THROWS_AS(bad(R"({"chest": [{"keywords": ["a"]}]})"), Error);
  CHECK_THROWS_AS(bad(R"({"chest": [{"keywords": [], "sentence": "x"}]})"), Error);
  CHECK_THROWS_AS(bad(R"({"chest": [{"keywords": ["a|"], "sentence": "x"}]})"), Error);
  CHECK_THROWS_AS(bad(R"({"chest": [{"keywords": [1], "sentence": "x"}]})"), Error);
  CHECK_THROWS_AS(bad(R"({"chest": [{"keywords": "a", "sentence": " "}]})"), Error);
  CHECK_THROWS_AS(bad(R"({"chest": [{"keywords": "a", "sentence": "x", "note": 1}]})"), Error);
  CHECK_THROWS_AS(KnowledgeBase::load("/nonexistent/kb.json"), Error);

  const std::string path = testing::scratch_dir("kb.json");
  std::ofstream(path) << kSmall.dump();
  CHECK(KnowledgeBase::load(path).region("chest").size() == 4);
  std::ofstream(path) << "{ not json";
  CHECK_THROWS_AS(KnowledgeBase::load(path), Error);
  std::remove(path.c_str());
}
