// `ctmllm demo --quick`, run as a new user would: every stage runs (dataset, tokenizer, vision
// pretraining, MLLM training, held-out evaluation) and leaves its outputs; the printed table has
// every system. (The F1 target is for the full-length default run, docs/DEMO.md.)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "demo/demo_settings.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/run_cli.hpp"

TEST_CASE("ctmllm demo --quick runs every stage and writes its results", "[cli][demo]") {
  const std::string out = ctmllm::testing::scratch_dir("cli_demo");
  const auto run = ctmllm::testing::run_cli("demo --quick --threads 2 --out " + out);
  const std::string& text = run.out;
  const int status = run.status;
  INFO(text << run.err);
  REQUIRE(status == 0);
  for (const char* row : {"always normal", "untrained", "trained", "trained + normality", "trained + focused", "lung_nodule",
                          "bladder_wall_thickening", "stage 1", "stage 2"})
    CHECK(text.find(row) != std::string::npos);
  for (const char* file : {"data/dataset.json", "tokenizer/tokenizer.json", "vision_stage1.safetensors",
                           "mllm/model/config.json", "mllm/loss_curve.svg", "scores.json", "sample_reports.json",
                           "focused_questions.json", "data/questionsTr/phantom_0001.json"})
    CHECK(std::filesystem::exists(std::filesystem::path(out) / file));
  const auto scores = nlohmann::json::parse(std::ifstream(std::filesystem::path(out) / "scores.json"));
  for (const char* system : {"always normal", "untrained", "trained", "trained + normality", "trained + focused"}) {
    INFO(system);
    REQUIRE(scores.contains(system));
    CHECK(scores[system]["f1"].get<double>() >= 0.0);
    CHECK(scores[system]["per_kind"].size() == 7);
  }
  // The questions focused inference asked: one per finding kind, in its region.
  const auto focused = nlohmann::json::parse(std::ifstream(std::filesystem::path(out) / "focused_questions.json"));
  size_t questions = 0;
  for (const auto& [region, r] : focused["regions"].items()) questions += r["questions"].size();
  CHECK(questions == 7);
  // The trained model's report is a trained model's: it learned the reports' language (BLEU above
  // the untrained model's noise).
  CHECK(scores["trained"]["bleu4"].get<double>() > scores["untrained"]["bleu4"].get<double>());
  // The demo's CT window reaches the trained model's config ("preprocess"), so the model reads CTs
  // as it was trained on them.
  const auto config = nlohmann::json::parse(std::ifstream(std::filesystem::path(out) / "mllm/model/config.json"));
  REQUIRE(config.contains("preprocess"));
  const ctmllm::demo::DemoSettings defaults;
  CHECK(config.at("preprocess").at("hu_min").get<double>() == defaults.hu_min);
  CHECK(config.at("preprocess").at("hu_max").get<double>() == defaults.hu_max);
  std::filesystem::remove_all(out);
}
