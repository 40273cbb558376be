#pragma once
// train_mllm: the 3D MLLM training run of one run.json (mllm_run_config.hpp), as the paper trains:
// per step one region per case (data::BatchPlan, PAPER.md item 8), the region's prompt and its
// findings text as the answer (or, with run.json "vqa", sometimes one of the case's questions and its
// answer), the causal-LM loss on the answer, AdamW over the ViT, the projector
// and what the fine-tuning mode trains of the LLM, under train::Trainer (accumulation, clipping,
// schedule, checkpoints, exact resume, log, loss curve). Eval is the mean validation loss.
//
//   output_dir/train_log.jsonl, loss_curve.svg, checkpoint-<step>/   (train/trainer.hpp)
//   output_dir/model/       the trained model (mllm::Model::from_pretrained reads it; LoRA/DoRA merged)
//   output_dir/adapter/     lora, dora: the LLM adapter in peft's layout, before merging
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/data/amos.hpp"
#include "ctmllm/data/sampler.hpp"
#include "ctmllm/train/mllm_batches.hpp"
#include "ctmllm/train/mllm_run_config.hpp"
#include "ctmllm/train/trainer.hpp"

namespace ctmllm::train {

// A model built from new_model: random LLM weights (llm::RandomWeights), a freshly initialised ViT
// and projector (or those of vision_weights and projector_weights), all seeded by `seed`, and the special
// tokens added (the LLM's vocabulary made large enough for them up front, so image_token_id is
// valid when the model is assembled).
template <class T = float, class D = Cpu>
mllm::Model<T, D> new_mllm(const NewMllmSpec& spec, uint64_t seed) {
  CTMLLM_CHECK(std::filesystem::is_directory(spec.tokenizer), "new_model.tokenizer: ", spec.tokenizer,
               " is not a folder (it must hold tokenizer.json or tokenizer.model)");
  text::Tokenizer tok = text::Tokenizer::from_file(spec.tokenizer);
  text::Tokenizer grown = text::Tokenizer::from_file(spec.tokenizer);  // to learn the new ids (not copyable)
  const std::vector<int32_t> ids = grown.add_special_tokens(spec.special_tokens);
  nlohmann::json mj = spec.mllm;
  mj["image_token_id"] = ids.front();
  const mllm::MllmConfig mc = mllm::MllmConfig::from_json(mj, "new_model.mllm");
  io::LlmConfig lc = io::parse_llm_config(spec.llm, "new_model.llm");
  lc.vocab_size = std::max<int64_t>(lc.vocab_size, int64_t(grown.vocab_size()));
  mllm::Model<T, D> model(mc, llm::Decoder<T, D>(lc, llm::RandomWeights(data::derive_seed(seed, 1))));
  Rng rng(data::derive_seed(seed, 2));
  model.init(rng);
  if (!spec.vision_weights.empty()) model.vision().load_file(spec.vision_weights);
  if (!spec.projector_weights.empty()) model.projector().load_file(spec.projector_weights);
  model.set_tokenizer(std::move(tok), spec.tokenizer);
  const std::vector<int32_t> added = model.add_special_tokens(spec.special_tokens);
  CTMLLM_CHECK(added == ids, "new_model: the special tokens got other ids in the model's tokenizer");
  return model;
}

template <class T = float, class D = Cpu>
mllm::Model<T, D> run_model(const MllmRunConfig& c) {
  if (c.new_model) return new_mllm<T, D>(*c.new_model, c.seed);
  mllm::Model<T, D> model = mllm::Model<T, D>::from_pretrained(c.model);
  CTMLLM_CHECK(model.has_tokenizer(), c.model, ": the model folder has no tokenizer (tokenizer.json or tokenizer.model)");
  return model;
}

// What a run did: the state after the last step, and where its results are.
struct MllmRunSummary {
  int64_t steps = 0, total_steps = 0;
  double final_loss = 0;
  std::optional<double> eval_loss;
  double seconds = 0, tokens_per_second = 0;
  int64_t trainable_parameters = 0;
  std::string output_dir, model_dir, adapter_dir, log, loss_curve;
};

// Trains as `c` says; progress goes to `progress` (nullptr: stderr, redrawn on a terminal).
inline MllmRunSummary train_mllm(const MllmRunConfig& c, std::ostream* progress = nullptr) {
  using T = float;
  using D = Cpu;
  namespace fs = std::filesystem;
  if (c.threads > 0) set_num_threads(c.threads);
  mllm::Model<T, D> model = run_model<T, D>(c);
  if (c.segmentation_mask) model.set_segmentation_mask(*c.segmentation_mask);

  for (autograd::Variable<T, D> p : model.vision().parameters().all()) p.set_requires_grad(c.vision_trainable);
  for (autograd::Variable<T, D> p : model.projector_parameters().all()) p.set_requires_grad(c.projector_trainable);
  const FineTune<T, D> ft = prepare_finetune(model.llm(), c.finetune);
  set_adapter_training(model.llm(), true);
  std::vector<autograd::Variable<T, D>> params = model.vision().parameters().trainable();
  for (const auto& p : model.projector_parameters().trainable()) params.push_back(p);
  for (const auto& p : trainable_parameters(model.llm(), ft)) params.push_back(p);
  CTMLLM_CHECK(!params.empty(), "train_mllm: nothing trains (vision and projector frozen, and the fine-tuning mode trains nothing)");
  std::set<std::string> names;
  int64_t numel = 0;
  for (const auto& p : params) {
    CTMLLM_CHECK(names.insert(p.name()).second, "train_mllm: two trainable parameters are named '", p.name(),
                 "' (checkpoints store parameters by name)");
    numel += p.value().numel();
  }

  const data::AmosDataset ds = data::read_amos_dataset(c.dataset);
  CTMLLM_CHECK(!ds.training.empty(), c.dataset, ": no training cases");
  CTMLLM_CHECK(c.vqa.fraction == 0 || std::any_of(ds.training.begin(), ds.training.end(),
                                                  [](const data::AmosCase& x) { return !x.questions.empty(); }),
               c.dataset, ": vqa.fraction is ", c.vqa.fraction, " but no training case has questions");
  const data::BatchPlan plan(ds.training, c.batch_size, c.seed, /*drop_last=*/false, c.region_weights, c.vqa.fraction);
  data::CtSampleOptions so;
  so.preprocess = model.config().preprocess;
  so.cache = c.cache_volumes;
  if (!c.augmentation) so.augment = std::nullopt;
  if (model.config().segmentation_mask) so.mask_classes = model.config().mask_num_classes;
  const data::CtSampleLoader train_loader(ds.training, so);
  so.augment = std::nullopt;
  const data::CtSampleLoader val_loader(ds.validation, so);
  const std::vector<data::PlannedItem> val_items = validation_items(ds.validation);

  TrainerOptions o;
  o.max_steps = c.steps;
  o.epochs = c.steps > 0 ? 0 : c.epochs;
  o.batches_per_epoch = plan.batches_per_epoch();
  o.grad_accum = c.grad_accum;
  o.clip_norm = c.clip_norm;
  o.eval_every = c.eval_every;
  o.save_every = c.save_every;
  o.keep_last = c.keep_last;
  o.output_dir = c.output_dir;
  o.seed = c.seed;
  o.resume = c.resume;
  o.prefetch = size_t(c.prefetch);
  o.progress_out = progress;
  Trainer<MllmBatch, T, D> trainer(
      AdamW<T, D>(params, c.optimizer), o,
      [&](int64_t i) { return make_mllm_batch(model, train_loader.load(plan.batch(i)), c.max_length, c.vqa.focused); },
      [&](const MllmBatch& b) { return LossResult<T, D>(mllm_loss(model, b, c.vqa.answer_weight), b.input_tokens); });
  trainer.set_token_count([](const MllmBatch& b) { return b.tokens.answer_tokens; });
  const int64_t total = trainer.total_steps();
  trainer.set_schedule(Schedule(c.schedule, warmup_steps_from_ratio(c.warmup_ratio, total), total));
  if (!val_items.empty())
    trainer.set_eval([&](int64_t) {
      set_adapter_training(model.llm(), false);
      const double e = mean_validation_loss(model, val_loader, val_items, c.batch_size, c.max_length);
      set_adapter_training(model.llm(), true);
      return e;
    });

  const auto t0 = std::chrono::steady_clock::now();
  const TrainerState& state = trainer.run();
  MllmRunSummary s;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.steps = state.step;
  s.total_steps = total;
  s.trainable_parameters = numel;
  double step_seconds = 0;
  int64_t tokens = 0;
  for (const StepRecord& r : state.history) {
    step_seconds += r.seconds;
    tokens += r.tokens;
  }
  s.tokens_per_second = step_seconds > 0 ? double(tokens) / step_seconds : 0;
  if (!state.history.empty()) s.final_loss = state.history.back().loss;
  if (!state.evals.empty()) s.eval_loss = state.evals.back().loss;
  s.output_dir = c.output_dir;
  s.log = trainer.log_path();
  s.loss_curve = trainer.plot_path();
  if (ft.mode == FineTuneMode::lora || ft.mode == FineTuneMode::dora) {
    s.adapter_dir = (fs::path(c.output_dir) / "adapter").string();
    save_peft_adapter(model.llm(), ft, s.adapter_dir);
    merge_adapters(model.llm());  // the paper merges after training: the saved model is a plain one
  }
  s.model_dir = (fs::path(c.output_dir) / "model").string();
  model.save_pretrained(s.model_dir);
  return s;
}

}  // namespace ctmllm::train
