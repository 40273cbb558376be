#pragma once
// The synthetic world's finding table (finding_table.hpp, finding_table.json in every generated
// dataset) as an eval::FindingTable, so the labeller of eval/findings.hpp scores reports of the
// synthetic world with its own vocabulary: each positive pattern becomes a one-phrase pattern and
// the world's negation cues the kind's cues. On the world's reports (positive sentences carry no
// cue, absences are "cue ... phrase") both rules give the same labels; on free text the eval rule
// is stricter (a cue anywhere in the clause negates, not only before the phrase).
#include <string>

#include <nlohmann/json.hpp>

#include "ctmllm/data/finding_table.hpp"
#include "ctmllm/eval/findings.hpp"
#include "ctmllm/text/json_file.hpp"

namespace ctmllm::data {

inline eval::FindingTable labeller_table(const nlohmann::json& world, const std::string& origin) {
  CTMLLM_CHECK(world.is_object() && world.contains("kinds") && world["kinds"].is_array(), origin,
               ": a finding table needs a 'kinds' list");
  eval::FindingTable t;
  for (const auto& k : world["kinds"]) {
    CTMLLM_CHECK(k.is_object() && k.contains("name") && k["name"].is_string() && k.contains("positive_patterns") &&
                     k["positive_patterns"].is_array(),
                 origin, ": each kind needs a 'name' and a 'positive_patterns' list");
    eval::FindingKind kind;
    kind.name = k["name"].get<std::string>();
    for (const auto& p : k["positive_patterns"]) {
      CTMLLM_CHECK(p.is_string(), origin, ": kind '", kind.name, "': positive_patterns must be strings");
      kind.patterns.push_back({p.get<std::string>()});
    }
    if (k.contains("negation_cues"))
      for (const auto& c : k["negation_cues"]) {
        CTMLLM_CHECK(c.is_string(), origin, ": kind '", kind.name, "': negation_cues must be strings");
        kind.negation_cues.push_back(c.get<std::string>());
      }
    t.kinds.push_back(std::move(kind));
  }
  return t;
}

// The default table of the synthetic world.
inline eval::FindingTable synthetic_labeller_table() { return labeller_table(finding_table_json(), "synthetic finding table"); }

// A table file in either format: the synthetic world's (kinds with "positive_patterns") or eval's.
inline eval::FindingTable load_labeller_table(const std::string& path) {
  const nlohmann::json j = text::read_json_file(path);
  const bool world = j.is_object() && j.contains("kinds") && j["kinds"].is_array() && !j["kinds"].empty() &&
                     j["kinds"][0].is_object() && j["kinds"][0].contains("positive_patterns");
  return world ? labeller_table(j, path) : eval::FindingTable::from_json(j, path);
}

}  // namespace ctmllm::data
