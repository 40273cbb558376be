#pragma once
// `ctmllm demo`, stage by stage (docs/DEMO.md):
//   1. data       a synthetic AMOS-MM dataset of phantom CTs with their reports (data/)
//   2. tokenizer  a byte-level BPE trained on the training reports (text/bpe_trainer.hpp)
//   3. stage 1    the ViT pretrained on label maps and finding lists (train/vision_pretraining*.hpp)
//   4. stage 2    the MLLM — frozen pretrained ViT, SPP projector, a Llama trained from scratch —
//                 trained on the reports (train/mllm_training.hpp, the same path as `ctmllm train`)
//   5. evaluation reports of the held-out phantoms: untrained vs trained vs trained + each
//                 augmenter vs an "always normal" baseline; BLEU-4, ROUGE-L, finding-level P/R/F1
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/augment/default_knowledge_base.hpp"
#include "ctmllm/augment/focused_inference.hpp"
#include "ctmllm/augment/normality.hpp"
#include "ctmllm/data/labeller_table.hpp"
#include "ctmllm/data/question_writer.hpp"
#include "ctmllm/data/synthetic_dataset.hpp"
#include "ctmllm/eval/report_scores.hpp"
#include "ctmllm/mllm/report.hpp"
#include "ctmllm/text/bpe_trainer.hpp"
#include "ctmllm/train/mllm_training.hpp"
#include "ctmllm/train/vision_pretraining_run.hpp"
#include "demo/demo_settings.hpp"

namespace ctmllm::demo {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Stage 1's encoder: the demo's ViT config (input = the data layer's model input shape).
inline vision::ViT3DConfig vit_config(const DemoSettings& s) {
  vision::ViT3DConfig c;
  c.img_size = data::kModelInputShape;
  c.patch_size = {4, 8, 8};
  c.hidden_size = s.vit_hidden;
  c.num_layers = s.vit_layers;
  c.num_heads = s.vit_heads;
  c.mlp_dim = s.vit_mlp;
  c.validate("demo ViT");
  return c;
}

// The CT window of both stages (the model config's "preprocess"): wider than the paper's abdominal
// [-160, 240], whose top clips kidney stones (350-900 HU) to the same flat white as every bone.
inline vision::CtPreprocessOptions ct_window(const DemoSettings& s) {
  return {.hu_min = s.hu_min, .hu_max = s.hu_max, .size = data::kModelInputShape};
}

struct StageTimes {
  double data = 0, tokenizer = 0, stage1 = 0, stage2 = 0, evaluation = 0;
};

// 1 + 2: the dataset and a tokenizer trained on its training reports.
inline data::AmosDataset make_data(const DemoSettings& s, StageTimes& times) {
  namespace fs = std::filesystem;
  auto t = Clock::now();
  const std::string dir = (fs::path(s.out) / "data").string();
  data::write_synthetic_dataset(dir, {.training = s.training_cases, .validation = s.validation_cases, .seed = s.seed, .phantom = {}});
  const data::AmosDataset ds = data::read_amos_dataset(dir + "/dataset.json");
  times.data = seconds_since(t);
  std::printf("data: %zu training + %zu held-out phantoms in %s (%.1f s)\n", ds.training.size(), ds.validation.size(),
              dir.c_str(), times.data);

  t = Clock::now();
  std::vector<std::string> texts;
  for (const data::AmosCase& c : ds.training)
    for (const std::string& f : c.findings)
      if (!f.empty()) texts.push_back(f);
  text::BpeTrainerOptions o;
  o.vocab_size = size_t(s.vocab_size);
  o.min_frequency = 1;  // the reports are repetitive: a frequency floor stops the merges early
  const text::TrainedBpe bpe = text::train_bpe(texts, o);
  bpe.save((fs::path(s.out) / "tokenizer").string());
  times.tokenizer = seconds_since(t);
  std::printf("tokenizer: byte-level BPE of %zu tokens from %zu report sections (%.1f s)\n", bpe.tokens.size(),
              texts.size(), times.tokenizer);
  return ds;
}

// What stage 1 hands stage 2: the pretrained encoder and the projector to start from.
struct Stage1Weights {
  std::string vision, projector;
};

// Stage 2's projector: SPP pooling the 8x8x8 patch grid to 2x2x2 tokens, plus one summary token
// per finding kind (projector/spp.hpp) carrying that kind's strongest patch. Measured (docs/DEMO.md):
// a Llama trained from scratch did not learn to pick the one pooled token of 64 showing a finding,
// and out of one summary token holding all seven kinds it learned to read four or five.
inline nlohmann::json projector_json(const DemoSettings& s) {
  return {{"type", "spp"},
          {"pool", s.projector_pool},
          {"summary_token", "max"},
          {"summary_channels", {data::label::kNumOrgans, data::kNumFindingKinds}},
          {"in_dim", s.vit_hidden},
          {"out_dim", s.llm_hidden}};
}

// The projector stage 2 starts from: seeded as usual, then its first layer set to stage 1's finding
// classifier — rows kNumOrgans.. are the finding-class rows of stage 1's patch head, every other row
// zero — so the summary token starts out as stage 1's detector (one channel per finding kind, maxed
// over the volume) and nothing else, and stage 2 trains from there. Each finding row is shifted and
// scaled so that its summary channel reads about +4 on training cases with that finding and -4 on
// those without, its best-F1 threshold at 0: the raw logits of the focal kinds vary over a few units
// around an arbitrary level. Both choices were measured (docs/DEMO.md): a Llama trained from scratch
// stated only the kinds whose channels stood out, and with random and organ rows beside the finding
// rows — maxed over the volume, they vary from case to case with the anatomy — it learned to read
// four of seven channels even when stage 1 detected every kind perfectly. The shift is stage 1's
// calibrated presence bias and the scale comes from the calibration's scores, so no encoder runs here.
inline std::string write_projector_seed(const DemoSettings& s, const train::VisionPretrainingHeads<float>& heads,
                                        const train::PresenceCalibration& calibration) {
  namespace fs = std::filesystem;
  const vision::ViT3DConfig vc = vit_config(s);
  projector::Projector<float> p(projector::ProjectorConfig::from_json(projector_json(s), "demo projector", vc.grid()));
  Rng rng(data::derive_seed(s.seed, 13));
  p.init(rng);
  const Tensor<float> head_w = heads.parameters().get("patch_head.weight").value();
  const Tensor<float> head_b = heads.parameters().get("patch_head.bias").value();
  const Tensor<float> presence_bias = heads.parameters().get("presence_bias").value();
  Tensor<float> w = p.parameters().get("projector.0.weight").value(), b = p.parameters().get("projector.0.bias").value();
  CTMLLM_CHECK(w.size(0) >= head_w.size(0), "demo: the LLM width ", w.size(0), " is below the ", head_w.size(0),
               " patch classes the projector is seeded with");
  constexpr int K = data::kNumFindingKinds;
  const int64_t first = data::label::kNumOrgans;
  w.fill(0.0f);
  b.fill(0.0f);
  w.slice(0, first, first + K).copy_from(head_w.slice(0, first, first + K));
  for (int k = 0; k < K; ++k) {
    const auto& scored = calibration.scores[size_t(k)];
    CTMLLM_CHECK(!scored.empty(), "demo: stage 1 calibrated no presence threshold to seed the projector with");
    double with = 0, without = 0, n_with = 0;
    for (const auto& [score, present] : scored) (present ? with : without) += score, n_with += present;
    const double n_without = double(scored.size()) - n_with;
    const double spread = n_with > 0 && n_without > 0 ? with / n_with - without / n_without : 0;
    const double scale = spread > 0 ? std::min(4.0, 8.0 / spread) : 1.0;
    Tensor<float> row = w.slice(0, first + k, first + k + 1);
    for (int64_t i = 0; i < row.size(1); ++i) row.at(0, i) = float(scale * row.at(0, i));
    b.at(first + k) = float(scale * (double(head_b.at(first + k)) + double(presence_bias.at(k))));
  }
  const std::string file = (fs::path(s.out) / "projector_stage1.safetensors").string();
  io::SafeTensorsWriter out;
  for (const auto& q : p.parameters().all()) out.add(q.name(), q.value());
  out.write(file);
  return file;
}

// 3: pretrains the encoder, prints held-out detection, saves the ViT's weights and the projector seed.
inline Stage1Weights run_stage1(const DemoSettings& s, const data::AmosDataset& ds, StageTimes& times) {
  namespace fs = std::filesystem;
  const auto t = Clock::now();
  const vision::ViT3DConfig vc = vit_config(s);
  const train::VisionExampleOptions eo{.preprocess = ct_window(s)};
  const std::vector<train::VisionExample> training = train::load_vision_examples(ds.training, vc.patch_size, eo);
  const std::vector<train::VisionExample> held_out = train::load_vision_examples(ds.validation, vc.patch_size, eo);
  vision::ViT3D<float> vit(vc);
  Rng rng(data::derive_seed(s.seed, 11));
  vit.init(rng);
  train::VisionPretrainingHeads<float> heads(vc.hidden_size);
  heads.init(rng);
  std::printf("stage 1: pretraining the ViT (%lld parameters, %lld patches of 4x8x8) on label maps and finding lists\n",
              (long long)vit.parameters().numel(), (long long)vc.num_patches());
  train::VisionPretrainingOptions o;
  o.steps = s.stage1_steps;
  o.batch = s.stage1_batch;
  o.lr = s.stage1_lr;
  o.warmup = std::max(1, s.stage1_steps / 15);
  o.seed = data::derive_seed(s.seed, 12);
  o.log_every = std::max(1, s.stage1_steps / 10);
  o.on_log = [&](int step, double patch, double finding, double presence) {
    std::printf("  step %4d/%d  loss: patch %.3f  finding %.3f  presence %.3f\n", step, o.steps, patch, finding, presence);
    std::fflush(stdout);
  };
  const train::VisionPretrainingResult trained = train::pretrain_vision(vit, heads, training, o);
  const train::DetectionResult d = train::evaluate_detection(vit, heads, held_out);
  times.stage1 = seconds_since(t);
  std::printf("  held-out detection F1 (presence of each finding kind):");
  for (const auto& k : d.scores.per_kind) std::printf(" %s %.2f", k.kind.c_str(), k.f1);
  std::printf("; patches classed right %.1f%%  (%.1f s)\n", 100 * d.patch_accuracy, times.stage1);
  Stage1Weights out{(fs::path(s.out) / "vision_stage1.safetensors").string(), write_projector_seed(s, heads, trained.calibration)};
  io::SafeTensorsWriter w;
  for (const auto& p : vit.parameters().all()) w.add(p.name(), p.value());
  w.write(out.vision);
  return out;
}

// 4: the run config of stage 2 — what `ctmllm train --config` would read.
inline train::MllmRunConfig stage2_config(const DemoSettings& s, const Stage1Weights& stage1) {
  namespace fs = std::filesystem;
  const vision::ViT3DConfig vc = vit_config(s);
  train::NewMllmSpec spec;
  spec.mllm = {{"vision",
                {{"img_size", vc.img_size},
                 {"patch_size", vc.patch_size},
                 {"hidden_size", vc.hidden_size},
                 {"num_layers", vc.num_layers},
                 {"num_heads", vc.num_heads},
                 {"mlp_dim", vc.mlp_dim}}},
               {"projector", projector_json(s)},
               {"preprocess", {{"hu_min", s.hu_min}, {"hu_max", s.hu_max}}}};
  spec.tokenizer = (fs::path(s.out) / "tokenizer").string();
  // The LLM's vocabulary is the tokenizer's (new_mllm adds room for the special tokens).
  const int64_t vocab = int64_t(text::Tokenizer::from_file(spec.tokenizer).vocab_size());
  spec.llm = {{"model_type", "llama"},
              {"vocab_size", vocab},
              {"hidden_size", s.llm_hidden},
              {"intermediate_size", s.llm_intermediate},
              {"num_hidden_layers", s.llm_layers},
              {"num_attention_heads", s.llm_heads},
              {"num_key_value_heads", s.llm_kv_heads},
              {"max_position_embeddings", 1024},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 10000.0},
              {"tie_word_embeddings", false}};
  spec.vision_weights = stage1.vision;
  spec.projector_weights = stage1.projector;
  train::MllmRunConfig c;
  c.new_model = spec;
  c.dataset = (fs::path(s.out) / "data" / "dataset.json").string();
  c.output_dir = (fs::path(s.out) / "mllm").string();
  c.finetune.mode = train::FineTuneMode::full;  // the LLM starts from nothing: all of it learns
  c.vision_trainable = false;                    // stage 1's encoder is kept as pretrained
  c.region_weights = {1.0 / 3, 1.0 / 3, 1.0 / 3};  // the phantoms' findings are spread over the regions
  c.optimizer = {.lr = s.stage2_lr, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.0};
  c.schedule = train::ScheduleKind::cosine;
  c.warmup_ratio = 0.05;
  c.steps = s.stage2_steps;
  c.batch_size = s.stage2_batch;
  c.max_length = 512;
  c.eval_every = std::max(1, s.stage2_steps / 4);
  c.seed = data::derive_seed(s.seed, 21);
  // Some samples are the world's yes/no questions, asked as focused inference asks them, their
  // answers weighted up (a two-token answer against a hundred-token report): what lets the
  // trained model answer the focused-inference augmenter.
  c.vqa = {.fraction = s.vqa_fraction, .answer_weight = s.answer_weight, .focused = data::synthetic_focused_questions()};
  return c;
}

// 5: every held-out case's reports from one system (a model, or a fixed text per region).
using Reports = eval::RegionReports;

inline Reports model_reports(const mllm::Model<float>& model, const data::AmosDataset& ds, int64_t max_new_tokens) {
  Reports out;
  mllm::AnswerOptions o;
  o.generation.max_new_tokens = max_new_tokens;
  o.generation.repetition_penalty = 1.0;
  const std::vector<std::string> regions(eval::kReportRegions.begin(), eval::kReportRegions.end());
  for (const data::AmosCase& c : ds.validation) {
    const Tensor<float> ct = vision::preprocess_ct(io::read_nifti(c.image), model.config().preprocess);
    const std::vector<mllm::Answer> a = mllm::write_reports(model, ct, Tensor<float>(), regions, o);
    for (size_t r = 0; r < regions.size(); ++r) out[c.id][regions[r]] = a[r].text;
  }
  return out;
}

inline Reports references(const data::AmosDataset& ds) {
  Reports out;
  for (const data::AmosCase& c : ds.validation)
    for (size_t r = 0; r < eval::kReportRegions.size(); ++r) out[c.id][eval::kReportRegions[r]] = c.findings[r];
  return out;
}

// The "always normal" baseline: every case gets the report of a phantom without findings.
inline Reports always_normal(const data::AmosDataset& ds, uint64_t seed) {
  const data::Report normal = data::write_report({}, seed);
  Reports out;
  for (const data::AmosCase& c : ds.validation)
    for (size_t r = 0; r < eval::kReportRegions.size(); ++r) out[c.id][eval::kReportRegions[r]] = normal.findings[r];
  return out;
}

// The paper's focused inference with the world's questions: each question of a region is asked in
// its own conversation about the case's CT (encoded once), and a "yes" puts the kind's sentence first.
inline Reports with_focused(const mllm::Model<float>& model, const data::AmosDataset& ds, Reports reports, uint64_t seed) {
  const augment::FocusedInferenceConfig fc = data::synthetic_focused_questions();
  mllm::AnswerOptions o;
  o.generation.do_sample = true;
  o.generation.temperature = fc.temperature;
  o.generation.top_p = fc.top_p;
  o.generation.max_new_tokens = fc.max_new_tokens;
  for (const data::AmosCase& c : ds.validation) {
    const Tensor<float> ct = vision::preprocess_ct(io::read_nifti(c.image), model.config().preprocess);
    const auto visual = mllm::encode_ct(model, ct, Tensor<float>());
    for (auto& [region, text] : reports.at(c.id)) {
      if (!fc.regions.count(region)) continue;
      const auto ask = [&](const std::string& question) {
        o.generation.seed = seed++;
        return mllm::answer(model, visual, {augment::focused_messages(fc.region(region), question)}, o).front().text;
      };
      text = augment::focused_inference(text, region, fc, ask).report;
    }
  }
  return reports;
}

inline Reports with_normality(Reports reports) {
  const augment::KnowledgeBase kb = augment::default_knowledge_base();
  for (auto& [id, regions] : reports)
    for (auto& [region, text] : regions) text = augment::augment_normality(text, region, kb).report;
  return reports;
}

struct SystemScores {
  std::string name;
  eval::ReportScores scores;
};

inline void print_table(const std::vector<SystemScores>& systems) {
  std::printf("\n%-28s %7s %8s %10s %8s %6s\n", "held-out reports", "BLEU-4", "ROUGE-L", "precision", "recall", "F1");
  for (const auto& s : systems) {
    const auto& o = s.scores.overall;
    std::printf("%-28s %7.2f %8.3f %10.3f %8.3f %6.3f\n", s.name.c_str(), o.bleu, o.rouge.rougeL.fmeasure,
                o.findings.micro.precision, o.findings.micro.recall, o.findings.micro.f1);
  }
  std::printf("\nfinding-level F1 per kind (support = held-out reports stating it)\n%-26s %8s", "kind", "support");
  for (const auto& s : systems) std::printf(" %12.12s", s.name.c_str());
  std::printf("\n");
  const auto& kinds = systems.front().scores.overall.findings.per_kind;
  for (size_t k = 0; k < kinds.size(); ++k) {
    std::printf("%-26s %8lld", kinds[k].kind.c_str(), (long long)kinds[k].support());
    for (const auto& s : systems) std::printf(" %12.3f", s.scores.overall.findings.per_kind[k].f1);
    std::printf("\n");
  }
}

inline nlohmann::json scores_json(const std::vector<SystemScores>& systems) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& s : systems) {
    const auto& o = s.scores.overall;
    nlohmann::json kinds = nlohmann::json::object();
    for (const auto& k : o.findings.per_kind)
      kinds[k.kind] = {{"precision", k.precision}, {"recall", k.recall}, {"f1", k.f1}, {"support", k.support()}};
    j[s.name] = {{"bleu4", o.bleu},
                 {"rougeL", o.rouge.rougeL.fmeasure},
                 {"precision", o.findings.micro.precision},
                 {"recall", o.findings.micro.recall},
                 {"f1", o.findings.micro.f1},
                 {"per_kind", kinds}};
  }
  return j;
}

// The whole demo; returns the trained system's held-out scores.
inline eval::ReportScores run_demo(const DemoSettings& s) {
  namespace fs = std::filesystem;
  const auto t_all = Clock::now();
  if (s.threads > 0) set_num_threads(s.threads);
  fs::create_directories(s.out);
  StageTimes times;
  const data::AmosDataset ds = make_data(s, times);
  const Stage1Weights stage1 = run_stage1(s, ds, times);

  auto t = Clock::now();
  const train::MllmRunConfig rc = stage2_config(s, stage1);
  std::printf("stage 2: training the MLLM (frozen ViT, SPP projector + summary tokens, Llama %lldx%lld from scratch), %d steps of %d\n",
              (long long)s.llm_layers, (long long)s.llm_hidden, s.stage2_steps, s.stage2_batch);
  std::fflush(stdout);
  const train::MllmRunSummary summary = train::train_mllm(rc);
  times.stage2 = seconds_since(t);
  std::printf("  %lld trainable parameters, final loss %.3f%s, %.0f tokens/s (%.1f s)\n",
              (long long)summary.trainable_parameters, summary.final_loss,
              summary.eval_loss ? (", held-out loss " + std::to_string(*summary.eval_loss).substr(0, 5)).c_str() : "",
              summary.tokens_per_second, times.stage2);

  t = Clock::now();
  const eval::FindingLabeller labeller(data::synthetic_labeller_table());
  const Reports refs = references(ds);
  const auto trained = mllm::Model<float>::from_pretrained(summary.model_dir);
  const auto untrained = train::new_mllm<float>(*rc.new_model, rc.seed);
  const Reports trained_reports = model_reports(trained, ds, s.max_new_tokens);
  std::vector<SystemScores> systems;
  systems.push_back({"always normal", eval::score_region_reports(always_normal(ds, s.seed), refs, labeller)});
  systems.push_back({"untrained", eval::score_region_reports(model_reports(untrained, ds, s.max_new_tokens), refs, labeller)});
  systems.push_back({"trained", eval::score_region_reports(trained_reports, refs, labeller)});
  systems.push_back({"trained + normality", eval::score_region_reports(with_normality(trained_reports), refs, labeller)});
  systems.push_back({"trained + focused", eval::score_region_reports(with_focused(trained, ds, trained_reports, s.seed), refs, labeller)});
  times.evaluation = seconds_since(t);
  print_table(systems);

  // Beside the run: scores, sample reports, the focused-inference questions (for `ctmllm report
  // --focused-config`), the loss curve (written by the trainer).
  std::ofstream(fs::path(s.out) / "scores.json") << scores_json(systems).dump(2) << "\n";
  std::ofstream(fs::path(s.out) / "focused_questions.json") << data::synthetic_focused_questions().to_json().dump(2) << "\n";
  nlohmann::json samples = nlohmann::json::array();
  for (const data::AmosCase& c : ds.validation) {
    if (samples.size() == 5) break;
    samples.push_back({{"case", c.id}, {"reference", refs.at(c.id)}, {"generated", trained_reports.at(c.id)}});
  }
  std::ofstream(fs::path(s.out) / "sample_reports.json") << samples.dump(2) << "\n";
  const auto& first = samples.front();
  std::printf("\nsample held-out case %s\n", first["case"].get<std::string>().c_str());
  for (const char* r : eval::kReportRegions)
    std::printf("  %-8s reference: %s\n  %-8s generated: %s\n", r, first["reference"][r].get<std::string>().c_str(), "",
                first["generated"][r].get<std::string>().c_str());
  std::printf("\ntimes: data %.0f s, tokenizer %.1f s, stage 1 %.0f s, stage 2 %.0f s, evaluation %.0f s; total %.0f s\n",
              times.data, times.tokenizer, times.stage1, times.stage2, times.evaluation, seconds_since(t_all));
  std::printf("written: %s/{scores.json, sample_reports.json, focused_questions.json}, %s (loss curve), %s (model)\n", s.out.c_str(),
              summary.loss_curve.c_str(), summary.model_dir.c_str());
  return systems[2].scores;
}

}  // namespace ctmllm::demo
