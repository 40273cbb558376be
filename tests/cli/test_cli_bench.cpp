// `ctmllm bench` run as a user would, at tiny sizes so that it takes a moment: every workload's
// entries in the JSON output with positive, finite times and rates; the CSV and text forms; and bad
// input ending with one "ctmllm: error:" line and status 1.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/run_cli.hpp"
#include "support/tiny_mllm.hpp"

using namespace ctmllm;
using testing::run_cli;
using Run = testing::CliRun;
namespace fs = std::filesystem;

namespace {
const std::string kTinyOps =
    " --gemm 64x32x48 --attention 1x2x33x16 --norm 33x32 --softmax 33x33 --volume 8x32x32 --patch 4x8x8 --embed 32";
const std::string kTinyVision = " --vit-volume 8x32x32 --vit-patch 4x8x8 --vit-hidden 32 --vit-layers 1 --vit-heads 2 --vit-mlp 64";
const std::string kTinyLlm =
    " --llm-hidden 32 --llm-layers 1 --llm-heads 2 --llm-kv-heads 1 --llm-intermediate 64 --llm-vocab 256 --prompt 8"
    " --batch 1,2 --read-mib 4";

// A tiny saved MLLM that reads the CT and its mask, removed at the end.
struct SavedModel {
  fs::path dir = testing::scratch_dir("cli_bench_model");
  SavedModel() { testing::tiny_mllm(true).save_pretrained(dir.string()); }
  ~SavedModel() { fs::remove_all(dir); }
};

bool positive_finite(const nlohmann::json& v) { return v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0; }
}  // namespace

TEST_CASE("ctmllm bench: JSON holds every workload's entries with positive finite times and rates", "[cli][bench]") {
  const SavedModel model;
  const Run r = run_cli("bench ops vision llm --model " + model.dir.string() + " --json --threads 1 --warmup 1 --repeat 2" +
                        kTinyOps + kTinyVision + kTinyLlm);
  INFO(r.err);
  REQUIRE(r.status == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["threads"] == 1);
  CHECK(j["warmup"] == 1);
  CHECK(j["repeat"] == 2);

  std::vector<std::string> names;
  for (const auto& e : j["results"]) {
    const std::string name = e["name"].get<std::string>();
    INFO(name);
    names.push_back(name);
    CHECK(!e["shape"].get<std::string>().empty());
    CHECK(positive_finite(e["median_ms"]));
    CHECK(positive_finite(e["min_ms"]));
    CHECK(e["min_ms"].get<double>() <= e["median_ms"].get<double>());
    CHECK(positive_finite(e["rate"]));
    CHECK(!e["unit"].get<std::string>().empty());
    // Decode entries also give their fraction of the measured read bandwidth.
    CHECK(e.contains("roofline_fraction") == (name.find("/decode_b") != std::string::npos));
    if (e.contains("roofline_fraction")) CHECK(positive_finite(e["roofline_fraction"]));
  }
  const std::vector<std::string> expected = {"ops/gemm",        "ops/attention",   "ops/layer_norm",
                                             "ops/rms_norm",    "ops/softmax",     "ops/patch_embed",
                                             "vision/vit3d_forward", "memory_read", "llm/prefill",
                                             "llm/decode_b1",   "llm/decode_b2",   "model/encode_ct",
                                             "model/prefill",   "model/decode_b1", "model/decode_b2"};
  CHECK(names == expected);

  // The sizes given are the sizes run, and the rates follow from the median: 2·M·K·N FLOPs for the GEMM.
  const auto& gemm = j["results"][0];
  CHECK(gemm["shape"] == "64x32x48");
  CHECK(gemm["unit"] == "GFLOP/s");
  CHECK(gemm["rate"].get<double>() == Approx(2e-9 * 64 * 32 * 48 / (gemm["median_ms"].get<double>() * 1e-3)));
  CHECK(j["results"][9]["shape"].get<std::string>().rfind("batch 1 after 8 llama hidden 32 layers 1", 0) == 0);
  // The model's prompt is its 16 visual tokens (CT and mask) and the 8 text tokens.
  CHECK(j["results"][12]["shape"].get<std::string>().rfind("batch 1 prompt 24 ", 0) == 0);
}

TEST_CASE("ctmllm bench: CSV and text output", "[cli][bench]") {
  const Run csv = run_cli("bench ops --csv --repeat 1 --warmup 0" + kTinyOps);
  INFO(csv.err);
  REQUIRE(csv.status == 0);
  std::istringstream lines(csv.out);
  std::string line;
  std::getline(lines, line);
  CHECK(line == "name,shape,median_ms,min_ms,rate,unit");
  int rows = 0;
  while (std::getline(lines, line)) {
    INFO(line);
    CHECK(std::count(line.begin(), line.end(), ',') == 5);
    CHECK(line.rfind("ops/", 0) == 0);
    ++rows;
  }
  CHECK(rows == 6);

  const Run text = run_cli("bench vision --repeat 1" + kTinyVision);
  REQUIRE(text.status == 0);
  CHECK(text.out.rfind("ctmllm bench: ", 0) == 0);
  CHECK(text.out.find("vision/vit3d_forward") != std::string::npos);
  CHECK(text.out.find("GFLOP/s") != std::string::npos);
  CHECK(text.out.find("ops/") == std::string::npos);
}

TEST_CASE("ctmllm bench: bad input ends with one error line and status 1", "[cli][bench]") {
  const auto fails = [](const std::string& args, const std::string& what) {
    const Run r = run_cli("bench " + args);
    INFO(args);
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("ctmllm: error: ", 0) == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.find(what) != std::string::npos);
  };
  fails("ops gpu", "unknown workload 'gpu'");
  fails("ops --repeat 0", "--repeat must be at least 1");
  fails("--model " + (fs::temp_directory_path() / "ctmllm_no_such_model").string(), "ctmllm_no_such_model");
  fails("ops --json --csv", "--json or --csv");
  fails("ops --gemm 64x32", "--gemm");
  fails("vision --preset vit-c", "unknown preset 'vit-c'");
  fails("llm --llm-heads 5", "divisible");
  CHECK(run_cli("bench --help").status == 0);
}
