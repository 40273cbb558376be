// Focused inference with a fake model: yes/no parsing, which sentences are prepended and in what
// order, the paper's defaults and the JSON config, the conversation a question is asked in.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/augment/focused_inference.hpp"
#include "support/catch.hpp"

using namespace ctmllm;
using namespace ctmllm::augment;

TEST_CASE("focused inference: yes/no parsing", "[augment][focused]") {
  CHECK(parse_yes_no("Yes") == YesNo::Yes);
  CHECK(parse_yes_no(" yes.") == YesNo::Yes);
  CHECK(parse_yes_no("YES, there is") == YesNo::Yes);
  CHECK(parse_yes_no("assistant\n\nYes") == YesNo::Yes);
  CHECK(parse_yes_no("No.") == YesNo::No);
  CHECK(parse_yes_no("no, yes") == YesNo::No);  // the first answer word decides
  CHECK(parse_yes_no("eyes") == YesNo::Unclear);  // not the word "yes"
  CHECK(parse_yes_no("") == YesNo::Unclear);
  CHECK(parse_yes_no("maybe") == YesNo::Unclear);
}

TEST_CASE("focused inference: prepends the sentences of 'yes' answers", "[augment][focused]") {
  const FocusedInferenceConfig config = FocusedInferenceConfig::defaults();
  CHECK(config.temperature == 0.5);
  CHECK(config.top_p == 0.9);
  CHECK(config.max_new_tokens == 5);
  const auto& chest = config.region("chest").questions;
  REQUIRE(chest.size() == 2);

  std::vector<std::string> asked;
  const auto model = [&](std::vector<std::string> answers) {
    return [&asked, answers, i = size_t(0)](const std::string& q) mutable {
      asked.push_back(q);
      return answers[i++];
    };
  };

  SECTION("both yes: both sentences, in question order, before the report") {
    const FocusedResult r = focused_inference("Heart normal.", "chest", config, model({"Yes.", "yes"}));
    CHECK(r.report == chest[0].sentence + " " + chest[1].sentence + " Heart normal.");
    CHECK(asked == std::vector<std::string>{chest[0].question, chest[1].question});
    CHECK(r.answers[0].added);
    CHECK(r.answers[1].parsed == YesNo::Yes);
  }
  SECTION("no and unclear answers change nothing") {
    const std::string report = "  Heart normal.  ";
    CHECK(focused_inference(report, "chest", config, model({"No", "I am not sure"})).report == report);
  }
  SECTION("a sentence the report already holds is not repeated") {
    const std::string report = "heart normal. " + chest[0].sentence;
    const FocusedResult r = focused_inference(report, "chest", config, model({"yes", "no"}));
    CHECK(r.report == report);
    CHECK_FALSE(r.answers[0].added);
  }
  SECTION("an empty report becomes the sentences") {
    CHECK(focused_inference("", "chest", config, model({"no", "yes"})).report == chest[1].sentence);
  }
  SECTION("regions without questions ask nothing; unknown regions are an Error") {
    CHECK(focused_inference("Liver normal.", "abdomen", config, model({})).report == "Liver normal.");
    CHECK(asked.empty());
    CHECK_THROWS_AS(focused_inference("x", "head", config, model({})), Error);
    CHECK_THROWS_AS(focused_inference("x", "chest", config, nullptr), Error);
  }
}

TEST_CASE("focused inference: JSON config", "[augment][focused]") {
  using nlohmann::json;
  const FocusedInferenceConfig d = FocusedInferenceConfig::defaults();
  CHECK(FocusedInferenceConfig::from_json(d.to_json()).to_json() == d.to_json());

  const FocusedInferenceConfig c = FocusedInferenceConfig::from_json(json::parse(R"({
    "temperature": 0.7, "max_new_tokens": 3,
    "regions": {"pelvis": {"system_prompt": "Answer yes or no.",
                           "questions": [{"question": "Is the bladder wall thick?", "sentence": "The bladder wall is thickened"}]}}})"));
  CHECK(c.temperature == 0.7);
  CHECK(c.top_p == 0.9);
  CHECK(c.max_new_tokens == 3);
  const FocusedResult r = focused_inference("Prostate normal.", "pelvis", c, [](const std::string&) { return "Yes"; });
  CHECK(r.report == "The bladder wall is thickened. Prostate normal.");

  const auto bad = [](const char* text) { return FocusedInferenceConfig::from_json(json::parse(text)); };
  CHECK_THROWS_AS(bad(R"({"temp": 1})"), Error);
  CHECK_THROWS_AS(bad(R"({"max_new_tokens": 0})"), Error);
  CHECK_THROWS_AS(bad(R"({"top_p": "high"})"), Error);
  CHECK_THROWS_AS(bad(R"({"regions": {"chest": {"questions": [{"question": "q"}]}}})"), Error);
  CHECK_THROWS_AS(bad(R"({"regions": {"chest": {"questions": [{"question": "q", "sentence": " "}]}}})"), Error);
  CHECK_THROWS_AS(bad(R"({"regions": {"chest": {"prompt": "x"}}})"), Error);
  CHECK_THROWS_AS(FocusedInferenceConfig::load("/nonexistent/fi.json"), Error);
}

TEST_CASE("focused inference: the conversation a question is asked in", "[augment][focused]") {
  const FocusedInferenceConfig config = FocusedInferenceConfig::defaults();
  const auto m = focused_messages(config.region("chest"), "Is there a cyst?");
  REQUIRE(m.size() == 2);
  CHECK(m[0].role == "system");
  CHECK(m[0].content == config.region("chest").system_prompt);
  CHECK(m[1].role == "user");
  CHECK(m[1].content == "Is there a cyst?");
  const auto bare = focused_messages(FocusedRegion{}, "Is there a cyst?");  // no system prompt: the question alone
  REQUIRE(bare.size() == 1);
  CHECK(bare[0].role == "user");
}
