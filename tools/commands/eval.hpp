#pragma once
// `ctmllm eval`: scores predicted region reports against references (eval/report_scores.hpp).
//   ctmllm eval --pred preds.json --ref refs.json [--format table|json|csv] [--finding-table FILE]
// Both files: {"case_id": {"chest": "...", "abdomen": "...", "pelvis": "..."}} or per case an AMOS-MM
// report object {"findings": {...}}. Findings are labelled with the synthetic world's table unless
// --finding-table names another (either table format). Output: a table (default), JSON or CSV
// (section,metric,value rows) on stdout; docs/EVAL.md describes the fields.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "ctmllm/data/labeller_table.hpp"
#include "ctmllm/eval/report_scores.hpp"

namespace ctmllm::cli {

inline nlohmann::ordered_json finding_score_json(const eval::FindingScore& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}, {"true_positives", s.true_positives},
          {"false_positives", s.false_positives}, {"false_negatives", s.false_negatives}};
}

inline nlohmann::ordered_json text_scores_json(const eval::TextScores& s) {
  nlohmann::ordered_json per_kind;
  for (const eval::FindingScore& k : s.findings.per_kind) per_kind[k.kind] = finding_score_json(k);
  return {{"pairs", s.pairs},
          {"bleu", s.bleu},
          {"rouge1", s.rouge.rouge1.fmeasure},
          {"rouge2", s.rouge.rouge2.fmeasure},
          {"rougeL", s.rouge.rougeL.fmeasure},
          {"chrf", s.chrf},
          {"findings", {{"micro", finding_score_json(s.findings.micro)}, {"per_kind", per_kind}}}};
}

inline nlohmann::ordered_json report_scores_json(const eval::ReportScores& r) {
  nlohmann::ordered_json j;
  for (const auto& [region, s] : r.regions) j[region] = text_scores_json(s);
  j["overall"] = text_scores_json(r.overall);
  return j;
}

// section,metric,value rows from the JSON form (nested keys joined with '.').
inline void print_csv(const nlohmann::ordered_json& j) {
  std::printf("section,metric,value\n");
  for (const auto& [section, scores] : j.items()) {
    const nlohmann::ordered_json flat = scores.flatten();  // items() of a temporary would dangle
    for (const auto& [path, value] : flat.items()) {
      std::string metric = path.substr(1);
      for (char& c : metric) c = c == '/' ? '.' : c;
      std::printf("%s,%s,%s\n", section.c_str(), metric.c_str(), value.dump().c_str());
    }
  }
}

inline void print_table(const eval::ReportScores& r) {
  std::printf("%-9s %6s %7s %7s %7s %7s %7s %7s %7s %7s\n", "section", "pairs", "BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L",
              "chrF", "find-P", "find-R", "find-F1");
  const auto row = [](const std::string& name, const eval::TextScores& s) {
    std::printf("%-9s %6lld %7.2f %7.4f %7.4f %7.4f %7.2f %7.4f %7.4f %7.4f\n", name.c_str(), static_cast<long long>(s.pairs),
                s.bleu, s.rouge.rouge1.fmeasure, s.rouge.rouge2.fmeasure, s.rouge.rougeL.fmeasure, s.chrf,
                s.findings.micro.precision, s.findings.micro.recall, s.findings.micro.f1);
  };
  for (const auto& [region, s] : r.regions) row(region, s);
  row("overall", r.overall);
  std::printf("\n%-28s %5s %5s %5s %9s %7s %7s\n", "finding kind (all regions)", "TP", "FP", "FN", "precision", "recall", "F1");
  auto kinds = r.overall.findings.per_kind;
  kinds.push_back(r.overall.findings.micro);
  for (const eval::FindingScore& k : kinds)
    std::printf("%-28s %5lld %5lld %5lld %9.4f %7.4f %7.4f\n", k.kind.c_str(), static_cast<long long>(k.true_positives),
                static_cast<long long>(k.false_positives), static_cast<long long>(k.false_negatives), k.precision, k.recall,
                k.f1);
}

inline void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Score predicted region reports against references (BLEU-4, ROUGE, chrF, finding F1)");
  static std::string pred, ref, format = "table", table;
  cmd->add_option("--pred", pred, "Predictions: {\"case_id\": {\"chest\": ..., \"abdomen\": ..., \"pelvis\": ...}}")->required();
  cmd->add_option("--ref", ref, "References, in the same shape")->required();
  cmd->add_option("--format", format, "Output: table, json or csv")->check(CLI::IsMember({"table", "json", "csv"}));
  cmd->add_option("--finding-table", table, "Finding table JSON (default: the synthetic world's)");
  cmd->callback([] {
    const eval::FindingLabeller labeller(table.empty() ? data::synthetic_labeller_table() : data::load_labeller_table(table));
    const eval::ReportScores r =
        eval::score_region_reports(eval::read_region_reports(pred), eval::read_region_reports(ref), labeller);
    if (format == "json") std::cout << report_scores_json(r).dump(2) << "\n";
    else if (format == "csv") print_csv(report_scores_json(r));
    else print_table(r);
  });
}

}  // namespace ctmllm::cli
