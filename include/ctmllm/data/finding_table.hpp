#pragma once
// The finding table of the rule-based labeller: per finding kind, the phrases a report uses when
// the finding is present, and the cues that negate them. report_writer.hpp writes every positive
// sentence with one of these phrases and no cue, and every absence as a cue followed by a phrase,
// so labelling a generated report recovers exactly the generated kinds (tests/data_world checks it).
// The same table ships as finding_table.json next to this header and in every generated dataset.
//
// Matching rule (docs/SYNTHETIC_CT.md): case-insensitive, whole words or phrases (the characters
// around a match are not letters or digits); a report region is split into sentences at '.', '!',
// '?' or ';' followed by whitespace or the end (so "2.5 cm" stays whole) and at line breaks; a kind is
// present when a sentence of its region contains one of its positive patterns with no negation cue
// before that pattern in the same sentence.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ctmllm/data/findings.hpp"

namespace ctmllm::data {

inline const std::vector<std::string>& negation_cues() {
  static const std::vector<std::string> cues = {"no", "not", "without", "negative for", "free of", "absence of"};
  return cues;
}

inline const std::vector<std::string>& positive_patterns(FindingKind k) {
  static const std::vector<std::string> patterns[kNumFindingKinds] = {
      {"nodule", "nodules", "nodular"},
      {"pleural effusion", "pleural effusions", "pleural fluid"},
      {"pericardial effusion", "pericardial fluid"},
      {"cyst", "cysts", "cystic"},
      {"calculus", "calculi", "stone", "stones", "nephrolithiasis"},
      {"splenomegaly", "spleen is enlarged", "enlarged spleen"},
      {"thickening", "thickened"},
  };
  return patterns[size_t(k)];
}

inline constexpr const char* kFindingTableMatching =
    "case-insensitive whole words or phrases; a region's text splits into sentences at '.', '!', '?' or ';' followed "
    "by whitespace or the end of the text, and at line breaks; a kind is present when a sentence of its region "
    "contains one of its positive_patterns with no negation_cue before that pattern in the same sentence";

inline nlohmann::ordered_json finding_table_json() {
  nlohmann::ordered_json kinds = nlohmann::ordered_json::array();
  for (const auto& info : kFindingKinds) {
    nlohmann::ordered_json k;
    k["name"] = info.name;
    k["region"] = region_name(info.region);
    k["positive_patterns"] = positive_patterns(info.kind);
    k["negation_cues"] = negation_cues();
    kinds.push_back(std::move(k));
  }
  nlohmann::ordered_json table;
  table["version"] = 1;
  table["matching"] = kFindingTableMatching;
  table["kinds"] = std::move(kinds);
  return table;
}

}  // namespace ctmllm::data
