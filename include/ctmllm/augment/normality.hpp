#pragma once
// Normality knowledge-base augmentation (the paper's first report augmenter). Reference reports
// state the organs that look normal; models tend to leave them out, and GREEN counts each
// omission as a missed finding. For every knowledge-base entry of the report's region whose
// keywords do not all appear together in one sentence of the report, the entry's normal-finding
// sentence is added.
//
// Rules (docs/EVAL.md has the reasoning):
// - keywords: all must occur in the same sentence (eval/sentences.hpp splits sentences; decimals
//   such as "2.3 cm" do not end one); matching is a case-insensitive substring test, as in the
//   published code, so "kidney" also finds "kidneys". A keyword may list alternatives as
//   "liver|hepatic" (an extension; without '|' the rule is the paper's).
// - A keyword list given as a plain string is ONE keyword. (The published code stored some
//   entries as plain strings and tested them character by character, so those entries never
//   fired; that bug is not reproduced.)
// - Added sentences are appended after the report, in knowledge-base order (the published code
//   prepended each one, which reverses the order). A sentence already added counts as part of the
//   report for the entries after it, as in the published code, so overlapping entries do not
//   repeat. When something is added, the report is trimmed and, if its last sentence lacks a
//   final '.', '!' or '?', a '.' closes it; an added sentence without one gets a '.'. A report
//   with nothing to add is returned unchanged.
//
// JSON format (KnowledgeBase::from_json / to_json; default_knowledge_base() is an example):
//   {"chest": [{"keywords": ["lymph", "mediastin|hila|hilar"], "sentence": "No enlarged ..."},
//              {"keywords": "trachea", "sentence": "The trachea is patent."}],
//    "abdomen": [...], "pelvis": [...]}
// Region names are free; unknown keys inside an entry are errors.
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/eval/sentences.hpp"
#include "ctmllm/eval/utf8.hpp"

namespace ctmllm::augment {

struct NormalityEntry {
  std::vector<std::string> keywords;  // all must appear in one sentence; "a|b" accepts either
  std::string sentence;               // the normal finding added when they do not
};

struct KnowledgeBase {
  std::map<std::string, std::vector<NormalityEntry>> regions;

  static KnowledgeBase from_json(const nlohmann::json& j, const std::string& origin = "knowledge base") {
    CTMLLM_CHECK(j.is_object(), origin, ": must be a JSON object of regions");
    KnowledgeBase kb;
    for (const auto& [region, list] : j.items()) {
      CTMLLM_CHECK(list.is_array(), origin, ": region '", region, "' must be an array of entries");
      std::vector<NormalityEntry>& entries = kb.regions[region];
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string where = origin + ": " + region + "[" + std::to_string(i) + "]";
        const auto& e = list[i];
        CTMLLM_CHECK(e.is_object() && e.contains("keywords") && e.contains("sentence"), where,
                     ": needs 'keywords' and 'sentence'");
        NormalityEntry entry;
        for (const auto& [key, v] : e.items()) {
          if (key == "keywords") {
            const auto keyword = [&](const nlohmann::json& k) {
              CTMLLM_CHECK(k.is_string(), where, ": 'keywords' must be a string or an array of strings");
              entry.keywords.push_back(k.get<std::string>());
            };
            if (v.is_array()) {
              for (const auto& k : v) keyword(k);
            } else {
              keyword(v);  // a plain string is one keyword
            }
          } else if (key == "sentence") {
            CTMLLM_CHECK(v.is_string(), where, ": 'sentence' must be a string");
            entry.sentence = v.get<std::string>();
          } else {
            fail(where, ": unknown key '", key, "'");
          }
        }
        check_entry(entry, where);
        entries.push_back(std::move(entry));
      }
    }
    return kb;
  }

  static KnowledgeBase load(const std::string& path) { return from_json(text::read_json_file(path), path); }

  nlohmann::json to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [region, entries] : regions) {
      j[region] = nlohmann::json::array();
      for (const NormalityEntry& e : entries) j[region].push_back({{"keywords", e.keywords}, {"sentence", e.sentence}});
    }
    return j;
  }

  const std::vector<NormalityEntry>& region(std::string_view name) const {
    const auto it = regions.find(std::string(name));
    CTMLLM_CHECK(it != regions.end(), "knowledge base: no region '", std::string(name), "'");
    return it->second;
  }

  static void check_entry(const NormalityEntry& e, const std::string& where) {
    CTMLLM_CHECK(!e.keywords.empty(), where, ": no keywords");
    for (const std::string& k : e.keywords)
      for (size_t b = 0, bar = 0; bar != std::string::npos; b = bar + 1) {
        bar = k.find('|', b);
        CTMLLM_CHECK(bar != b && b < k.size(), where, ": empty keyword in '", k, "'");
      }
    CTMLLM_CHECK(!eval::trim(e.sentence).empty(), where, ": empty sentence");
  }
};

namespace detail {

// Does the (lowercase) sentence hold every keyword, each through one of its alternatives?
inline bool holds_all(const std::string& sentence, const std::vector<std::string>& keywords) {
  for (const std::string& k : keywords) {
    const std::string lower = eval::lowercase(k, "normality");
    bool any = false;
    for (size_t b = 0, bar = 0; !any && bar != std::string::npos; b = bar + 1) {
      bar = lower.find('|', b);
      any = sentence.find(std::string_view(lower).substr(b, bar - b)) != std::string::npos;
    }
    if (!any) return false;
  }
  return true;
}

// Appends `sentence` to `report` as a new sentence (see the rules above).
inline void append_sentence(std::string& report, std::string_view sentence) {
  report = std::string(eval::trim(report));
  if (!report.empty() && !eval::ends_sentence(report)) report += '.';
  if (!report.empty()) report += ' ';
  const std::string_view s = eval::trim(sentence);
  report += s;
  if (!eval::ends_sentence(s)) report += '.';
}

}  // namespace detail

struct NormalityResult {
  std::string report;
  std::vector<size_t> added;  // indices of the region's entries whose sentence was added
};

inline NormalityResult augment_normality(std::string_view report, std::string_view region, const KnowledgeBase& kb) {
  const std::vector<NormalityEntry>& entries = kb.region(region);
  std::vector<std::string> sentences;
  for (std::string_view s : eval::split_sentences(report)) sentences.push_back(eval::lowercase(s, "normality"));
  NormalityResult out{std::string(report), {}};
  for (size_t i = 0; i < entries.size(); ++i) {
    bool found = false;
    for (const std::string& s : sentences) found = found || detail::holds_all(s, entries[i].keywords);
    if (found) continue;
    detail::append_sentence(out.report, entries[i].sentence);
    sentences.push_back(eval::lowercase(entries[i].sentence, "normality"));
    out.added.push_back(i);
  }
  return out;
}

}  // namespace ctmllm::augment
