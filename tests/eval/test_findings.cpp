// Sentence splitting, the rule-based finding labeller (positive, negated and scoped mentions) and
// finding-level precision / recall / F1 against hand counts.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/eval/default_findings.hpp"
#include "ctmllm/eval/findings.hpp"
#include "ctmllm/eval/sentences.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"

using namespace ctmllm;
using namespace ctmllm::eval;
using Strings = std::vector<std::string>;

namespace {
Strings sentences(std::string_view text) {
  Strings out;
  for (std::string_view s : split_sentences(text)) out.emplace_back(s);
  return out;
}
}  // namespace

TEST_CASE("sentences: decimals, abbreviations and line breaks", "[eval][sentences]") {
  CHECK(sentences("A 2.3 cm cyst. No effusion.") == Strings{"A 2.3 cm cyst.", "No effusion."});
  CHECK(sentences("Nodules, e.g. in the lingula, approx. 5 mm. Stable vs. 1.5.2018!") ==
        Strings{"Nodules, e.g. in the lingula, approx. 5 mm.", "Stable vs. 1.5.2018!"});
  CHECK(sentences("Liver: normal\nSpleen: normal\r\n\nKidneys normal") ==
        Strings{"Liver: normal", "Spleen: normal", "Kidneys normal"});
  CHECK(sentences("Is it fluid?! Yes (small). \"Quoted.\" End") ==
        Strings{"Is it fluid?!", "Yes (small).", "\"Quoted.\"", "End"});
  CHECK(sentences("...").size() == 1);
  CHECK(sentences("   ").empty());
  CHECK(sentences("").empty());
  CHECK(contains_ci("The LIVER is normal", "liver is"));
  CHECK_FALSE(contains_ci("The liver", "spleen"));
}

TEST_CASE("finding labeller: positive, negated and scoped mentions", "[eval][findings]") {
  const FindingLabeller labeller(default_finding_table());
  const auto kinds = [&](std::string_view report) { return labeller.positive_kinds(report); };

  CHECK(kinds("Small bilateral pleural effusions.") == Strings{"pleural_effusion"});
  CHECK(kinds("No pleural effusion.").empty());
  CHECK(kinds("There is no evidence of pleural effusion or pneumothorax.").empty());
  CHECK(kinds("Pleural effusion is absent.").empty());
  CHECK(kinds("The pleural cavities are free of fluid.").empty());
  // Negation stays inside its sentence and clause.
  CHECK(kinds("No ascites. Small pleural effusion.") == Strings{"pleural_effusion"});
  CHECK(kinds("No ascites; small right pleural effusion.") == Strings{"pleural_effusion"});
  CHECK(kinds("No pneumothorax, but a 6 mm nodule in the right upper lobe.") == Strings{"lung_nodule"});
  // Terms of one pattern must meet in one clause; wildcards and multi-word phrases.
  CHECK(kinds("A 2.1 cm hypodense lesion in segment 7 of the liver.") == Strings{"liver_lesion"});
  CHECK(kinds("The liver is normal. A cyst in the left kidney.") == Strings{"kidney_cyst"});
  CHECK(kinds("Enlarged lymph nodes in the mediastinum.") == Strings{"lymphadenopathy"});
  CHECK(kinds("Splenomegaly. Calculi in the right kidney.") == Strings{"splenomegaly", "kidney_stone"});
  CHECK(kinds("The renal pelvis and calyces are not dilated.").empty());
  CHECK(kinds("The bladder is well filled and the bladder wall is thickened.") == Strings{"bladder_wall_thickening"});
  CHECK(kinds("PERICARDIAL EFFUSION.") == Strings{"pericardial_effusion"});
  CHECK(kinds("The spleen is unremarkable.").empty());
  CHECK(kinds("").empty());
  // "nodule" is not the cue "no"; "node" is not "no" either.
  CHECK(kinds("Lung nodule near a lymph node.") == Strings{"lung_nodule"});
}

TEST_CASE("finding table: JSON round trip, custom tables and errors", "[eval][findings]") {
  const FindingTable t = default_finding_table();
  const FindingTable again = FindingTable::from_json(t.to_json());
  CHECK(again.to_json() == t.to_json());
  CHECK(again.kinds.size() == t.kinds.size());

  const auto table = nlohmann::json::parse(R"({
    "negation_cues": ["no"],
    "kinds": [{"name": "cyst", "patterns": ["cyst*"], "negation_cues": ["resolved"]},
              {"name": "mass", "patterns": [["solid", "mass|tumo*"]]}]})");
  const FindingLabeller custom(FindingTable::from_json(table));
  CHECK(custom.positive_kinds("Renal cyst has resolved. Solid mass.") == Strings{"mass"});
  CHECK(custom.positive_kinds("Cysts; however no solid mass") == Strings{"cyst"});  // ';' breaks the scope
  CHECK(custom.label("cystic change") == std::vector<bool>{true, false});

  const std::string path = testing::scratch_dir("finding_table.json");
  std::ofstream(path) << table.dump();
  CHECK(FindingLabeller(FindingTable::load(path)).table().kinds.size() == 2);
  std::remove(path.c_str());

  using nlohmann::json;
  CHECK_THROWS_AS(FindingTable::from_json(json::parse(R"({"kinds": [{"name": "x"}]})")), Error);
  CHECK_THROWS_AS(FindingTable::from_json(json::parse(R"({"kinds": [], "typo": 1})")), Error);
  CHECK_THROWS_AS(FindingTable::from_json(json::parse(R"({"kinds": [{"name": "x", "patterns": ["a"], "extra": 1}]})")), Error);
  CHECK_THROWS_AS(FindingTable::load("/nonexistent/table.json"), Error);
  const auto bad = [](const char* text) { return FindingLabeller(FindingTable::from_json(json::parse(text))); };
  CHECK_THROWS_AS(bad(R"({"kinds": [{"name": "x", "patterns": ["a||b"]}]})"), Error);
  CHECK_THROWS_AS(bad(R"({"kinds": [{"name": "x", "patterns": ["a*b"]}]})"), Error);
  CHECK_THROWS_AS(bad(R"({"kinds": [{"name": "x", "patterns": []}]})"), Error);
  CHECK_THROWS_AS(bad(R"({"kinds": [{"name": "x", "patterns": ["a"]}, {"name": "x", "patterns": ["b"]}]})"), Error);
}

TEST_CASE("finding scores: per kind and micro average by hand", "[eval][findings]") {
  const FindingLabeller labeller(default_finding_table());
  const Strings predictions = {"Small pleural effusion. Splenomegaly.", "No pleural effusion.", "Ascites.", ""};
  const Strings references = {"Bilateral pleural effusions.", "Right pleural effusion.", "No ascites.", "Splenomegaly."};
  const FindingScores s = score_findings(labeller, predictions, references);
  const auto kind = [&](const std::string& name) {
    for (const FindingScore& k : s.per_kind)
      if (k.kind == name) return k;
    FAIL("no kind " << name);
    return FindingScore{};
  };
  // Pleural effusion: TP 1 (pair 0), FN 1 (pair 1) -> P 1, R 0.5, F1 2/3.
  const FindingScore pe = kind("pleural_effusion");
  CHECK(pe.true_positives == 1);
  CHECK(pe.false_negatives == 1);
  CHECK(pe.precision == Catch::Approx(1.0));
  CHECK(pe.recall == Catch::Approx(0.5));
  CHECK(pe.f1 == Catch::Approx(2.0 / 3.0));
  CHECK(pe.support() == 2);
  // Splenomegaly: FP (pair 0) and FN (pair 3) -> all 0. Ascites: FP only -> P 0, R 0 (no support).
  CHECK(kind("splenomegaly").f1 == 0.0);
  CHECK(kind("ascites").false_positives == 1);
  CHECK(kind("ascites").recall == 0.0);
  // Micro: TP 1, FP 2, FN 2 -> P 1/3, R 1/3.
  CHECK(s.micro.true_positives == 1);
  CHECK(s.micro.false_positives == 2);
  CHECK(s.micro.false_negatives == 2);
  CHECK(s.micro.precision == Catch::Approx(1.0 / 3.0));
  CHECK(s.micro.f1 == Catch::Approx(1.0 / 3.0));

  const FindingScores none = score_findings(labeller, {}, {});
  CHECK(none.micro.f1 == 0.0);
  CHECK_THROWS_AS(score_findings(labeller, {"a"}, {}), Error);
  CHECK_THROWS_AS(score_finding_labels({"x"}, {{true, false}}, {{true}}), Error);
}
