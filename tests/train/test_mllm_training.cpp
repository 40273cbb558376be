// train::train_mllm end to end on a tiny synthetic AMOS-MM dataset and a tiny new model: the run
// folder holds the model, checkpoints, log and loss curve; the saved model loads and writes
// reports; a run stopped at a checkpoint and resumed logs the same losses as an uninterrupted one;
// run.json errors name the key.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ctmllm/data/synthetic_dataset.hpp"
#include "ctmllm/mllm/report.hpp"
#include "ctmllm/train/mllm_training.hpp"
#include "support/catch.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
namespace fs = std::filesystem;

namespace {

std::string scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ctmllm_mllm_training_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  return dir.string();
}

// Four training and two validation phantoms on a small grid, written once per test process and
// removed at its end.
struct TinyDataset {
  std::string dir = scratch("dataset");
  TinyDataset() {
    data::SyntheticDatasetConfig cfg;
    cfg.training = 4;
    cfg.validation = 2;
    cfg.seed = 11;
    cfg.phantom.shape = {32, 48, 48};
    cfg.phantom.spacing = {8.0, 8.0, 10.0};
    data::write_synthetic_dataset(dir, cfg);
  }
  ~TinyDataset() { fs::remove_all(dir); }
};
std::string dataset() {
  static const TinyDataset d;
  return d.dir + "/dataset.json";
}

// A run of a tiny new model: ViT 16x32x32 (64 patches, 8 visual tokens per volume), a 2-layer
// Llama of width 32, the byte-level BPE test tokenizer.
nlohmann::json tiny_run(const std::string& output_dir) {
  nlohmann::json j = nlohmann::json::parse(R"({
    "new_model": {
      "mllm": {"vision": {"img_size": [16, 32, 32], "patch_size": [4, 8, 8], "hidden_size": 24, "num_layers": 1,
                          "num_heads": 2, "mlp_dim": 48},
               "projector": {"type": "spp", "pool": 2, "in_dim": 24, "out_dim": 32},
               "mask_num_classes": 15},
      "llm": {"model_type": "llama", "vocab_size": 615, "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
              "max_position_embeddings": 512, "bos_token_id": 0, "eos_token_id": 1}
    },
    "finetune": {"mode": "full"},
    "optimizer": {"lr": 1e-3},
    "schedule": {"name": "constant", "warmup_ratio": 0},
    "steps": 4, "batch_size": 2, "max_length": 96, "save_every": 2, "eval_every": 2, "keep_last": 3,
    "seed": 5, "threads": 2, "prefetch": 1
  })");
  j["new_model"]["tokenizer"] = testing::fixture_path("tokenizer/bpe_llama3");
  j["dataset"] = dataset();
  j["output_dir"] = output_dir;
  return j;
}

std::vector<double> logged_losses(const std::string& log) {
  std::ifstream in(log);
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

}  // namespace

TEST_CASE("train_mllm: a tiny LoRA run with the mask input leaves a loadable model that writes reports",
          "[train][mllm_training]") {
  const std::string out = scratch("lora");
  nlohmann::json j = tiny_run(out);
  j["finetune"] = {{"mode", "lora"}, {"r", 4}, {"alpha", 8}, {"dropout", 0.0}};
  j["segmentation_mask"] = true;
  std::ostringstream progress;
  const auto s = train::train_mllm(train::MllmRunConfig::from_json(j, "run.json"), &progress);
  CHECK(s.steps == 4);
  CHECK(std::isfinite(s.final_loss));
  REQUIRE(s.eval_loss);
  CHECK(std::isfinite(*s.eval_loss));
  CHECK(s.tokens_per_second > 0);
  for (const char* f : {"model/config.json", "model/vision.safetensors", "model/llm/model.safetensors",
                        "model/llm/tokenizer.json", "adapter/adapter_config.json", "checkpoint-2/trainer_state.json",
                        "checkpoint-4/model.safetensors", "train_log.jsonl", "loss_curve.svg"})
    CHECK(fs::exists(fs::path(out) / f));
  CHECK(logged_losses(s.log).size() == 4);

  const auto model = mllm::Model<float>::from_pretrained(s.model_dir);
  CHECK(model.config().segmentation_mask);
  CHECK(model.config().image_token_id == *model.tokenizer().token_to_id("<im_patch>"));
  CHECK(model.tokenizer().token_to_id("<bx_start>"));
  const data::AmosDataset ds = data::read_amos_dataset(dataset());
  data::CtSampleOptions so;
  so.preprocess = model.config().preprocess;
  so.augment = std::nullopt;
  so.mask_classes = model.config().mask_num_classes;
  const data::CtSample sample = data::CtSampleLoader(ds.validation, so).load({0, data::Region::chest, 0});
  mllm::AnswerOptions ao;
  ao.generation.max_new_tokens = 6;
  const auto reports = mllm::write_reports(model, sample.image, sample.mask, {"chest", "abdomen", "pelvis"}, ao);
  REQUIRE(reports.size() == 3);
  for (const auto& r : reports) CHECK(!r.tokens.empty());
  fs::remove_all(out);
}

TEST_CASE("train_mllm: a run resumed from its checkpoint logs the losses of an uninterrupted run",
          "[train][mllm_training]") {
  std::ostringstream progress;
  const std::string whole = scratch("whole"), parts = scratch("parts");
  const auto a = train::train_mllm(train::MllmRunConfig::from_json(tiny_run(whole), "run.json"), &progress);
  nlohmann::json first = tiny_run(parts);
  first["steps"] = 2;  // stops at checkpoint-2 (a constant schedule: the lr does not depend on the length)
  train::train_mllm(train::MllmRunConfig::from_json(first, "run.json"), &progress);
  nlohmann::json rest = tiny_run(parts);
  rest["resume"] = "latest";
  const auto b = train::train_mllm(train::MllmRunConfig::from_json(rest, "run.json"), &progress);
  CHECK(b.steps == 4);
  const std::vector<double> la = logged_losses(a.log), lb = logged_losses(b.log);
  REQUIRE(la.size() == 4);
  CHECK(la == lb);
  CHECK(a.eval_loss == b.eval_loss);
  CHECK(la.back() < la.front());  // lr 1e-3 on the same few cases: the loss falls
  fs::remove_all(whole);
  fs::remove_all(parts);
}

TEST_CASE("run.json errors name the key", "[train][mllm_training]") {
  const auto message = [](const nlohmann::json& j) {
    try {
      train::MllmRunConfig::from_json(j, "run.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  nlohmann::json j = tiny_run("/tmp/unused");
  j["stpes"] = 3;
  CHECK_THAT(message(j), Catch::Contains("unknown key 'stpes'"));
  j = tiny_run("/tmp/unused");
  j["model"] = "somewhere";
  CHECK_THAT(message(j), Catch::Contains("exactly one of 'model'"));
  j = tiny_run("/tmp/unused");
  j.erase("steps");
  CHECK_THAT(message(j), Catch::Contains("'steps' or 'epochs'"));
  j = tiny_run("/tmp/unused");
  j["finetune"]["mode"] = "qlora";
  CHECK_THAT(message(j), Catch::Contains("frozen, lora, dora or full"));
  j = tiny_run("/tmp/unused");
  j["new_model"]["mllm"]["image_token_id"] = 3;
  CHECK_THAT(message(j), Catch::Contains("image_token_id"));
  j = tiny_run("/tmp/unused");
  j["schedule"]["name"] = "exponential";
  CHECK_THAT(message(j), Catch::Contains("run.json: schedule"));
  j = tiny_run("/tmp/unused");
  j["region_weights"] = {{"chest", 0.5}, {"abdomen", 0.25}};
  CHECK_THAT(message(j), Catch::Contains("sum to 1"));
  j["region_weights"]["pelvis"] = 0.25;
  CHECK(train::MllmRunConfig::from_json(j, "run.json").region_weights == data::RegionProbabilities{0.5, 0.25, 0.25});
  j["region_weights"]["lungs"] = 0.0;
  CHECK_THAT(message(j), Catch::Contains("unknown key 'lungs'"));
  j = tiny_run("/tmp/unused");
  j["new_model"]["projector_weights"] = "/nonexistent/projector.safetensors";
  CHECK(train::MllmRunConfig::from_json(j, "run.json").new_model->projector_weights == "/nonexistent/projector.safetensors");
}

TEST_CASE("new_model.projector_weights: the projector starts from the file, not its random init", "[train][mllm_training]") {
  const std::string dir = scratch("projector_seed");
  fs::create_directories(dir);
  train::NewMllmSpec spec = *train::MllmRunConfig::from_json(tiny_run(dir), "run.json").new_model;
  const auto random = train::new_mllm<float>(spec, 5);
  io::SafeTensorsWriter w;
  for (const auto& p : random.projector_parameters().all()) w.add(p.name(), Tensor<float>::full(p.shape(), 0.25f));
  spec.projector_weights = dir + "/projector.safetensors";
  w.write(spec.projector_weights);
  const auto seeded = train::new_mllm<float>(spec, 5);
  for (const auto& p : seeded.projector_parameters().all()) {
    INFO(p.name());
    CHECK(p.value().to_vector() == std::vector<float>(size_t(p.value().numel()), 0.25f));
  }
  spec.projector_weights = dir + "/missing.safetensors";
  CHECK_THROWS_AS(train::new_mllm<float>(spec, 5), Error);
  fs::remove_all(dir);
}
