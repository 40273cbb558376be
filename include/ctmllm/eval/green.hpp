#pragma once
// GREEN (Ostmeier et al. 2024; Stanford-AIMI/GREEN): an LLM judge compares a candidate report with
// a reference report and lists clinically significant and insignificant errors in six categories
// plus the matched findings; GREEN = matched / (matched + significant errors).
//
// What follows the reference code (green_score/green.py and utils.py of Stanford-AIMI/GREEN):
// - green_prompt() is make_prompt() verbatim; GreenEvaluator first cuts each report to its first
//   200 words (truncate_to_max_len). The judge (GREEN-RadLlama2-7b, greedy) wraps the prompt in its
//   own chat template: that is the judge callback's business.
// - parse_green_response() reads a section as parse_error_counts() does: the text after
//   "[<section>]:" and its white space, up to the first blank line or the end; a section that
//   starts with "No" counts nothing; the matched count is the integer that opens the section
//   when a '.' follows it; an error line starts at "(a) ".."(f) " (or "(1) ".."(6) " when no
//   letter appears) and its count is the first integer after ": " that a '.' follows.
// - green_score(): 0 when nothing matched (whatever the errors), else matched / (matched +
//   significant errors).
// - A missing section counts 0 (GREEN's return_0_if_no_green_score=True, its default); with
//   missing_section_is_zero = false it is an Error naming the section instead.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/eval/utf8.hpp"

namespace ctmllm::eval {

inline constexpr std::array<std::string_view, 6> kGreenErrorCategories = {
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
};

// GREEN's judge prompt for one (reference, candidate) pair, exactly as its make_prompt builds it.
inline std::string green_prompt(std::string_view reference, std::string_view candidate) {
  std::string p =
      "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology "
      "report composed by expert radiologists.\n"
      R"(
    Process Overview: You will be presented with:

    1. The criteria for making a judgment.
    2. The reference radiology report.
    3. The candidate radiology report.
    4. The desired format for your assessment.

    1. Criteria for Judgment:

    For each candidate report, determine:

    The count of clinically significant errors.
    The count of clinically insignificant errors.

    Errors can fall into one of these categories:

    a) False report of a finding in the candidate.
    b) Missing a finding present in the reference.
    c) Misidentification of a finding's anatomic location/position.
    d) Misassessment of the severity of a finding.
    e) Mentioning a comparison that isn't in the reference.
    f) Omitting a comparison detailing a change from a prior study.
    Note: Concentrate on the clinical findings rather than the report's writing style. Evaluate only the findings that appear in both reports.

    2. Reference Report:
    )";
  p += reference;
  p += R"(

    3. Candidate Report:
    )";
  p += candidate;
  p += R"(

    4. Reporting Your Assessment:

    Follow this specific format for your output, even if no errors are found:
    ```
    [Explanation]:
    <Explanation>

    [Clinically Significant Errors]:
    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>
    ....
    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>

    [Clinically Insignificant Errors]:
    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>
    ....
    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>

    [Matched Findings]:
    <The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>
    ```
)";
  return p;
}

// The first `max_words` white-space separated words joined by single spaces (GREEN's
// truncate_to_max_len).
inline std::string truncate_words(std::string_view text, size_t max_words) {
  std::string out;
  size_t n = 0;
  for (std::string_view w : split_whitespace(text, "green")) {
    if (n++ == max_words) break;
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

// Drops an echoed prompt (everything up to the last "<|assistant|>") and the "</s>" and "<unk>"
// pieces a decoder may leave, as GREEN's process_responses does.
inline std::string clean_green_response(std::string_view response) {
  const size_t at = response.rfind("<|assistant|>");
  if (at == std::string_view::npos) return std::string(response);
  std::string s(response.substr(at + std::string_view("<|assistant|>").size()));
  for (std::string_view junk : {std::string_view("</s>"), std::string_view("<unk>")})
    for (size_t p = s.find(junk); p != std::string::npos; p = s.find(junk, p)) s.erase(p, junk.size());
  return s;
}

struct GreenCounts {
  std::array<int64_t, 6> significant{};    // per category (a)..(f)
  std::array<int64_t, 6> insignificant{};  // per category (a)..(f)
  int64_t matched = 0;
  bool has_significant = false, has_insignificant = false, has_matched = false;  // section present

  int64_t significant_total() const {
    int64_t s = 0;
    for (int64_t c : significant) s += c;
    return s;
  }
};

// GREEN of one judged pair.
inline double green_score(const GreenCounts& c) {
  if (c.matched == 0) return 0.0;
  return static_cast<double>(c.matched) / static_cast<double>(c.matched + c.significant_total());
}

namespace detail {

inline bool green_digit(char c) { return c >= '0' && c <= '9'; }

inline int64_t green_parse_count(std::string_view digits) {
  CTMLLM_CHECK(digits.size() <= 18, "green: count '", std::string(digits), "' in the judge's answer is too large");
  int64_t v = 0;
  for (char c : digits) v = v * 10 + (c - '0');
  return v;
}

// The text of section `name`: after "[name]:" and the white space that follows, up to the first
// blank line (a newline, optional white space, a newline) or the end. nullopt when absent.
inline std::optional<std::string_view> green_section(std::string_view text, std::string_view name) {
  const std::string header = "[" + std::string(name) + "]:";
  const size_t at = text.find(header);
  if (at == std::string_view::npos) return std::nullopt;
  size_t b = at + header.size();
  while (b < text.size()) {
    size_t next = b;
    if (!is_space(decode_next(text, next, "green"))) break;
    b = next;
  }
  for (size_t i = b; i < text.size(); ++i) {
    if (text[i] != '\n') continue;
    for (size_t k = i + 1; k < text.size();) {
      const char32_t c = decode_next(text, k, "green");
      if (c == '\n') return text.substr(b, i - b);
      if (!is_space(c)) break;
    }
  }
  return text.substr(b);
}

// The first integer in `s` that is preceded by ": " and followed by '.'.
inline std::optional<int64_t> green_count_after_colon(std::string_view s) {
  for (size_t i = 2; i < s.size(); ++i) {
    if (s[i - 2] != ':' || s[i - 1] != ' ' || !green_digit(s[i])) continue;
    size_t j = i;
    while (j < s.size() && green_digit(s[j])) ++j;
    if (j < s.size() && s[j] == '.') return green_parse_count(s.substr(i, j - i));
  }
  return std::nullopt;
}

// Error counts of a significant / insignificant section (GREEN's sub-category matching).
inline std::array<int64_t, 6> green_error_counts(std::string_view section) {
  // Every line contributes the text from its first "(x) " to its end (re.findall of "\(x\) .*").
  const auto lines_from = [&](char first, char last) {
    std::vector<std::string_view> found;
    size_t line = 0;
    while (line <= section.size()) {
      size_t end = section.find('\n', line);
      if (end == std::string_view::npos) end = section.size();
      for (size_t i = line; i + 4 <= end; ++i) {
        if (section[i] == '(' && section[i + 1] >= first && section[i + 1] <= last && section[i + 2] == ')' &&
            section[i + 3] == ' ') {
          found.push_back(section.substr(i, end - i));
          break;
        }
      }
      line = end + 1;
    }
    std::sort(found.begin(), found.end());
    return found;
  };
  char first = 'a', last = 'f';
  std::vector<std::string_view> matches = lines_from(first, last);
  if (matches.empty()) first = '1', last = '6', matches = lines_from(first, last);
  std::array<int64_t, 6> counts{};
  for (int k = 0; k < 6; ++k) {
    const char prefix[5] = {'(', static_cast<char>(first + k), ')', ' ', '\0'};
    // The last matching line (in sorted order) that has a count wins, as in the reference loop.
    for (std::string_view m : matches)
      if (m.starts_with(prefix))
        if (const auto n = green_count_after_colon(m)) counts[k] = *n;
  }
  return counts;
}

}  // namespace detail

struct GreenParseOptions {
  bool missing_section_is_zero = true;  // GREEN's default; false: a missing section is an Error
};

// Reads the judge's answer (after clean_green_response).
inline GreenCounts parse_green_response(std::string_view response, const GreenParseOptions& opt = {}) {
  GreenCounts c;
  const auto section = [&](std::string_view name, bool& present) {
    const auto s = detail::green_section(response, name);
    present = s.has_value();
    CTMLLM_CHECK(present || opt.missing_section_is_zero, "green: the judge's answer has no [", name, "] section");
    return s;
  };
  if (const auto s = section("Clinically Significant Errors", c.has_significant); s && !s->starts_with("No"))
    c.significant = detail::green_error_counts(*s);
  if (const auto s = section("Clinically Insignificant Errors", c.has_insignificant); s && !s->starts_with("No"))
    c.insignificant = detail::green_error_counts(*s);
  if (const auto s = section("Matched Findings", c.has_matched); s && !s->starts_with("No")) {
    size_t j = 0;
    while (j < s->size() && detail::green_digit((*s)[j])) ++j;
    if (j > 0 && j < s->size() && (*s)[j] == '.') c.matched = detail::green_parse_count(s->substr(0, j));
  }
  return c;
}

struct GreenEvaluatorOptions {
  size_t max_words = 200;             // GREEN cuts both reports to this many words
  bool skip_empty_references = true;  // the paper scores only cases with a reference
  GreenParseOptions parse = {};
};

// Runs a judge over (reference, candidate) pairs. The judge is any callable from prompt to answer
// text (a loaded GREEN model with greedy decoding, a remote service, a canned test double).
class GreenEvaluator {
 public:
  using Judge = std::function<std::string(const std::string& prompt)>;

  using Options = GreenEvaluatorOptions;

  struct Result {
    std::string prompt, response;  // response after clean_green_response
    GreenCounts counts;
    double score = 0;
  };

  struct Summary {
    std::vector<std::optional<Result>> results;  // per pair; nullopt where skipped
    size_t evaluated = 0;
    double mean = 0;                        // over evaluated pairs (0 when none)
    std::array<double, 6> category_accuracy{};  // share of evaluated pairs without significant errors of (a)..(f)
  };

  explicit GreenEvaluator(Judge judge, Options options = {}) : judge_(std::move(judge)), options_(options) {
    CTMLLM_CHECK(static_cast<bool>(judge_), "GreenEvaluator: the judge callback is empty");
  }

  Result evaluate(std::string_view reference, std::string_view candidate) const {
    Result r;
    r.prompt = green_prompt(truncate_words(reference, options_.max_words), truncate_words(candidate, options_.max_words));
    r.response = clean_green_response(judge_(r.prompt));
    r.counts = parse_green_response(r.response, options_.parse);
    r.score = green_score(r.counts);
    return r;
  }

  Summary evaluate(const std::vector<std::string>& references, const std::vector<std::string>& candidates) const {
    CTMLLM_CHECK(references.size() == candidates.size(), "GreenEvaluator: ", references.size(), " references but ",
                 candidates.size(), " candidates");
    Summary s;
    std::array<size_t, 6> clean{};
    for (size_t i = 0; i < references.size(); ++i) {
      if (options_.skip_empty_references && split_whitespace(references[i], "green").empty()) {
        s.results.emplace_back();
        continue;
      }
      Result r = evaluate(references[i], candidates[i]);
      s.mean += r.score;
      for (size_t k = 0; k < 6; ++k) clean[k] += r.counts.significant[k] == 0;
      ++s.evaluated;
      s.results.emplace_back(std::move(r));
    }
    if (s.evaluated > 0) {
      s.mean /= static_cast<double>(s.evaluated);
      for (size_t k = 0; k < 6; ++k) s.category_accuracy[k] = static_cast<double>(clean[k]) / static_cast<double>(s.evaluated);
    }
    return s;
  }

 private:
  Judge judge_;
  Options options_;
};

}  // namespace ctmllm::eval
