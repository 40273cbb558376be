// Training checkpoints: contents and round trip, keep-last-K pruning, "latest" ignoring unfinished
// ".tmp" folders, and clear Errors for missing, truncated or mismatched checkpoints.

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "train/tiny_regression.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;
using train::AdamW;
using train::AdamWOptions;
namespace fs = std::filesystem;

namespace {

// Trains `steps` steps of the tiny model into dir, saving every `every`.
train::TrainerState train_tiny(const std::string& dir, int64_t steps, int64_t every, int keep, uint64_t seed = 5,
                               const std::string& resume = "") {
  TinyMlp model(1);
  std::ostringstream progress;
  train::TrainerOptions o;
  o.max_steps = steps;
  o.save_every = every;
  o.keep_last = keep;
  o.output_dir = dir;
  o.seed = seed;
  o.resume = resume;
  o.progress_out = &progress;
  train::Trainer<RegressionBatch> t(AdamW<float>(model.params.trainable(), AdamWOptions{}), o,
                                    [](int64_t i) { return regression_batch(3, i); },
                                    [&](const RegressionBatch& b) { return model.loss(b); });
  return t.run();
}

}  // namespace

TEST_CASE("checkpoint: files, names and round trip", "[train][checkpoint]") {
  const std::string dir = scratch_dir("roundtrip");
  TinyMlp model(1);
  AdamW<float> opt(model.params.trainable(), AdamWOptions{});
  model.loss(regression_batch(3, 0)).loss.backward();
  opt.step();
  train::TrainerState s;
  s.step = 7;
  s.seed = 0xFFFFFFFFFFFFFFFFull;  // uint64 survives JSON
  s.grad_accum = 2;
  s.lr_factor = 0.25;
  s.history = {{1, 0.1 + 0.2, 1e-3, 2.5, 16, 0.01}};  // a double that needs 17 digits
  s.evals = {{1, 1.0 / 3}};
  const std::string ck = train::save_checkpoint(dir, model.params.trainable(), opt, s);
  CHECK(fs::path(ck).filename() == "checkpoint-7");
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "trainer_state.json"}) CHECK(fs::exists(fs::path(ck) / f));
  CHECK(!fs::exists(fs::path(dir) / "checkpoint-7.tmp"));
  const io::SafeTensorsFile st((fs::path(ck) / "model.safetensors").string());
  CHECK(st.names() == std::vector<std::string>{"model.fc1.bias", "model.fc1.weight", "model.fc2.bias", "model.fc2.weight"});

  TinyMlp other(2);
  AdamW<float> opt2(other.params.trainable(), AdamWOptions{});
  const train::TrainerState r = train::load_checkpoint(ck, other.params.trainable(), opt2);
  CHECK(r.step == 7);
  CHECK(r.seed == s.seed);
  CHECK(r.grad_accum == 2);
  CHECK(r.lr_factor == 0.25);
  REQUIRE(r.history.size() == 1);
  CHECK(r.history[0].loss == 0.1 + 0.2);
  CHECK(r.history[0].tokens == 16);
  CHECK(r.evals[0].loss == 1.0 / 3);
  for (size_t p = 0; p < model.params.size(); ++p) {
    const auto& a = model.params.all()[p].value();
    const auto& b = other.params.all()[p].value();
    for (int64_t i = 0; i < a.numel(); ++i) REQUIRE(a.data()[i] == b.data()[i]);
  }
  const auto sa = opt.state(), sb = opt2.state();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i)
    for (int64_t k = 0; k < sa[i].second.numel(); ++k) REQUIRE(sa[i].second.data()[k] == sb[i].second.data()[k]);
  fs::remove_all(dir);
}

TEST_CASE("checkpoint: keep the last K, ignore and clean unfinished folders", "[train][checkpoint]") {
  const std::string dir = scratch_dir("prune");
  fs::create_directories(fs::path(dir) / "checkpoint-99.tmp");  // a crash mid-save: never "latest"
  fs::create_directories(fs::path(dir) / "checkpoint-98");      // no trainer_state.json: incomplete
  CHECK(train::list_checkpoints(dir).empty());
  train_tiny(dir, 10, 2, 2);
  const auto all = train::list_checkpoints(dir);
  REQUIRE(all.size() == 2);
  CHECK(all[0].first == 8);
  CHECK(all[1].first == 10);
  CHECK(!fs::exists(fs::path(dir) / "checkpoint-99.tmp"));
  CHECK(!fs::exists(fs::path(dir) / "checkpoint-2"));
  CHECK(train::resolve_checkpoint("latest", dir) == all[1].second.string());

  // A save step that is not a multiple of save_every still ends with a final checkpoint; keep 0 keeps all.
  const std::string all_dir = scratch_dir("keepall");
  train_tiny(all_dir, 5, 2, 0);
  CHECK(train::list_checkpoints(all_dir).size() == 3);  // 2, 4 and the final 5
  fs::remove_all(dir);
  fs::remove_all(all_dir);
}

TEST_CASE("checkpoint: missing, corrupt or mismatched checkpoints give clear errors", "[train][checkpoint]") {
  const std::string empty = scratch_dir("empty");
  fs::create_directories(empty);
  CHECK_THAT(message_of([&] { train_tiny(empty, 4, 2, 1, 5, "latest"); }),
             Catch::Contains("no checkpoint to resume from"));
  CHECK_THAT(message_of([&] { train_tiny(empty, 4, 2, 1, 5, empty + "/checkpoint-3"); }),
             Catch::Contains("checkpoint-3: checkpoint folder not found"));

  const std::string dir = scratch_dir("corrupt");
  train_tiny(dir, 4, 2, 1);
  const fs::path ck = fs::path(dir) / "checkpoint-4";
  CHECK_THAT(message_of([&] { train_tiny(dir, 6, 2, 1, /*seed=*/6, "latest"); }),
             Catch::Contains("written with seed 5, this run has seed 6"));

  // Truncated parameters.
  const fs::path model = ck / "model.safetensors";
  const auto size = fs::file_size(model);
  fs::resize_file(model, size - 5);
  CHECK_THAT(message_of([&] { train_tiny(dir, 6, 2, 1, 5, ck.string()); }),
             Catch::Contains("model.safetensors") && Catch::Contains("data_offsets"));
  fs::remove(model);
  CHECK_THAT(message_of([&] { train_tiny(dir, 6, 2, 1, 5, ck.string()); }),
             Catch::Contains("model.safetensors: missing"));

  // A trainer state without its step, then one that is not JSON.
  const fs::path state = ck / "trainer_state.json";
  std::ofstream(state) << R"({"seed": 5, "grad_accum": 1, "lr_factor": 1, "history": [], "evals": []})";
  CHECK_THAT(message_of([&] { train_tiny(dir, 6, 2, 1, 5, ck.string()); }),
             Catch::Contains("trainer_state.json: missing field \"step\""));
  std::ofstream(state) << "{not json";
  CHECK_THAT(message_of([&] { train_tiny(dir, 6, 2, 1, 5, ck.string()); }),
             Catch::Contains("trainer_state.json: invalid JSON"));

  // A checkpoint of another model: the parameter names do not match.
  const std::string good = scratch_dir("good");
  train_tiny(good, 2, 2, 1);
  autograd::Parameters<float> ps;
  nn::Linear<float> lin(ps, "model.other", 4, 2);
  AdamW<float> opt(ps.trainable(), AdamWOptions{});
  CHECK_THAT(message_of([&] { train::load_checkpoint(good + "/checkpoint-2", ps.trainable(), opt); }),
             Catch::Contains("no tensor for parameter 'model.other.weight'"));
  fs::remove_all(empty);
  fs::remove_all(dir);
  fs::remove_all(good);
}
