// `ctmllm report` run as a user would: a saved model folder, the real head CT and its bone mask;
// streamed text, JSON output, augmenters, one-line errors with a non-zero exit status, and
// --device cuda (the CPU's findings where a GPU runs them, one error line elsewhere).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"
#include "support/run_cli.hpp"
#include "support/tiny_mllm.hpp"

using namespace ctmllm;
using testing::run_cli;
using Run = testing::CliRun;

namespace {
// A tiny model that reads the CT and its mask, saved once for every case.
const std::string& model_dir() {
  static const std::string dir = [] {
    const std::string d = testing::scratch_dir("cli_report_model");
    testing::tiny_mllm(true).save_pretrained(d);
    return d;
  }();
  return dir;
}
const std::string kCt = testing::data_path("head_ct.nii.gz");
const std::string kMask = testing::data_path("head_ct_bone_mask.nii.gz");
}  // namespace

TEST_CASE("ctmllm report: JSON and streamed text agree on the head CT", "[cli][report]") {
  const std::string base = "report --model " + model_dir() + " --ct " + kCt + " --mask " + kMask + " --max-new-tokens 8";
  const Run json = run_cli(base + " --json");
  INFO(json.err);
  REQUIRE(json.status == 0);
  const auto j = nlohmann::json::parse(json.out);
  REQUIRE(j["regions"].size() == 3);
  const Run text = run_cli(base);
  REQUIRE(text.status == 0);
  std::string expected;
  for (const char* r : {"chest", "abdomen", "pelvis"}) {
    CHECK(j["regions"][r]["tokens"].get<int>() >= 1);
    CHECK(j["regions"][r]["findings"] == j["regions"][r]["generated"]);
    CHECK(text.out.find(std::string("## ") + r + "\n") != std::string::npos);
  }
  // Streamed output: each region's section holds exactly its findings (modulo surrounding spaces).
  for (const char* r : {"chest", "abdomen", "pelvis"}) {
    const size_t at = text.out.find(std::string("## ") + r + "\n");
    const size_t end = text.out.find("\n\n## ", at + 1);
    const std::string section = text.out.substr(at + 4 + std::strlen(r), end == std::string::npos ? std::string::npos : end - at - 4 - std::strlen(r));
    CHECK(section.find(j["regions"][r]["findings"].get<std::string>()) != std::string::npos);
  }
  // One region, with the normality augmenter: the built-in knowledge base adds the normal sentences.
  const Run aug = run_cli(base + " --json --regions pelvis --normality");
  REQUIRE(aug.status == 0);
  const auto a = nlohmann::json::parse(aug.out);
  CHECK(a["regions"].size() == 1);
  CHECK(a["regions"]["pelvis"]["augment"]["normality_added"].get<int>() > 0);
  CHECK(a["regions"]["pelvis"]["findings"].get<std::string>().size() >
        a["regions"]["pelvis"]["generated"].get<std::string>().size());
}

TEST_CASE("ctmllm report: bad input is one error line and status 1", "[cli][report]") {
  const std::string model = " --model " + model_dir();
  for (const std::string& args : {"report" + model + " --ct /nonexistent.nii.gz --mask " + kMask,
                                  "report" + model + " --ct " + kCt,  // the model needs the mask
                                  "report" + model + " --ct " + kCt + " --mask " + kMask + " --regions chest,brain",
                                  "report --model /nonexistent --ct " + kCt}) {
    INFO(args);
    const Run r = run_cli(args);
    CHECK(r.status == 1);
    CHECK(r.err.starts_with("ctmllm: error: "));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
  CHECK(run_cli("report --help").status == 0);
  CHECK(run_cli("report --ct " + kCt).status != 0);  // --model is required
}

TEST_CASE("ctmllm report --device cuda: the CPU's findings on a GPU, one error line without one", "[cli][report]") {
  const std::string args =
      "report --model " + model_dir() + " --ct " + kCt + " --mask " + kMask + " --max-new-tokens 8 --json";
  const Run cpu = run_cli(args);
  REQUIRE(cpu.status == 0);
  const Run gpu = run_cli(args + " --device cuda");
  INFO(gpu.err);
  if (gpu.status == 0) {  // a CUDA build on a machine with a GPU
    const auto c = nlohmann::json::parse(cpu.out), g = nlohmann::json::parse(gpu.out);
    for (const char* r : {"chest", "abdomen", "pelvis"}) CHECK(g["regions"][r]["generated"] == c["regions"][r]["generated"]);
  } else {  // built without CUDA, or no GPU here
    CHECK(gpu.status == 1);
    CHECK(gpu.err.starts_with("ctmllm: error: --device cuda: "));
    CHECK(std::count(gpu.err.begin(), gpu.err.end(), '\n') == 1);
  }
  CHECK(run_cli(args + " --device tpu").status != 0);
}
