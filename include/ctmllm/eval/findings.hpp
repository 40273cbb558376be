#pragma once
// A rule-based finding labeller and finding-level precision / recall / F1.
//
// A FindingTable lists finding kinds. Each kind has patterns; a pattern is a list of terms that
// must all occur in one clause; a term is a set of alternatives separated by '|'; an alternative
// is a phrase of one or more words, matched as consecutive words, where a word ending in '*'
// matches any word that starts with it. Matching is case-insensitive on words (runs of letters
// and digits: "low-density" is the two words "low density").
//
// Negation is scoped: a report is split into sentences (eval/sentences.hpp), each sentence into
// clauses at ';' and at the table's scope-break words ("but", "however", ...). A mention counts
// only in a clause that holds none of the table's negation cues nor the kind's own cues. So
// "No pleural effusion." is negative, "No ascites; small pleural effusion." is positive for the
// effusion. Known limits of so simple a rule: a cue anywhere in the clause negates every mention
// in it ("no change in the 5 mm lung nodule" reads as no nodule), and uncertainty ("cannot be
// excluded") is not modelled.
//
// JSON format (FindingTable::from_json / to_json; default_finding_table() is an example):
//   {"negation_cues": ["no", "without", "negative for", ...],
//    "scope_breaks": ["but", "however", ...],
//    "kinds": [{"name": "pleural_effusion",
//               "patterns": [["pleural", "effusion*|fluid"], "hydrothorax"],
//               "negation_cues": []}]}
// A pattern given as a plain string is one term. Unknown keys are errors.
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/eval/sentences.hpp"
#include "ctmllm/eval/utf8.hpp"

namespace ctmllm::eval {

struct FindingKind {
  std::string name;
  std::vector<std::vector<std::string>> patterns;  // each pattern: terms that must all match one clause
  std::vector<std::string> negation_cues;          // cues for this kind only, on top of the table's
};

struct FindingTable {
  std::vector<std::string> negation_cues;
  std::vector<std::string> scope_breaks;
  std::vector<FindingKind> kinds;

  static FindingTable from_json(const nlohmann::json& j, const std::string& origin = "finding table") {
    const auto strings = [&](const nlohmann::json& v, const std::string& field) {
      CTMLLM_CHECK(v.is_array(), origin, ": '", field, "' must be an array of strings");
      std::vector<std::string> out;
      for (const auto& s : v) {
        CTMLLM_CHECK(s.is_string(), origin, ": '", field, "' must be an array of strings");
        out.push_back(s.get<std::string>());
      }
      return out;
    };
    CTMLLM_CHECK(j.is_object(), origin, ": the table must be a JSON object");
    FindingTable t;
    for (const auto& [key, value] : j.items()) {
      if (key == "negation_cues") {
        t.negation_cues = strings(value, key);
      } else if (key == "scope_breaks") {
        t.scope_breaks = strings(value, key);
      } else if (key == "kinds") {
        CTMLLM_CHECK(value.is_array(), origin, ": 'kinds' must be an array");
        for (size_t i = 0; i < value.size(); ++i) {
          const auto& k = value[i];
          const std::string where = origin + ": kinds[" + std::to_string(i) + "]";
          CTMLLM_CHECK(k.is_object() && k.contains("name") && k["name"].is_string() && k.contains("patterns") &&
                           k["patterns"].is_array(),
                       where, ": needs a string 'name' and an array 'patterns'");
          FindingKind kind;
          for (const auto& [field, v] : k.items()) {
            if (field == "name") {
              kind.name = v.get<std::string>();
            } else if (field == "patterns") {
              for (const auto& p : v) kind.patterns.push_back(p.is_string() ? std::vector<std::string>{p.get<std::string>()}
                                                                             : strings(p, where + ".patterns"));
            } else if (field == "negation_cues") {
              kind.negation_cues = strings(v, where + ".negation_cues");
            } else {
              fail(where, ": unknown key '", field, "'");
            }
          }
          t.kinds.push_back(std::move(kind));
        }
      } else {
        fail(origin, ": unknown key '", key, "'");
      }
    }
    return t;
  }

  static FindingTable load(const std::string& path) { return from_json(text::read_json_file(path), path); }

  nlohmann::json to_json() const {
    nlohmann::json kinds = nlohmann::json::array();
    for (const FindingKind& k : this->kinds)
      kinds.push_back({{"name", k.name}, {"patterns", k.patterns}, {"negation_cues", k.negation_cues}});
    return {{"negation_cues", negation_cues}, {"scope_breaks", scope_breaks}, {"kinds", kinds}};
  }
};

namespace detail {

// Letters and digits make words; white space, punctuation and symbols separate them.
inline bool word_char(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  return !is_space(c) && c >= 0xC0 && c != 0xD7 && c != 0xF7 && !(c >= 0x2000 && c <= 0x2BFF) &&
         !(c >= 0x3000 && c <= 0x303F);
}

// The lowercase words of `text`; '*' also counts as a word character when `star` is set (patterns),
// and each ';' becomes an empty word (a clause break) when `semicolons` is set.
inline std::vector<std::string> finding_words(std::string_view text, bool star, bool semicolons) {
  const std::string lower = lowercase(text, "finding labeller");
  std::vector<std::string> words;
  std::string w;
  const auto flush = [&] {
    if (!w.empty()) words.push_back(std::move(w));
    w.clear();
  };
  for (size_t i = 0; i < lower.size();) {
    const char32_t c = decode_next(lower, i, "finding labeller");
    if (word_char(c) || (star && c == '*')) {
      append_utf8(w, c);
    } else {
      flush();
      if (semicolons && c == ';') words.emplace_back();
    }
  }
  flush();
  return words;
}

}  // namespace detail

class FindingLabeller {
 public:
  explicit FindingLabeller(FindingTable table) : table_(std::move(table)) {
    for (const std::string& c : table_.negation_cues) cues_.push_back(phrase(c, "negation cue"));
    for (const std::string& b : table_.scope_breaks) breaks_.push_back(phrase(b, "scope break"));
    for (size_t k = 0; k < table_.kinds.size(); ++k) {
      const FindingKind& kind = table_.kinds[k];
      CTMLLM_CHECK(!kind.name.empty(), "finding table: kind ", k, " has no name");
      for (size_t m = 0; m < k; ++m)
        CTMLLM_CHECK(table_.kinds[m].name != kind.name, "finding table: kind '", kind.name, "' appears twice");
      CTMLLM_CHECK(!kind.patterns.empty(), "finding table: kind '", kind.name, "' has no pattern");
      Kind compiled;
      for (const auto& pattern : kind.patterns) {
        CTMLLM_CHECK(!pattern.empty(), "finding table: kind '", kind.name, "' has an empty pattern");
        std::vector<Term> terms;
        for (const std::string& term : pattern) {
          Term alternatives;
          std::string_view rest = term;
          while (true) {
            const size_t bar = rest.find('|');
            alternatives.push_back(phrase(rest.substr(0, bar), "term of '" + kind.name + "'"));
            if (bar == std::string_view::npos) break;
            rest.remove_prefix(bar + 1);
          }
          terms.push_back(std::move(alternatives));
        }
        compiled.patterns.push_back(std::move(terms));
      }
      for (const std::string& c : kind.negation_cues) compiled.cues.push_back(phrase(c, "negation cue of '" + kind.name + "'"));
      kinds_.push_back(std::move(compiled));
    }
  }

  const FindingTable& table() const { return table_; }

  // One flag per kind of the table, in table order: true when the report states it.
  std::vector<bool> label(std::string_view report) const {
    std::vector<bool> positive(kinds_.size(), false);
    for (std::string_view sentence : split_sentences(report)) {
      const std::vector<std::string> words = detail::finding_words(sentence, false, true);
      std::vector<std::string> clause;
      for (size_t i = 0; i < words.size();) {
        const size_t brk = words[i].empty() ? 1 : break_length(words, i);  // empty word: a ';'
        if (brk == 0) {
          clause.push_back(words[i++]);
          continue;
        }
        label_clause(clause, positive);
        clause.clear();
        i += brk;
      }
      label_clause(clause, positive);
    }
    return positive;
  }

  // The names of the kinds the report states, in table order.
  std::vector<std::string> positive_kinds(std::string_view report) const {
    const std::vector<bool> flags = label(report);
    std::vector<std::string> names;
    for (size_t k = 0; k < flags.size(); ++k)
      if (flags[k]) names.push_back(table_.kinds[k].name);
    return names;
  }

 private:
  using Phrase = std::vector<std::string>;  // words; a trailing '*' makes a word a prefix
  using Term = std::vector<Phrase>;         // alternatives
  struct Kind {
    std::vector<std::vector<Term>> patterns;
    std::vector<Phrase> cues;
  };

  static Phrase phrase(std::string_view text, const std::string& what) {
    Phrase p = detail::finding_words(text, true, false);
    CTMLLM_CHECK(!p.empty(), "finding table: empty ", what, " ('", std::string(text), "')");
    for (const std::string& w : p)
      CTMLLM_CHECK(w != "*" && w.find('*') >= w.size() - 1, "finding table: bad wildcard in ", what, " ('",
                   std::string(text), "'): '*' may only end a word");
    return p;
  }

  // Does `p` occur in `words` starting at `at`?
  static bool match_at(const std::vector<std::string>& words, size_t at, const Phrase& p) {
    if (at + p.size() > words.size()) return false;
    for (size_t k = 0; k < p.size(); ++k) {
      const std::string& w = p[k];
      const bool ok = w.back() == '*' ? words[at + k].compare(0, w.size() - 1, w, 0, w.size() - 1) == 0
                                      : words[at + k] == w;
      if (!ok) return false;
    }
    return true;
  }

  static bool occurs(const std::vector<std::string>& words, const Phrase& p) {
    for (size_t at = 0; at < words.size(); ++at)
      if (match_at(words, at, p)) return true;
    return false;
  }

  // Words taken by a scope break that starts at `at` (0: none).
  size_t break_length(const std::vector<std::string>& words, size_t at) const {
    for (const Phrase& b : breaks_)
      if (match_at(words, at, b)) return b.size();
    return 0;
  }

  void label_clause(const std::vector<std::string>& clause, std::vector<bool>& positive) const {
    if (clause.empty()) return;
    bool negated = false;
    for (const Phrase& c : cues_) negated = negated || occurs(clause, c);
    for (size_t k = 0; k < kinds_.size(); ++k) {
      if (positive[k]) continue;
      bool kind_negated = negated;
      for (const Phrase& c : kinds_[k].cues) kind_negated = kind_negated || occurs(clause, c);
      if (kind_negated) continue;
      for (const auto& pattern : kinds_[k].patterns) {
        bool all = true;
        for (const Term& term : pattern) {
          bool any = false;
          for (const Phrase& alternative : term) any = any || occurs(clause, alternative);
          all = all && any;
        }
        if (all) {
          positive[k] = true;
          break;
        }
      }
    }
  }

  FindingTable table_;
  std::vector<Phrase> cues_, breaks_;
  std::vector<Kind> kinds_;
};

// Counts and scores of one finding kind (or of all kinds pooled, for the micro average). Ratios
// whose denominator is 0 are 0, as scikit-learn's zero_division=0.
struct FindingScore {
  std::string kind;
  int64_t true_positives = 0, false_positives = 0, false_negatives = 0;
  double precision = 0, recall = 0, f1 = 0;
  int64_t support() const { return true_positives + false_negatives; }  // reports that state it
};

struct FindingScores {
  std::vector<FindingScore> per_kind;  // table order
  FindingScore micro;                  // counts pooled over all kinds
};

namespace detail {
inline void finish_score(FindingScore& s) {
  const auto ratio = [](int64_t a, int64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); };
  s.precision = ratio(s.true_positives, s.true_positives + s.false_positives);
  s.recall = ratio(s.true_positives, s.true_positives + s.false_negatives);
  s.f1 = s.precision + s.recall == 0 ? 0.0 : 2 * s.precision * s.recall / (s.precision + s.recall);
}
}  // namespace detail

// Scores from label flags: predicted[i][k] / reference[i][k] say whether report i states kind k.
inline FindingScores score_finding_labels(const std::vector<std::string>& kinds,
                                          const std::vector<std::vector<bool>>& predicted,
                                          const std::vector<std::vector<bool>>& reference) {
  CTMLLM_CHECK(predicted.size() == reference.size(), "finding scores: ", predicted.size(), " predictions but ",
               reference.size(), " references");
  FindingScores out;
  out.micro.kind = "micro";
  for (const std::string& k : kinds) out.per_kind.push_back(FindingScore{k});
  for (size_t i = 0; i < predicted.size(); ++i) {
    CTMLLM_CHECK(predicted[i].size() == kinds.size() && reference[i].size() == kinds.size(), "finding scores: pair ", i,
                 " has ", predicted[i].size(), " / ", reference[i].size(), " flags for ", kinds.size(), " kinds");
    for (size_t k = 0; k < kinds.size(); ++k) {
      FindingScore& s = out.per_kind[k];
      s.true_positives += predicted[i][k] && reference[i][k];
      s.false_positives += predicted[i][k] && !reference[i][k];
      s.false_negatives += !predicted[i][k] && reference[i][k];
    }
  }
  for (FindingScore& s : out.per_kind) {
    detail::finish_score(s);
    out.micro.true_positives += s.true_positives;
    out.micro.false_positives += s.false_positives;
    out.micro.false_negatives += s.false_negatives;
  }
  detail::finish_score(out.micro);
  return out;
}

// Labels each (prediction, reference) pair of report texts and scores them.
inline FindingScores score_findings(const FindingLabeller& labeller, const std::vector<std::string>& predictions,
                                    const std::vector<std::string>& references) {
  CTMLLM_CHECK(predictions.size() == references.size(), "finding scores: ", predictions.size(), " predictions but ",
               references.size(), " references");
  std::vector<std::vector<bool>> p, r;
  for (size_t i = 0; i < predictions.size(); ++i) {
    p.push_back(labeller.label(predictions[i]));
    r.push_back(labeller.label(references[i]));
  }
  std::vector<std::string> names;
  for (const FindingKind& k : labeller.table().kinds) names.push_back(k.name);
  return score_finding_labels(names, p, r);
}

}  // namespace ctmllm::eval
