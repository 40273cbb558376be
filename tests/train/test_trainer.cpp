// train::Trainer on a tiny MLP: the loss goes down, an interrupted run resumed from its latest
// checkpoint reproduces the uninterrupted run bit for bit (losses, weights, log), a NaN loss or
// gradient stops with an Error naming the step and the last good checkpoint, and the progress line,
// the per-step log and the SVG loss curve are written.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/train/schedule.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "train/tiny_regression.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;
using train::AdamW;
using train::AdamWOptions;
using train::Trainer;
using train::TrainerOptions;
namespace fs = std::filesystem;

namespace {

std::string text_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Interrupt {};  // thrown by a loss function to simulate a killed run

TrainerOptions base_options(const std::string& dir, std::ostream& progress) {
  TrainerOptions o;
  o.max_steps = 12;
  o.grad_accum = 2;
  o.clip_norm = 0.5;
  o.save_every = 4;
  o.eval_every = 3;
  o.keep_last = 2;
  o.output_dir = dir;
  o.seed = 99;
  o.progress_out = &progress;
  o.progress_plain_every_s = 0;  // a line per step in the captured output
  return o;
}

// A run of the tiny model; `fail_at` (micro-batch index) makes the loss throw Interrupt there.
struct Run {
  TinyMlp model;
  std::ostringstream progress;
  Trainer<RegressionBatch> trainer;
  Run(const std::string& dir, uint64_t init_seed, const std::string& resume = "", int64_t fail_at = -1)
      : model(init_seed),
        trainer(AdamW<float>(model.params.trainable(), AdamWOptions{3e-2, 0.9, 0.999, 1e-8, 0.01}),
                [&] {
                  TrainerOptions o = base_options(dir, progress);
                  o.resume = resume;
                  return o;
                }(),
                [](int64_t i) { return regression_batch(7, i); },
                [this, fail_at](const RegressionBatch& b) {
                  if (b.index == fail_at) throw Interrupt{};
                  return model.loss(b);
                }) {
    trainer.set_schedule(train::Schedule(train::ScheduleKind::cosine, 2, 12));
    trainer.set_eval([this](int64_t) { return double(model.loss(regression_batch(1000, 0)).loss.value().item()); });
  }
};

}  // namespace

TEST_CASE("trainer: resumed run is bit-identical to an uninterrupted one", "[train][trainer]") {
  const std::string a = scratch_dir("a"), b = scratch_dir("b");
  Run full(a, 1);
  const double initial_eval = full.model.loss(regression_batch(1000, 0)).loss.value().item();
  const train::TrainerState& sa = full.trainer.run();
  REQUIRE(sa.step == 12);
  REQUIRE(sa.history.size() == 12);
  CHECK(sa.evals.back().loss < 0.5 * initial_eval);  // it learns
  CHECK(sa.evals.size() == 4);                                   // steps 3, 6, 9, 12

  // Killed inside step 7 (micro-batch 13): the last checkpoint is step 4; steps 5-6 were logged.
  {
    Run broken(b, 1, "", 13);
    CHECK_THROWS_AS(broken.trainer.run(), Interrupt);
  }
  CHECK(train::list_checkpoints(b).back().first == 4);
  // Resumed with a differently initialised model: the checkpoint overwrites it.
  Run resumed(b, 2, "latest");
  const train::TrainerState& sb = resumed.trainer.run();
  REQUIRE(sb.history.size() == 12);
  for (size_t i = 0; i < 12; ++i) {
    REQUIRE(sb.history[i].step == sa.history[i].step);
    REQUIRE(sb.history[i].loss == sa.history[i].loss);  // exact
    REQUIRE(sb.history[i].grad_norm == sa.history[i].grad_norm);
    REQUIRE(sb.history[i].lr == sa.history[i].lr);
  }
  REQUIRE(sb.evals.size() == sa.evals.size());
  for (size_t i = 0; i < sa.evals.size(); ++i) CHECK(sb.evals[i].loss == sa.evals[i].loss);
  for (size_t p = 0; p < full.model.params.size(); ++p) {
    const Tensor<float, Cpu>& wa = full.model.params.all()[p].value();
    const Tensor<float, Cpu>& wb = resumed.model.params.all()[p].value();
    REQUIRE(wa.numel() == wb.numel());
    for (int64_t i = 0; i < wa.numel(); ++i) REQUIRE(wa.data()[i] == wb.data()[i]);
  }
  // The rewritten log equals the uninterrupted run's, apart from the measured step times.
  auto without_seconds = [](const std::string& path) {
    std::ifstream in(path);
    std::string line, out;
    while (std::getline(in, line)) {
      nlohmann::json j = nlohmann::json::parse(line);
      j.erase("seconds");
      out += j.dump() + "\n";
    }
    return out;
  };
  const std::string log_a = without_seconds(full.trainer.log_path());
  CHECK(std::count(log_a.begin(), log_a.end(), '\n') == 12 + 4);
  CHECK(without_seconds(resumed.trainer.log_path()) == log_a);
  // Resuming a finished run trains nothing and keeps the state.
  Run again(b, 3, "latest");
  CHECK(again.trainer.run().history.size() == 12);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST_CASE("trainer: a NaN loss or gradient stops with the step and the last good checkpoint", "[train][trainer]") {
  const std::string dir = scratch_dir("nan");
  std::ostringstream progress;
  TinyMlp model(1);
  TrainerOptions o = base_options(dir, progress);
  o.prefetch = 0;
  Trainer<RegressionBatch> t(AdamW<float>(model.params.trainable(), AdamWOptions{}), o,
                             [](int64_t i) { return regression_batch(7, i); },
                             [&](const RegressionBatch& b) -> train::LossResult<float> {
                               auto l = model.loss(b);
                               if (b.index == 2 * 5 + 1)  // step 6, second micro-batch
                                 return autograd::mul_scalar(l.loss, std::numeric_limits<double>::quiet_NaN());
                               return l;
                             });
  CHECK_THROWS_WITH(t.run(), Catch::Contains("step 6: loss is nan (micro-batch 1)") &&
                                 Catch::Contains("last good checkpoint is") && Catch::Contains("checkpoint-4"));
  CHECK(train::list_checkpoints(dir).size() == 1);
  CHECK(t.state().step == 5);
  CHECK(fs::exists(t.plot_path()));

  // A finite loss whose gradient is NaN: d/dw sqrt(0·w) = 0 · ∞.
  TinyMlp m2(1);
  o.output_dir.clear();
  Trainer<RegressionBatch> g(AdamW<float>(m2.params.trainable(), AdamWOptions{}), o,
                             [](int64_t i) { return regression_batch(7, i); },
                             [&](const RegressionBatch& b) -> train::LossResult<float> {
                               auto l = m2.loss(b);
                               if (b.index < 4) return l;
                               return autograd::add(l.loss, autograd::sum(autograd::sqrt(autograd::mul_scalar(m2.fc1.weight, 0.0))));
                             });
  CHECK_THROWS_WITH(g.run(), Catch::Contains("step 3: gradient norm is nan") && Catch::Contains("no checkpoint saved"));
  fs::remove_all(dir);
}

TEST_CASE("trainer: progress line, per-step log and loss curve", "[train][trainer]") {
  const std::string dir = scratch_dir("outputs");
  Run run(dir, 1);
  run.trainer.run();
  const std::string p = run.progress.str();
  CHECK(p.find("step 1/12") != std::string::npos);
  CHECK(p.find("step 12/12 [####################] 100%") != std::string::npos);
  CHECK(p.find("| loss ") != std::string::npos);
  CHECK(p.find(" tok/s") != std::string::npos);
  CHECK(p.find("ETA ") != std::string::npos);
  CHECK(p.find("eval loss") != std::string::npos);
  CHECK(p.find("saved ") != std::string::npos);
  CHECK(p.find('\r') == std::string::npos);  // not a terminal: plain lines

  std::ostringstream tty;
  train::Progress bar(tty, 3, true);
  bar.update({1, 2.0, 1e-3, 1.0, 100, 0.5});
  bar.update({2, 1.0, 1e-3, 1.0, 100, 0.5});
  CHECK(tty.str().find('\r') != std::string::npos);
  CHECK(tty.str().find('\n') == std::string::npos);  // redrawn in place until the last step
  CHECK(bar.smoothed_loss() == Approx((0.9 * 0.1 * 2.0 + 0.1 * 1.0) / (1 - 0.81)));
  bar.update({3, 1.0, 1e-3, 1.0, 100, 0.5});
  CHECK(tty.str().back() == '\n');

  const std::string svg = text_of(run.trainer.plot_path());
  CHECK(svg.starts_with("<svg"));
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find("eval loss") != std::string::npos);
  CHECK(svg.find(">step</text>") != std::string::npos);
  CHECK(svg.find("<circle") != std::string::npos);  // eval markers
  CHECK(train::nice_ticks(0, 12) == std::vector<double>{0, 2, 4, 6, 8, 10, 12});
  CHECK(train::nice_ticks(0.13, 0.91, 4) == std::vector<double>{0.2, 0.4, 0.6, 0.8});
  CHECK(train::format_duration(3725) == "1h02m");
  CHECK(train::format_duration(75) == "1m15s");

  std::ifstream log(run.trainer.log_path());
  std::string first;
  std::getline(log, first);
  const auto j = nlohmann::json::parse(first);
  CHECK(j["step"] == 1);
  CHECK(j["tokens"] == 16);  // two micro-batches of 8 rows
  for (const char* k : {"loss", "lr", "grad_norm", "seconds"}) CHECK(j.contains(k));
  fs::remove_all(dir);
}

TEST_CASE("trainer: epochs, token-weighted accumulation and option checks", "[train][trainer]") {
  std::ostringstream progress;
  TinyMlp model(1);
  TrainerOptions o = base_options("", progress);
  o.max_steps = 0;
  o.epochs = 3;
  o.batches_per_epoch = 5;  // 15 micro-batches in pairs: 8 steps
  int64_t made = 0;
  Trainer<RegressionBatch> t(AdamW<float>(model.params.trainable(), AdamWOptions{}), o,
                             [&](int64_t i) { ++made; return regression_batch(7, i); },
                             [&](const RegressionBatch& b) { return model.loss(b); });
  CHECK(t.total_steps() == 8);
  t.set_token_count([](const RegressionBatch& b) { return b.index % 2 ? 3 : 1; });
  t.run();
  CHECK(made == 16);
  // Weights 1/4 and 3/4: the recorded loss is the weighted mean of the two micro-batch losses.
  TinyMlp fresh(1);
  const double l0 = fresh.loss(regression_batch(7, 0)).loss.value().item(),
               l1 = fresh.loss(regression_batch(7, 1)).loss.value().item();
  CHECK(t.state().history[0].loss == Approx(0.25 * l0 + 0.75 * l1).epsilon(1e-12));

  auto make = [&](TrainerOptions opts) {
    return Trainer<RegressionBatch>(AdamW<float>(model.params.trainable(), AdamWOptions{}), opts,
                                    [](int64_t i) { return regression_batch(7, i); },
                                    [&](const RegressionBatch& b) { return model.loss(b); });
  };
  TrainerOptions bad = base_options("", progress);
  bad.max_steps = 0;
  CHECK_THROWS_WITH(make(bad), Catch::Contains("max_steps"));
  bad = base_options("", progress);
  bad.grad_accum = 0;
  CHECK_THROWS_WITH(make(bad), Catch::Contains("grad_accum"));
  bad = base_options("", progress);
  bad.resume = "latest";
  CHECK_THROWS_WITH(make(bad), Catch::Contains("output_dir"));
}
