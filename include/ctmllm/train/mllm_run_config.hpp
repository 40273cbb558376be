#pragma once
// MllmRunConfig: one run.json that says what train_mllm (mllm_training.hpp) trains, on what and how.
// Every key is documented in docs/TRAINING.md ("Training the 3D MLLM: run.json"); unknown keys are
// Errors naming the key (a typo must not silently train with a default). Relative paths are taken
// from the run.json's folder.
//
//   {"new_model": {"mllm": {...}, "llm": {...}, "tokenizer": "tok"},   or "model": "runs/a/model"
//    "dataset": "data/dataset.json", "output_dir": "runs/b",
//    "finetune": {"mode": "frozen"}, "optimizer": {"lr": 5e-5}, "schedule": {"name": "cosine", "warmup_ratio": 0.03},
//    "epochs": 100, "batch_size": 2, "max_length": 768, "vqa": {"fraction": 0.3, "answer_weight": 4}, ...}
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/augment/focused_inference.hpp"
#include "ctmllm/data/region_sampling.hpp"
#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/finetune.hpp"
#include "ctmllm/train/schedule.hpp"

namespace ctmllm::train {

// A model built from scratch: an MLLM config without image_token_id (the tokenizer's <im_patch>
// gives it), a Hugging Face LLM config.json object, and a tokenizer folder.
struct NewMllmSpec {
  nlohmann::json mllm, llm;
  std::string tokenizer;
  std::vector<std::string> special_tokens{"<im_patch>", "<bx_start>", "<bx_end>"};  // the first is the image token
  std::string vision_weights;  // a pretrained encoder (ViT3D::load_file: safetensors, .bin, folder); "" = random
  std::string projector_weights;  // a projector to start from (Projector::load_file), e.g. an alignment stage's; "" = random
};

// Question-answer samples (run.json "vqa"): with probability `fraction` a training item of a case
// with questions is one of its questions (drawn uniformly) instead of a region report. The
// conversation is the one focused inference asks in with `focused` (augment::focused_messages): a
// question tagged with a region gets that region's system prompt, so give the config the model
// will be asked with (`ctmllm report --focused` uses the defaults). answer_weight scales the loss
// of the answer tokens (mllm_loss): a 2-token answer weighs little beside a 100-token report.
struct VqaOptions {
  double fraction = 0;
  double answer_weight = 1;
  augment::FocusedInferenceConfig focused = augment::FocusedInferenceConfig::defaults();
};

struct MllmRunConfig {
  std::string model;                 // a folder mllm::Model::from_pretrained reads, or
  std::optional<NewMllmSpec> new_model;
  std::string dataset;               // AMOS-MM dataset JSON (data/amos.hpp)
  std::string output_dir = "runs/mllm";
  FineTuneOptions finetune;          // mode, LoRA settings, train_embeddings (seed: the run's)
  bool vision_trainable = true, projector_trainable = true;  // the paper trains both in every mode
  AdamWOptions optimizer{.lr = 5e-5, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
  ScheduleKind schedule = ScheduleKind::cosine;
  double warmup_ratio = 0.03;
  int64_t steps = 0, epochs = 0;     // steps wins when both are set; one of them is required
  int64_t batch_size = 2, grad_accum = 1, max_length = 768;
  double clip_norm = 1.0;
  bool augmentation = true;
  data::RegionProbabilities region_weights = data::kPaperRegionWeights;  // the draw when a case has all three regions
  std::optional<bool> segmentation_mask;  // unset: what the model's config says
  bool cache_volumes = true;
  int64_t save_every = 0, eval_every = 0;
  int keep_last = 3;
  uint64_t seed = 0;
  std::string resume;                // "", "latest" or a checkpoint folder
  int threads = 0;                   // 0: leave OpenMP's default
  int64_t prefetch = 2;
  VqaOptions vqa;

  static MllmRunConfig from_json(const nlohmann::json& j, const std::string& source, const std::string& base_dir = "") {
    CTMLLM_CHECK(j.is_object(), source, ": a run config must be a JSON object");
    check_keys(j, source,
               {"model", "new_model", "dataset", "output_dir", "finetune", "vision_trainable", "projector_trainable",
                "optimizer", "schedule", "steps", "epochs", "batch_size", "grad_accum", "max_length", "clip_norm",
                "augmentation", "region_weights", "segmentation_mask", "cache_volumes", "save_every", "eval_every", "keep_last", "seed",
                "resume", "threads", "prefetch", "vqa"});
    const io::JsonFields f(j, source);
    const auto path = [&](const std::string& p) {
      return std::filesystem::path(p).is_absolute() || base_dir.empty() ? p : (std::filesystem::path(base_dir) / p).string();
    };
    MllmRunConfig c;
    CTMLLM_CHECK(f.has("model") != f.has("new_model"), source, ": give exactly one of 'model' (a model folder) and 'new_model'");
    if (f.has("model")) c.model = path(f.string("model"));
    else c.new_model = parse_new_model(f.object("new_model"), j["new_model"], path);
    c.dataset = path(f.string("dataset"));
    c.output_dir = path(f.string("output_dir", c.output_dir));
    if (f.has("finetune")) c.finetune = parse_finetune(f.object("finetune"), j["finetune"]);
    c.vision_trainable = f.boolean("vision_trainable", true);
    c.projector_trainable = f.boolean("projector_trainable", true);
    if (f.has("optimizer")) {
      const io::JsonFields o = f.object("optimizer");
      check_keys(j["optimizer"], o.source(), {"lr", "betas", "eps", "weight_decay"});
      c.optimizer.lr = o.number("lr", c.optimizer.lr);
      if (o.has("betas")) {
        const nlohmann::json& b = o.raw("betas");
        CTMLLM_CHECK(b.is_array() && b.size() == 2 && b[0].is_number() && b[1].is_number(), o.source(),
                     ": 'betas' must be two numbers, got ", b.dump());
        c.optimizer.beta1 = b[0].get<double>();
        c.optimizer.beta2 = b[1].get<double>();
      }
      c.optimizer.eps = o.number("eps", c.optimizer.eps);
      c.optimizer.weight_decay = o.number("weight_decay", c.optimizer.weight_decay);
    }
    if (f.has("schedule")) {
      const io::JsonFields s = f.object("schedule");
      check_keys(j["schedule"], s.source(), {"name", "warmup_ratio"});
      try {
        c.schedule = parse_schedule_kind(s.string("name", "cosine"));
      } catch (const Error& e) {
        fail(s.source(), ": ", e.what());
      }
      c.warmup_ratio = s.number("warmup_ratio", c.warmup_ratio);
      CTMLLM_CHECK(c.warmup_ratio >= 0 && c.warmup_ratio <= 1, s.source(), ": 'warmup_ratio' must be in [0, 1]");
    }
    c.steps = f.integer("steps", 0);
    c.epochs = f.integer("epochs", 0);
    CTMLLM_CHECK(c.steps >= 0 && c.epochs >= 0 && (c.steps > 0 || c.epochs > 0), source,
                 ": set 'steps' or 'epochs' (positive integers)");
    c.batch_size = f.integer("batch_size", c.batch_size);
    c.grad_accum = f.integer("grad_accum", c.grad_accum);
    c.max_length = f.integer("max_length", c.max_length);
    CTMLLM_CHECK(c.batch_size > 0 && c.grad_accum > 0 && c.max_length > 0, source,
                 ": 'batch_size', 'grad_accum' and 'max_length' must be positive");
    c.clip_norm = f.number("clip_norm", c.clip_norm);
    CTMLLM_CHECK(c.clip_norm >= 0, source, ": 'clip_norm' must be >= 0 (0: no clipping)");
    c.augmentation = f.boolean("augmentation", true);
    if (f.has("region_weights")) {
      const io::JsonFields w = f.object("region_weights");
      check_keys(j["region_weights"], w.source(), {"chest", "abdomen", "pelvis"});
      for (data::Region r : data::kRegions) c.region_weights[size_t(r)] = w.number(data::region_name(r), 0.0);
      data::check_region_weights(c.region_weights, w.source());
    }
    if (f.has("segmentation_mask")) c.segmentation_mask = f.boolean("segmentation_mask", false);
    c.cache_volumes = f.boolean("cache_volumes", true);
    c.save_every = f.integer("save_every", 0);
    c.eval_every = f.integer("eval_every", 0);
    CTMLLM_CHECK(c.save_every >= 0 && c.eval_every >= 0, source, ": 'save_every' and 'eval_every' must be >= 0");
    c.keep_last = int(f.integer("keep_last", c.keep_last));
    const int64_t seed = f.integer("seed", 0);
    CTMLLM_CHECK(seed >= 0, source, ": 'seed' must be >= 0");
    c.seed = uint64_t(seed);
    c.finetune.seed = c.seed;
    c.resume = f.string("resume", "");
    if (!c.resume.empty() && c.resume != "latest") c.resume = path(c.resume);
    c.threads = int(f.integer("threads", 0));
    c.prefetch = f.integer("prefetch", c.prefetch);
    CTMLLM_CHECK(c.threads >= 0 && c.prefetch >= 0, source, ": 'threads' and 'prefetch' must be >= 0");
    if (f.has("vqa")) {
      const io::JsonFields v = f.object("vqa");
      check_keys(j["vqa"], v.source(), {"fraction", "answer_weight", "focused_config"});
      c.vqa.fraction = v.number("fraction", c.vqa.fraction);
      CTMLLM_CHECK(c.vqa.fraction >= 0 && c.vqa.fraction <= 1, v.source(), ": 'fraction' must be in [0, 1], got ",
                   c.vqa.fraction);
      c.vqa.answer_weight = v.number("answer_weight", c.vqa.answer_weight);
      CTMLLM_CHECK(c.vqa.answer_weight > 0, v.source(), ": 'answer_weight' must be > 0, got ", c.vqa.answer_weight);
      if (v.has("focused_config")) c.vqa.focused = augment::FocusedInferenceConfig::load(path(v.string("focused_config")));
    }
    return c;
  }

  static MllmRunConfig from_file(const std::string& path) {
    return from_json(io::read_json_file(path), path, std::filesystem::path(path).parent_path().string());
  }

 private:
  static void check_keys(const nlohmann::json& j, const std::string& source, std::initializer_list<const char*> known) {
    for (const auto& [key, _] : j.items()) {
      bool ok = false;
      for (const char* k : known) ok = ok || key == k;
      CTMLLM_CHECK(ok, source, ": unknown key '", key, "'");
    }
  }

  template <class Path>
  static NewMllmSpec parse_new_model(const io::JsonFields& f, const nlohmann::json& j, const Path& path) {
    check_keys(j, f.source(), {"mllm", "llm", "tokenizer", "special_tokens", "vision_weights", "projector_weights"});
    NewMllmSpec s;
    CTMLLM_CHECK(f.has("mllm") && j["mllm"].is_object() && f.has("llm") && j["llm"].is_object(), f.source(),
                 ": needs 'mllm' (the MLLM config) and 'llm' (a Hugging Face config.json) objects");
    s.mllm = j["mllm"];
    CTMLLM_CHECK(!s.mllm.contains("image_token_id"), f.source(),
                 ": mllm.image_token_id comes from the tokenizer's image token; leave it out");
    s.llm = j["llm"];
    s.tokenizer = path(f.string("tokenizer"));
    if (f.has("vision_weights")) s.vision_weights = path(f.string("vision_weights"));
    if (f.has("projector_weights")) s.projector_weights = path(f.string("projector_weights"));
    if (f.has("special_tokens")) {
      const nlohmann::json& t = j["special_tokens"];
      CTMLLM_CHECK(t.is_array() && !t.empty(), f.source(), ": 'special_tokens' must be a non-empty list (the image token first)");
      s.special_tokens.clear();
      for (const auto& e : t) {
        CTMLLM_CHECK(e.is_string() && !e.get<std::string>().empty(), f.source(), ": 'special_tokens' must hold non-empty strings");
        s.special_tokens.push_back(e.get<std::string>());
      }
    }
    return s;
  }

  static FineTuneOptions parse_finetune(const io::JsonFields& f, const nlohmann::json& j) {
    check_keys(j, f.source(), {"mode", "r", "alpha", "dropout", "targets", "use_rslora", "train_embeddings"});
    FineTuneOptions o;
    const std::string mode = f.string("mode", "frozen");
    if (mode == "frozen") o.mode = FineTuneMode::frozen;
    else if (mode == "lora") o.mode = FineTuneMode::lora;
    else if (mode == "dora") o.mode = FineTuneMode::dora;
    else if (mode == "full") o.mode = FineTuneMode::full;
    else fail(f.source(), ": 'mode' must be frozen, lora, dora or full, got '", mode, "'");
    o.lora.r = f.integer("r", o.lora.r);
    o.lora.lora_alpha = f.number("alpha", o.lora.lora_alpha);
    o.lora.lora_dropout = f.number("dropout", o.lora.lora_dropout);
    CTMLLM_CHECK(o.lora.r > 0 && o.lora.lora_dropout >= 0 && o.lora.lora_dropout < 1, f.source(),
                 ": LoRA needs r > 0 and dropout in [0, 1)");
    if (f.has("targets")) {
      const nlohmann::json& t = j["targets"];
      if (t.is_string()) {
        o.lora.target_regex = t.get<std::string>();  // peft: a string is one regex over the module name
      } else {
        CTMLLM_CHECK(t.is_array(), f.source(), ": 'targets' must be a list of module names or one regex string");
        for (const auto& e : t) {
          CTMLLM_CHECK(e.is_string(), f.source(), ": 'targets' must hold module names");
          o.lora.target_modules.push_back(e.get<std::string>());
        }
      }
    }
    o.lora.use_rslora = f.boolean("use_rslora", false);
    o.train_embeddings = f.boolean("train_embeddings", true);
    return o;
  }
};

}  // namespace ctmllm::train
