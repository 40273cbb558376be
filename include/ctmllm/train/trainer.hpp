#pragma once
// train::Trainer: the training loop, independent of the model. It is given
//   an AdamW over the trainable parameters (its groups hold them, with their HF names),
//   a batch source    make(i) -> Batch for micro-batch i = step · grad_accum + m (a pure function
//                     of i, e.g. data::BatchPlan::batch(i) + a loader: what makes resume exact),
//   a loss function   loss(batch) -> LossResult (a scalar Variable, optionally the token count),
//   optionally a schedule (lr factor of update number s, s = 0, 1, ...) and an eval callback.
// Per step: for each of grad_accum micro-batches forward + backward (seeded with its weight in the
// batch: 1/grad_accum, or its share of the tokens when a token counter is set, train/accumulate.hpp),
// then, when data-parallel (train/data_parallel.hpp), the ranks' gradients, loss and tokens combined,
// then the gradient norm (clipped when clip_norm > 0), the AdamW update at schedule(step), and the
// bookkeeping: progress line, one JSON line per step in train_log.jsonl, eval, checkpoint
// (train/checkpoint.hpp) and loss_curve.svg in the output folder.
// A non-finite loss or gradient norm stops the run with an Error naming the step; nothing is saved
// after it, so the newest checkpoint is the last good state. Batches are built ahead on a thread
// (data::Prefetcher) when prefetch > 0.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/data/prefetch.hpp"
#include "ctmllm/train/accumulate.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/checkpoint.hpp"
#include "ctmllm/train/clip.hpp"
#include "ctmllm/train/data_parallel.hpp"
#include "ctmllm/train/loss_plot.hpp"
#include "ctmllm/train/progress.hpp"

namespace ctmllm::train {

template <class T, class D = Cpu>
struct LossResult {
  autograd::Variable<T, D> loss;  // a one-element scalar
  int64_t tokens = 0;             // tokens the loss covered (for tokens/s); 0 when not counted
  LossResult(autograd::Variable<T, D> l, int64_t t = 0) : loss(std::move(l)), tokens(t) {}  // NOLINT: implicit
};

struct TrainerOptions {
  int64_t max_steps = 0;  // optimizer updates; 0: ceil(epochs · batches_per_epoch / grad_accum)
  int64_t epochs = 0, batches_per_epoch = 0;
  int64_t grad_accum = 1;
  double clip_norm = 0;   // 0: no clipping (the norm is still measured, logged and checked)
  int64_t eval_every = 0;  // 0: never (an eval callback still runs after the last step)
  int64_t save_every = 0;  // 0: only at the end (when output_dir is set)
  int keep_last = 3;       // checkpoints kept; <= 0 keeps all
  std::string output_dir;  // "": no log, plot or checkpoint is written
  uint64_t seed = 0;       // recorded and checked on resume; the batch source owns its own seed use
  std::string resume;      // "": fresh start; "latest" (in output_dir) or a checkpoint folder
  size_t prefetch = 2;     // micro-batches built ahead on a background thread; 0: inline
  bool progress = true;
  std::ostream* progress_out = nullptr;  // nullptr: std::cerr, redrawn in place when it is a terminal
  double progress_plain_every_s = 30;    // line period when the stream is not a terminal
};

template <class Batch, class T = float, class D = Cpu>
class Trainer {
 public:
  using Var = autograd::Variable<T, D>;
  using BatchFn = std::function<Batch(int64_t)>;
  using LossFn = std::function<LossResult<T, D>(const Batch&)>;
  using ScheduleFn = std::function<double(int64_t)>;
  using EvalFn = std::function<double(int64_t)>;
  using TokenCountFn = std::function<int64_t(const Batch&)>;
  using ReduceFn = typename DataParallel<T, D>::ReduceFn;

  Trainer(AdamW<T, D> optimizer, TrainerOptions options, BatchFn batches, LossFn loss)
      : optimizer_(std::move(optimizer)), options_(std::move(options)), batches_(std::move(batches)),
        loss_(std::move(loss)) {
    for (const auto& g : optimizer_.groups()) params_.insert(params_.end(), g.params.begin(), g.params.end());
    CTMLLM_CHECK(!params_.empty(), "Trainer: the optimizer has no parameters");
    CTMLLM_CHECK(batches_ && loss_, "Trainer: a batch source and a loss function are required");
    const TrainerOptions& o = options_;
    CTMLLM_CHECK(o.grad_accum >= 1, "Trainer: grad_accum must be >= 1, got ", o.grad_accum);
    CTMLLM_CHECK(o.clip_norm >= 0 && std::isfinite(o.clip_norm), "Trainer: clip_norm must be finite and >= 0");
    CTMLLM_CHECK(o.eval_every >= 0 && o.save_every >= 0, "Trainer: eval_every and save_every must be >= 0");
    total_ = o.max_steps > 0 ? o.max_steps : (o.epochs * o.batches_per_epoch + o.grad_accum - 1) / o.grad_accum;
    CTMLLM_CHECK(total_ > 0, "Trainer: set max_steps, or epochs and batches_per_epoch (got ", o.max_steps, ", ",
                 o.epochs, ", ", o.batches_per_epoch, ")");
    CTMLLM_CHECK(o.resume.empty() || o.resume != "latest" || !o.output_dir.empty(),
                 "Trainer: resume \"latest\" needs an output_dir");
    state_.seed = o.seed;
    state_.grad_accum = o.grad_accum;
  }

  void set_schedule(ScheduleFn f) { schedule_ = std::move(f); }
  void set_eval(EvalFn f) { eval_ = std::move(f); }
  // Weight micro-batches by their token counts (the exact large-batch mean of a token-mean loss).
  void set_token_count(TokenCountFn f) { token_count_ = std::move(f); }
  // Data parallel: combines the ranks' gradients after backward, before clipping (DataParallel::
  // reduction()). A rank's weight is its kept-label count when a token counter is set, else 1.
  void set_gradient_reduction(ReduceFn f) { reduce_ = std::move(f); }

  const TrainerState& state() const { return state_; }
  const AdamW<T, D>& optimizer() const { return optimizer_; }
  const std::vector<Var>& parameters() const { return params_; }
  int64_t total_steps() const { return total_; }
  std::string log_path() const { return out_file("train_log.jsonl"); }
  std::string plot_path() const { return out_file("loss_curve.svg"); }

  // Trains to total_steps() (from the resumed step when options.resume is set); returns the state.
  const TrainerState& run() {
    if (!options_.resume.empty()) resume();
    open_log();
    std::ostream& pout = options_.progress_out ? *options_.progress_out : std::cerr;
    Progress progress(pout, total_, !options_.progress_out && Progress::stderr_is_terminal(),
                      options_.progress_plain_every_s);
    std::optional<data::Prefetcher<Batch>> prefetch;
    if (options_.prefetch > 0 && state_.step < total_)
      prefetch.emplace(batches_, state_.step * options_.grad_accum, options_.prefetch, total_ * options_.grad_accum);
    int64_t micro = state_.step * options_.grad_accum;
    auto next_batch = [&] { return prefetch ? prefetch->next() : batches_(micro++); };

    while (state_.step < total_) {
      const auto t0 = std::chrono::steady_clock::now();
      const StepRecord r = train_step(next_batch, t0);
      state_.history.push_back(r);
      log_line(step_to_json(r));
      if (options_.progress)
        progress.update(ProgressFields{r.step, r.loss, r.lr, r.grad_norm, r.tokens, r.seconds});
      const bool last = state_.step == total_;
      if (eval_ && ((options_.eval_every > 0 && state_.step % options_.eval_every == 0) || last)) {
        const double e = evaluate();
        if (options_.progress) progress.note("step " + std::to_string(state_.step) + ": eval loss " + std::to_string(e));
      }
      if (!options_.output_dir.empty() && ((options_.save_every > 0 && state_.step % options_.save_every == 0) || last)) {
        const std::string dir = save();
        if (options_.progress) progress.note("saved " + dir);
      }
    }
    write_plot();
    return state_;
  }

  // Writes a checkpoint of the current state now (and prunes to keep_last); returns its folder.
  std::string save() {
    CTMLLM_CHECK(!options_.output_dir.empty(), "Trainer::save: no output_dir");
    const std::string dir = save_checkpoint(options_.output_dir, params_, optimizer_, state_);
    prune_checkpoints(options_.output_dir, options_.keep_last);
    write_plot();
    return dir;
  }

 private:
  template <class Next>
  StepRecord train_step(Next& next_batch, std::chrono::steady_clock::time_point t0) {
    const int64_t step = state_.step + 1;  // 1-based in records and messages
    const int64_t n = options_.grad_accum;
    std::vector<Batch> batch;
    for (int64_t m = 0; m < n; ++m) batch.push_back(next_batch());
    std::vector<double> weights = uniform_weights(n);
    double rank_weight = 1;
    if (token_count_) {
      std::vector<int64_t> counts;
      for (const Batch& b : batch) counts.push_back(token_count_(b));
      weights = token_weights(counts);
      rank_weight = 0;
      for (int64_t c : counts) rank_weight += double(c);
    }
    optimizer_.set_lr_factor(schedule_ ? schedule_(state_.step) : 1.0);
    optimizer_.zero_grad();
    double loss = 0;
    int64_t tokens = 0;
    for (int64_t m = 0; m < n; ++m) {
      LossResult<T, D> r = loss_(batch[size_t(m)]);
      CTMLLM_CHECK(r.loss.defined() && r.loss.value().numel() == 1, "Trainer: the loss function must return a scalar");
      const double l = double(r.loss.value().template to_device<Cpu>().item());
      // Data parallel: the combined loss carries a non-finite value to every rank, which all stop
      // after the reduction (one rank stopping alone would leave the others in a collective).
      if (!std::isfinite(l) && !reduce_) stop(step, "loss is " + number(l) + " (micro-batch " + std::to_string(m) + ")");
      loss += weights[size_t(m)] * l;
      tokens += r.tokens;
      r.loss.backward(Tensor<T, D>::full(r.loss.shape(), cast<T>(weights[size_t(m)])));
    }
    if (reduce_) {
      const StepReduction all = reduce_(params_, rank_weight, loss, tokens);
      if (!std::isfinite(all.loss)) stop(step, "loss is " + number(all.loss) + " (combined over the ranks)");
      loss = all.loss;
      tokens = all.tokens;
    }
    const double norm = options_.clip_norm > 0 ? clip_grad_norm(params_, options_.clip_norm) : grad_norm(params_);
    if (!std::isfinite(norm)) stop(step, "gradient norm is " + number(norm));
    const double lr = optimizer_.lr(0);
    optimizer_.step();
    optimizer_.zero_grad();
    state_.step = step;
    state_.lr_factor = optimizer_.lr_factor();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return StepRecord{step, loss, lr, norm, tokens, seconds};
  }

  double evaluate() {
    const double e = [&] {
      autograd::NoGradGuard no_grad;
      return eval_(state_.step);
    }();
    if (!std::isfinite(e)) stop(state_.step, "eval loss is " + number(e));
    state_.evals.push_back(EvalRecord{state_.step, e});
    log_line(eval_to_json(state_.evals.back()));
    return e;
  }

  static std::string number(double v) { return std::isnan(v) ? "nan" : std::isinf(v) ? (v > 0 ? "inf" : "-inf") : std::to_string(v); }

  [[noreturn]] void stop(int64_t step, const std::string& what) {
    write_plot();
    const auto ckpts = list_checkpoints(options_.output_dir);  // none without an output_dir
    fail("Trainer: step ", step, ": ", what, "; training stopped",
         ckpts.empty() ? std::string(" (no checkpoint saved)")
                       : "; the last good checkpoint is " + ckpts.back().second.string());
  }

  void resume() {
    const std::string dir = resolve_checkpoint(options_.resume, options_.output_dir);
    TrainerState s = load_checkpoint(dir, params_, optimizer_);
    CTMLLM_CHECK(s.seed == options_.seed, dir, ": written with seed ", s.seed, ", this run has seed ", options_.seed);
    CTMLLM_CHECK(s.grad_accum == options_.grad_accum, dir, ": written with grad_accum ", s.grad_accum,
                 ", this run has ", options_.grad_accum, " (the batch sequence would differ)");
    CTMLLM_CHECK(s.step <= total_, dir, ": step ", s.step, " is past this run's ", total_, " steps");
    optimizer_.set_lr_factor(s.lr_factor);
    state_ = std::move(s);
    resumed_ = true;
  }

  std::string out_file(const char* name) const {
    return options_.output_dir.empty() ? std::string() : (std::filesystem::path(options_.output_dir) / name).string();
  }

  // A fresh run starts an empty log; a resumed one rewrites it from the checkpoint's history, so
  // steps that an interrupted run logged after its last checkpoint do not appear twice.
  void open_log() {
    if (options_.output_dir.empty()) return;
    std::filesystem::create_directories(options_.output_dir);
    log_.open(log_path(), std::ios::binary | std::ios::trunc);
    CTMLLM_CHECK(log_.good(), log_path(), ": cannot open for writing");
    if (!resumed_) return;
    size_t e = 0;
    for (const StepRecord& r : state_.history) {
      log_line(step_to_json(r));
      for (; e < state_.evals.size() && state_.evals[e].step <= r.step; ++e) log_line(eval_to_json(state_.evals[e]));
    }
  }
  void log_line(const nlohmann::json& j) {
    if (!log_.is_open()) return;
    log_ << j.dump() << "\n" << std::flush;
    CTMLLM_CHECK(log_.good(), log_path(), ": write failed");
  }

  void write_plot() const {
    if (options_.output_dir.empty() || state_.history.empty()) return;
    std::vector<CurvePoint> train, eval;
    for (const StepRecord& r : state_.history) train.emplace_back(double(r.step), r.loss);
    for (const EvalRecord& r : state_.evals) eval.emplace_back(double(r.step), r.loss);
    write_loss_curve_svg(plot_path(), train, eval);
  }

  AdamW<T, D> optimizer_;
  TrainerOptions options_;
  BatchFn batches_;
  LossFn loss_;
  ScheduleFn schedule_;
  EvalFn eval_;
  TokenCountFn token_count_;
  ReduceFn reduce_;
  std::vector<Var> params_;
  int64_t total_ = 0;
  TrainerState state_;
  bool resumed_ = false;
  std::ofstream log_;
};

}  // namespace ctmllm::train
