// Visual questions: read inline (AMOS-MM's "labels": {"qa": ...}) and from a per-case file, how a
// multiple-choice question is asked and answered, bad entries refused with an Error naming the
// file, the synthetic world's questions against the finding lists, and its focused-inference config.
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "ctmllm/data/amos.hpp"
#include "ctmllm/data/labeller_table.hpp"
#include "ctmllm/data/phantom.hpp"
#include "ctmllm/data/question_writer.hpp"
#include "ctmllm/io/nifti.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"

using namespace ctmllm;
using testing::message_of;
using namespace ctmllm::data;
namespace fs = std::filesystem;

namespace {

std::string scratch(const std::string& name) {
  const std::string dir = testing::scratch_dir("questions_" + name);
  fs::create_directories(dir + "/imagesTr");
  return dir;
}

// A dataset folder with one tiny CT and a report file that cases can share.
std::string dataset_folder(const std::string& name) {
  const std::string dir = scratch(name);
  io::write_nifti(dir + "/imagesTr/ct.nii.gz", Tensor<float, Cpu>::full({2, 4, 4}, -100.0f), {2.0, 2.0, 5.0});
  std::ofstream(dir + "/report.json") << R"({"findings": {"chest": "Both lungs are clear."}})";
  return dir;
}

const char* kMultipleChoice = R"({"question": "Which organ is enlarged?", "type": "organ",
    "options": {"A": "Liver", "B": "Spleen", "C": "Kidney", "D": "Bladder"}, "answer": "B"})";

Finding finding_of(FindingKind k) {
  Finding f;
  f.kind = k;
  return f;
}

}  // namespace

TEST_CASE("questions are read inline as AMOS-MM has them and from a per-case file", "[data_world][questions]") {
  const std::string dir = dataset_folder("layouts");
  std::ofstream(dir + "/q.json") << R"({"id": "b", "qa": [
      {"question": "Is there a pleural effusion?", "answer": "Yes.", "region": "chest"},
      {"question": "Is the spleen enlarged?", "answer": "No.", "region": null}]})";
  std::ofstream(dir + "/dataset.json") << R"({"training": [
      {"id": "a", "image": "imagesTr/ct.nii.gz",
       "labels": {"report": {"findings": {"chest": "Clear."}}, "qa": [)" +
                                              std::string(kMultipleChoice) + R"(]}},
      {"id": "b", "image": "imagesTr/ct.nii.gz", "report": "report.json", "question_list": "q.json"},
      {"id": "c", "image": "imagesTr/ct.nii.gz", "report": "report.json"}]})";
  const AmosDataset d = read_amos_dataset(dir + "/dataset.json");
  REQUIRE(d.training.size() == 3);

  const AmosCase& a = d.training[0];
  REQUIRE(a.questions.size() == 1);
  const Question& mc = a.questions[0];
  CHECK(a.question_list.empty());
  CHECK(mc.question == "Which organ is enlarged?");
  CHECK(mc.answer == "B");
  CHECK(!mc.region);
  CHECK(mc.options.size() == 4);
  CHECK(mc.prompt() == "Which organ is enlarged? Choices: A. Liver B. Spleen C. Kidney D. Bladder");
  CHECK(mc.reply() == "B. Spleen");

  const AmosCase& b = d.training[1];
  CHECK(b.question_list == (fs::path(dir) / "q.json").lexically_normal().string());
  REQUIRE(b.questions.size() == 2);
  CHECK(b.questions[0].region == Region::chest);
  CHECK(b.questions[0].prompt() == "Is there a pleural effusion?");
  CHECK(b.questions[0].reply() == "Yes.");
  CHECK(!b.questions[1].region);
  CHECK(b.questions[1].options.empty());

  CHECK(d.training[2].questions.empty());  // listing no questions is valid

  // A written list reads back as written.
  write_question_list(dir + "/again.json", "b", b.questions);
  const std::vector<Question> again = read_question_list(dir + "/again.json");
  REQUIRE(again.size() == 2);
  for (size_t i = 0; i < again.size(); ++i) CHECK(question_to_json(again[i]) == question_to_json(b.questions[i]));
  fs::remove_all(dir);
}

TEST_CASE("bad question entries raise an Error naming the file", "[data_world][questions]") {
  const std::string dir = dataset_folder("errors");
  const std::string list = dir + "/q.json", json = dir + "/dataset.json";
  std::ofstream(json) << R"({"training": [{"id": "b", "image": "imagesTr/ct.nii.gz", "report": "report.json",
                                           "question_list": "q.json"}]})";
  const auto with_entry = [&](const std::string& entry) {
    std::ofstream(list) << R"({"qa": [)" + entry + "]}";
    return message_of([&] { read_amos_dataset(json); });
  };
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"question": "Is there a cyst?"})", "\"answer\" must be a non-empty string"},
      {R"({"question": " ", "answer": "No."})", "\"question\" must be a non-empty string"},
      {R"({"question": "Cyst?", "answer": 1})", "\"answer\" must be a non-empty string"},
      {R"({"question": "Cyst?", "answer": "No.", "region": "head"})", "unknown report region 'head'"},
      {R"({"question": "Cyst?", "answer": "E", "options": {"A": "x", "B": "y"}})", "not one of the options' letters"},
      {R"({"question": "Cyst?", "answer": "A", "options": {"A": "x", "b": "y"}})", "option 'b' is not a capital letter"},
      {R"({"question": "Cyst?", "answer": "A", "options": {"A": "x"}})", "at least two choices"},
      {R"({"question": "Cyst?", "answer": "A", "options": {"A": "x", "B": ""}})", "option B must be a non-empty string"},
      {R"("Is there a cyst?")", "must be an object"},
  };
  for (const auto& [entry, why] : bad) {
    const std::string msg = with_entry(entry);
    INFO(entry << " -> " << msg);
    CHECK(msg.find(list) != std::string::npos);
    CHECK(msg.find("question 0") != std::string::npos);
    CHECK(msg.find(why) != std::string::npos);
  }
  std::ofstream(list) << R"({"qa": {"question": "Cyst?", "answer": "No."}})";
  CHECK_THAT(message_of([&] { read_amos_dataset(json); }), Catch::Contains(list) && Catch::Contains("must be a list"));
  std::ofstream(list) << R"([{"question": "Cyst?", "answer": "No."}])";
  CHECK_THAT(message_of([&] { read_amos_dataset(json); }), Catch::Contains(list) && Catch::Contains("\"qa\" list"));
  fs::remove(list);
  CHECK_THAT(message_of([&] { read_amos_dataset(json); }), Catch::Contains("missing file " + list));

  // Inline entries name the dataset JSON and the case; inline and a file together are refused.
  std::ofstream(json) << R"({"training": [{"id": "a", "image": "imagesTr/ct.nii.gz",
      "labels": {"report": {"findings": {"chest": "Clear."}}, "qa": [{"question": "Cyst?"}]}}]})";
  CHECK_THAT(message_of([&] { read_amos_dataset(json); }),
             Catch::Contains(json + " case a: question 0") && Catch::Contains("\"answer\""));
  std::ofstream(list) << R"({"qa": []})";
  std::ofstream(json) << R"({"training": [{"id": "a", "image": "imagesTr/ct.nii.gz", "question_list": "q.json",
      "labels": {"report": {"findings": {"chest": "Clear."}}, "qa": []}}]})";
  CHECK_THAT(message_of([&] { read_amos_dataset(json); }), Catch::Contains(json + " case a") && Catch::Contains("not both"));
  fs::remove_all(dir);
}

TEST_CASE("synthetic questions answer each finding kind from the finding list", "[data_world][questions]") {
  const std::string fluid = augment::FocusedInferenceConfig::defaults().region("chest").questions.front().question;
  std::array<std::set<std::string>, kNumFindingKinds> phrasings;
  for (uint32_t subset = 0; subset < (1u << kNumFindingKinds); ++subset) {
    const auto has = [&](FindingKind k) { return ((subset >> int(k)) & 1) != 0; };
    std::vector<Finding> findings;
    for (const auto& k : kFindingKinds)
      if (has(k.kind)) findings.push_back(finding_of(k.kind));
    for (uint64_t seed : {1, 2, 3}) {
      INFO("subset " << subset << ", seed " << seed);
      const std::vector<Question> qs = write_questions(findings, derive_seed(subset, seed));
      REQUIRE(qs.size() == size_t(kNumFindingKinds) + 1);
      for (const auto& k : kFindingKinds) {
        const Question& q = qs[size_t(k.kind)];
        CHECK(q.answer == (has(k.kind) ? "Yes." : "No."));
        CHECK(q.region == k.region);
        CHECK(q.options.empty());
        phrasings[size_t(k.kind)].insert(q.question);
      }
      CHECK(qs.back().question == fluid);
      CHECK(qs.back().answer == (has(FindingKind::pleural_effusion) || has(FindingKind::pericardial_effusion) ? "Yes." : "No."));
      CHECK(qs.back().region == Region::chest);
    }
  }
  for (const auto& p : phrasings) CHECK(p.size() == 3);  // every template is used
  // The findings change the answers, never the phrasing.
  for (uint64_t seed = 0; seed < 5; ++seed) {
    const auto with = write_questions({finding_of(FindingKind::liver_cyst)}, seed), without = write_questions({}, seed);
    for (size_t i = 0; i < with.size(); ++i) CHECK(with[i].question == without[i].question);
  }
  // Phantoms: the answers follow the generated findings.
  PhantomConfig cfg;
  cfg.shape = {32, 48, 48};
  cfg.spacing = {8.0, 8.0, 10.0};
  for (uint64_t seed = 0; seed < 6; ++seed) {
    const Phantom p = make_phantom(cfg, seed);
    const std::vector<Question> qs = write_questions(p.findings, seed);
    int yes = 0;
    for (const auto& k : kFindingKinds) yes += qs[size_t(k.kind)].answer == "Yes.";
    CHECK(yes == int(p.findings.size()));
    for (const Finding& f : p.findings) CHECK(qs[size_t(f.kind)].answer == "Yes.");
  }
}

TEST_CASE("synthetic focused questions: one per kind in its region, each 'yes' sentence states the kind",
          "[data_world][questions]") {
  const augment::FocusedInferenceConfig c = synthetic_focused_questions();
  const augment::FocusedInferenceConfig defaults = augment::FocusedInferenceConfig::defaults();
  CHECK(c.temperature == defaults.temperature);
  CHECK(c.max_new_tokens == defaults.max_new_tokens);
  REQUIRE(c.regions.size() == 3);
  const eval::FindingLabeller labeller(synthetic_labeller_table());
  size_t asked = 0;
  for (Region r : kRegions) {
    const augment::FocusedRegion& fr = c.region(region_name(r));
    CHECK(fr.system_prompt == defaults.region(region_name(r)).system_prompt);
    size_t i = 0;
    for (const auto& k : kFindingKinds) {
      if (k.region != r) continue;
      INFO(k.name);
      REQUIRE(i < fr.questions.size());
      const augment::FocusedQuestion& q = fr.questions[i++];
      // The question is one the synthetic data asks, so a model trained on it knows it.
      bool asked_in_data = false;
      for (uint64_t seed = 0; seed < 40 && !asked_in_data; ++seed)
        asked_in_data = write_questions({}, seed)[size_t(k.kind)].question == q.question;
      CHECK(asked_in_data);
      std::vector<bool> want(size_t(kNumFindingKinds), false);
      want[size_t(k.kind)] = true;
      CHECK(labeller.label(q.sentence) == want);
    }
    CHECK(i == fr.questions.size());
    asked += i;
  }
  CHECK(asked == size_t(kNumFindingKinds));
  // It round-trips through the JSON that `ctmllm report --focused-config` reads.
  CHECK(augment::FocusedInferenceConfig::from_json(c.to_json()).to_json() == c.to_json());
}
