// GREEN: the judge prompt (byte for byte GREEN's make_prompt), the parser on canned judge answers
// in the formats GREEN's parse_error_counts accepts (expected counts checked with that code), the
// score convention and the evaluator with a fake judge.
#include <string>
#include <vector>

#include "ctmllm/eval/green.hpp"
#include "support/catch.hpp"

using namespace ctmllm;
using namespace ctmllm::eval;

namespace {

// green_score/utils.py make_prompt("The liver is normal.", "Liver: no lesion.") of Stanford-AIMI/GREEN.
const char* const kExpectedPrompt =
    "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology report "
    "composed by expert radiologists.\n\n    Process Overview: You will be presented with:\n\n    1. The criteria for "
    "making a judgment.\n    2. The reference radiology report.\n    3. The candidate radiology report.\n    4. The "
    "desired format for your assessment.\n\n    1. Criteria for Judgment:\n\n    For each candidate report, "
    "determine:\n\n    The count of clinically significant errors.\n    The count of clinically insignificant "
    "errors.\n\n    Errors can fall into one of these categories:\n\n    a) False report of a finding in the "
    "candidate.\n    b) Missing a finding present in the reference.\n    c) Misidentification of a finding's anatomic "
    "location/position.\n    d) Misassessment of the severity of a finding.\n    e) Mentioning a comparison that isn't "
    "in the reference.\n    f) Omitting a comparison detailing a change from a prior study.\n    Note: Concentrate on "
    "the clinical findings rather than the report's writing style. Evaluate only the findings that appear in both "
    "reports.\n\n    2. Reference Report:\n    The liver is normal.\n\n    3. Candidate Report:\n    Liver: no "
    "lesion.\n\n    4. Reporting Your Assessment:\n\n    Follow this specific format for your output, even if no "
    "errors are found:\n    ```\n    [Explanation]:\n    <Explanation>\n\n    [Clinically Significant Errors]:\n    "
    "(a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: "
    "<The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n    [Clinically Insignificant Errors]:\n    (a) "
    "<Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: <The "
    "number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n    [Matched Findings]:\n    <The number of matched "
    "findings>. <Finding 1>; <Finding 2>; ...; <Finding n>\n    ```\n";

const char* const kStandard = R"([Explanation]:
The candidate misses the effusion and adds atelectasis.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Right pleural effusion
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 2. Nodule size; effusion size
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 1. Mild atelectasis
(b) Missing a finding present in the reference: 0.

[Matched Findings]:
3. Normal liver; normal spleen; left kidney cyst
)";

}  // namespace

TEST_CASE("green: the judge prompt is GREEN's make_prompt", "[eval][green]") {
  CHECK(green_prompt("The liver is normal.", "Liver: no lesion.") == kExpectedPrompt);
  CHECK(truncate_words("  a\tb\n c  d ", 3) == "a b c");
  CHECK(truncate_words("a b", 200) == "a b");
  CHECK(truncate_words("", 5).empty());
}

TEST_CASE("green: parser on canned judge answers", "[eval][green]") {
  SECTION("the documented format") {
    const GreenCounts c = parse_green_response(kStandard);
    CHECK(c.significant == std::array<int64_t, 6>{0, 1, 0, 2, 0, 0});
    CHECK(c.insignificant == std::array<int64_t, 6>{1, 0, 0, 0, 0, 0});
    CHECK(c.matched == 3);
    CHECK(c.has_significant);
    CHECK(green_score(c) == Catch::Approx(3.0 / 6.0));
  }
  SECTION("numbered categories, any order, indented, multi-digit counts") {
    const GreenCounts c = parse_green_response(
        "[Clinically Significant Errors]:\n  (4) Misassessment of the severity: 12. Size\n  (2) Missing a finding: 1.\n"
        "  (9) Not a category: 5.\n\n[Matched Findings]:\n10. a; b\n");
    CHECK(c.significant == std::array<int64_t, 6>{0, 1, 0, 12, 0, 0});
    CHECK(c.matched == 10);
    CHECK(green_score(c) == Catch::Approx(10.0 / 23.0));
  }
  SECTION("letters win over numbers; only the first count after ': ' with a '.' counts") {
    const GreenCounts c = parse_green_response(
        "[Clinically Significant Errors]: (a) False report: 2 things: 3. x (b) inline: 7.\n(1) Numbered: 4.\n"
        "(c) Location: none.\n\n[Matched Findings]: 1.");
    CHECK(c.significant == std::array<int64_t, 6>{3, 0, 0, 0, 0, 0});  // "(b)" sits inside the "(a)" line
    CHECK(c.matched == 1);
  }
  SECTION("sections that start with 'No' count nothing") {
    const GreenCounts c = parse_green_response(
        "[Clinically Significant Errors]:\nNo clinically significant errors.\n(a) x: 4.\n\n"
        "[Clinically Insignificant Errors]: None.\n\n[Matched Findings]:\n\n\n2. Normal heart; normal lungs");
    CHECK(c.significant_total() == 0);
    CHECK(c.matched == 2);  // the white space after the header is skipped, blank lines included
    CHECK(green_score(c) == 1.0);
  }
  SECTION("a blank line ends a section") {
    const GreenCounts c = parse_green_response(
        "[Clinically Significant Errors]:\n(a) False report: 1.\n \t\n(b) Missing: 5.\n[Matched Findings]:\n4.");
    CHECK(c.significant == std::array<int64_t, 6>{1, 0, 0, 0, 0, 0});
    CHECK(c.matched == 4);
  }
  SECTION("nothing matched scores 0, errors or not") {
    CHECK(green_score(parse_green_response("[Clinically Significant Errors]:\n(a) x: 0.\n\n[Matched Findings]:\n0.")) == 0.0);
    CHECK(green_score(parse_green_response("[Clinically Significant Errors]:\n(a) x: 2.\n\n[Matched Findings]:\n0.")) == 0.0);
    CHECK(parse_green_response("[Matched Findings]:\nTwo. a; b").matched == 0);  // no leading integer
    CHECK(parse_green_response("[Matched Findings]:\n2 findings").matched == 0);   // no '.' after it
  }
  SECTION("missing sections: 0 by default (GREEN's default), an Error when strict") {
    const GreenCounts c = parse_green_response("I cannot judge these reports.");
    CHECK_FALSE(c.has_significant);
    CHECK_FALSE(c.has_matched);
    CHECK(green_score(c) == 0.0);
    CHECK_THROWS_AS(parse_green_response("[Matched Findings]:\n2.", {.missing_section_is_zero = false}), Error);
    CHECK_NOTHROW(parse_green_response(kStandard, {.missing_section_is_zero = false}));
    CHECK_THROWS_AS(parse_green_response("[Matched Findings]:\n1234567890123456789012."), Error);
  }
  SECTION("an echoed prompt and end tokens are dropped") {
    const std::string echoed = std::string("<|user|>\n") + kExpectedPrompt + "</s>\n<|assistant|>\n" + kStandard + "</s>";
    const std::string cleaned = clean_green_response(echoed);
    CHECK(cleaned == std::string("\n") + kStandard);
    CHECK(parse_green_response(cleaned).matched == 3);
    CHECK(clean_green_response("plain </s> text") == "plain </s> text");  // untouched without the marker
  }
}

TEST_CASE("green: evaluator with a fake judge", "[eval][green]") {
  std::vector<std::string> prompts;
  const auto judge = [&](const std::string& prompt) -> std::string {
    prompts.push_back(prompt);
    if (prompt.find("effusion") != std::string::npos) return kStandard;
    return "[Clinically Significant Errors]:\n(a) x: 0.\n\n[Matched Findings]:\n2. a; b";
  };
  const GreenEvaluator evaluator(judge);
  const auto s = evaluator.evaluate({"Right pleural effusion. Normal liver.", "", "Normal heart."},
                                    {"Normal liver.", "Anything.", "Normal heart. Normal lungs."});
  REQUIRE(s.results.size() == 3);
  CHECK(s.evaluated == 2);
  CHECK_FALSE(s.results[1].has_value());  // empty reference: skipped, the judge is not called
  CHECK(prompts.size() == 2);
  CHECK(s.results[0]->score == Catch::Approx(0.5));
  CHECK(s.results[2]->score == 1.0);
  CHECK(s.mean == Catch::Approx(0.75));
  CHECK(s.category_accuracy[0] == 1.0);
  CHECK(s.category_accuracy[1] == 0.5);

  // Reports are cut to max_words before they enter the prompt.
  const GreenEvaluator short_evaluator(judge, {.max_words = 2});
  CHECK(short_evaluator.evaluate("one two three", "four five six").prompt == green_prompt("one two", "four five"));

  CHECK_THROWS_AS(GreenEvaluator(nullptr), Error);
  CHECK_THROWS_AS(evaluator.evaluate(std::vector<std::string>{"a"}, std::vector<std::string>{}), Error);
}
