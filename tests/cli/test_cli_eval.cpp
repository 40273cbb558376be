// `ctmllm eval` run as a user would: predictions and references in JSON files; the JSON output's
// scores equal eval:: computed in-process, the table and CSV forms hold the same sections, and
// bad input ends with one "ctmllm: error:" line and status 1.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "ctmllm/data/labeller_table.hpp"
#include "ctmllm/eval/report_scores.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/run_cli.hpp"

using namespace ctmllm;
using testing::run_cli;
using Run = testing::CliRun;
namespace fs = std::filesystem;

namespace {
struct Files {
  fs::path dir = testing::scratch_dir("cli_eval");
  Files() { fs::create_directories(dir); }
  ~Files() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary) << text;
    return (dir / name).string();
  }
};

// Three cases; case_b's references are AMOS-MM report objects, case_c has no pelvis reference.
const char* kRefs = R"({
  "case_a": {"chest": "A 6 mm nodule in the right upper lobe. No pleural effusion.",
             "abdomen": "The liver is normal. A 2 cm cyst in the left kidney.", "pelvis": "The bladder is unremarkable."},
  "case_b": {"findings": {"chest": "Small left pleural effusion. No nodules.", "abdomen": "Splenomegaly.",
                          "pelvis": "Bladder wall thickening."}, "impression": "Effusion."},
  "case_c": {"chest": "The lungs are clear.", "abdomen": "A 5 mm stone in the right kidney.", "pelvis": null}
})";
const char* kPreds = R"({
  "case_a": {"chest": "A 5 mm nodule in the right upper lobe. No pleural effusion.",
             "abdomen": "The liver is normal.", "pelvis": "The bladder is unremarkable."},
  "case_b": {"chest": "Small left pleural effusion.", "abdomen": "The spleen is normal.",
             "pelvis": "Bladder wall thickening is seen."},
  "case_c": {"chest": "A lung nodule. The lungs are otherwise clear.", "abdomen": "A stone in the right kidney."}
})";
}  // namespace

TEST_CASE("ctmllm eval: JSON scores equal the in-process metrics, per region and overall", "[cli][eval]") {
  const Files f;
  const std::string refs = f.write("refs.json", kRefs), preds = f.write("preds.json", kPreds);
  const Run r = run_cli("eval --pred " + preds + " --ref " + refs + " --format json");
  REQUIRE(r.status == 0);
  const auto j = nlohmann::json::parse(r.out);

  const auto P = eval::read_region_reports(preds), R = eval::read_region_reports(refs);
  std::vector<std::string> all_h, all_r;
  for (const char* region : eval::kReportRegions) {
    std::vector<std::string> h, rr;
    for (const auto& [id, texts] : R)
      if (texts.count(region) && !texts.at(region).empty()) {
        h.push_back(P.at(id).count(region) ? P.at(id).at(region) : "");
        rr.push_back(texts.at(region));
      }
    INFO(region);
    REQUIRE(j.contains(region));
    CHECK(j[region]["pairs"] == int64_t(h.size()));
    CHECK(j[region]["bleu"].get<double>() == Approx(eval::corpus_bleu(h, rr).score).epsilon(1e-12));
    CHECK(j[region]["chrf"].get<double>() == Approx(eval::corpus_chrf(h, rr)).epsilon(1e-12));
    all_h.insert(all_h.end(), h.begin(), h.end());
    all_r.insert(all_r.end(), rr.begin(), rr.end());
  }
  CHECK(j["pelvis"]["pairs"] == 2);  // case_c has no pelvis reference
  CHECK(j["overall"]["pairs"] == 8);
  CHECK(j["overall"]["bleu"].get<double>() == Approx(eval::corpus_bleu(all_h, all_r).score).epsilon(1e-12));
  CHECK(j["overall"]["bleu"].get<double>() > 0);
  CHECK(j["overall"]["rougeL"].get<double>() == Approx(eval::corpus_rouge(all_h, all_r).rougeL.fmeasure).epsilon(1e-12));
  const eval::FindingLabeller labeller(data::synthetic_labeller_table());
  const eval::FindingScores fs_ = eval::score_findings(labeller, all_h, all_r);
  CHECK(j["overall"]["findings"]["micro"]["f1"].get<double>() == Approx(fs_.micro.f1).epsilon(1e-12));
  // The synthetic world's kinds: the nodule of case_a matches, case_c's is a false positive, the
  // kidney cyst and splenomegaly are missed.
  const auto& nodule = j["overall"]["findings"]["per_kind"]["lung_nodule"];
  CHECK(nodule["true_positives"] == 1);
  CHECK(nodule["false_positives"] == 1);
  CHECK(j["overall"]["findings"]["per_kind"]["splenomegaly"]["false_negatives"] == 1);

  const Run table = run_cli("eval --pred " + preds + " --ref " + refs);
  REQUIRE(table.status == 0);
  for (const char* s : {"chest", "abdomen", "pelvis", "overall", "lung_nodule", "micro"})
    CHECK(table.out.find(s) != std::string::npos);
  const Run csv = run_cli("eval --pred " + preds + " --ref " + refs + " --format csv");
  REQUIRE(csv.status == 0);
  CHECK(csv.out.rfind("section,metric,value\n", 0) == 0);
  CHECK(csv.out.find("overall,findings.micro.f1,") != std::string::npos);
}

TEST_CASE("ctmllm eval: a given finding table in the eval format", "[cli][eval]") {
  const Files f;
  const std::string refs = f.write("refs.json", kRefs), preds = f.write("preds.json", kPreds);
  const std::string table = f.write("table.json", R"({"negation_cues": ["no"], "kinds": [
      {"name": "effusion", "patterns": ["effusion*"]}]})");
  const Run r = run_cli("eval --pred " + preds + " --ref " + refs + " --format json --finding-table " + table);
  REQUIRE(r.status == 0);
  const auto kinds = nlohmann::json::parse(r.out)["overall"]["findings"]["per_kind"];
  CHECK(kinds.size() == 1);
  CHECK(kinds["effusion"]["true_positives"] == 1);
}

TEST_CASE("ctmllm eval: bad input ends with one error line and status 1", "[cli][eval]") {
  const Files f;
  const std::string refs = f.write("refs.json", kRefs), preds = f.write("preds.json", kPreds);
  const auto fails = [](const Run& r, const std::string& what) {
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.err.rfind("ctmllm: error: ", 0) == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.find(what) != std::string::npos);
  };
  fails(run_cli("eval --pred " + (f.dir / "none.json").string() + " --ref " + refs), "none.json");
  fails(run_cli("eval --pred " + f.write("bad.json", "{\"case_a\": ") + " --ref " + refs), "bad.json: invalid JSON");
  fails(run_cli("eval --pred " + f.write("region.json", R"({"case_a": {"head": "x"}})") + " --ref " + refs),
        "unknown region 'head'");
  fails(run_cli("eval --pred " + f.write("few.json", R"({"case_a": {"chest": "x"}})") + " --ref " + refs),
        "case 'case_b' has a reference but no prediction");
  fails(run_cli("eval --pred " + preds + " --ref " + refs + " --finding-table " + f.write("t.json", R"({"kinds": 3})")),
        "t.json");
  CHECK(run_cli("eval --pred " + preds + " --ref " + refs + " --format xml").status != 0);
  CHECK(run_cli("eval --pred " + preds).status != 0);
  CHECK(run_cli("eval --help").status == 0);
}
