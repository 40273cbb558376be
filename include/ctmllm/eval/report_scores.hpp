#pragma once
// Corpus scores of region reports (region_reports.hpp) against references: per region and over
// every (case, region) pair, corpus BLEU-4 (sacrebleu, 0-100), ROUGE-1/2/L F-measures (the mean of
// the pairs, 0-1), corpus chrF (0-100), and finding-level precision / recall / F1 per finding kind
// and micro-averaged (findings.hpp). Only pairs with a non-empty reference count (the paper scores
// cases with a reference); a missing or empty prediction is an empty text. Every reference case
// must have a prediction and every predicted case a reference (an Error names the case).
#include <string>
#include <utility>
#include <vector>

#include "ctmllm/eval/bleu.hpp"
#include "ctmllm/eval/chrf.hpp"
#include "ctmllm/eval/findings.hpp"
#include "ctmllm/eval/region_reports.hpp"
#include "ctmllm/eval/rouge.hpp"

namespace ctmllm::eval {

struct TextScores {
  int64_t pairs = 0;
  double bleu = 0, chrf = 0;
  RougeScore rouge;
  FindingScores findings;
};

struct ReportScores {
  std::vector<std::pair<std::string, TextScores>> regions;  // chest, abdomen, pelvis: those with pairs
  TextScores overall;
};

inline TextScores score_texts(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references,
                              const FindingLabeller& labeller) {
  TextScores s;
  s.pairs = int64_t(hypotheses.size());
  s.bleu = corpus_bleu(hypotheses, references).score;
  s.chrf = corpus_chrf(hypotheses, references);
  s.rouge = corpus_rouge(hypotheses, references);
  s.findings = score_findings(labeller, hypotheses, references);
  return s;
}

inline ReportScores score_region_reports(const RegionReports& predictions, const RegionReports& references,
                                         const FindingLabeller& labeller) {
  for (const auto& [id, _] : predictions)
    CTMLLM_CHECK(references.count(id), "report scores: case '", id, "' has a prediction but no reference");
  std::vector<std::string> all_h, all_r;
  ReportScores out;
  for (const char* region : kReportRegions) {
    std::vector<std::string> h, r;
    for (const auto& [id, ref] : references) {
      const auto pred = predictions.find(id);
      CTMLLM_CHECK(pred != predictions.end(), "report scores: case '", id, "' has a reference but no prediction");
      const auto rt = ref.find(region);
      if (rt == ref.end() || rt->second.find_first_not_of(" \t\r\n") == std::string::npos) continue;
      const auto pt = pred->second.find(region);
      h.push_back(pt == pred->second.end() ? std::string() : pt->second);
      r.push_back(rt->second);
    }
    if (h.empty()) continue;
    all_h.insert(all_h.end(), h.begin(), h.end());
    all_r.insert(all_r.end(), r.begin(), r.end());
    out.regions.emplace_back(region, score_texts(h, r, labeller));
  }
  CTMLLM_CHECK(!all_h.empty(), "report scores: no case has a non-empty reference region");
  out.overall = score_texts(all_h, all_r, labeller);
  return out;
}

}  // namespace ctmllm::eval
