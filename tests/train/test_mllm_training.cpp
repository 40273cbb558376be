// train::train_mllm end to end on a tiny synthetic AMOS-MM dataset and a tiny new model: the run
// folder holds the model, checkpoints, log and loss curve; the saved model loads and writes
// reports; a run stopped at a checkpoint and resumed logs the same losses as an uninterrupted one;
// run.json errors name the key; question-answer samples (run.json "vqa"): their tokens and labels,
// the answer weight's loss by hand and its exact accumulation, and a resumed run with them.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/data/synthetic_dataset.hpp"
#include "ctmllm/mllm/report.hpp"
#include "ctmllm/train/mllm_training.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::scratch_dir;
namespace fs = std::filesystem;

namespace {

// Four training and two validation phantoms on a small grid, written once per test process and
// removed at its end.
struct TinyDataset {
  std::string dir = scratch_dir("dataset");
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

// The tiny run's new model, its LLM parameters all trainable.
mllm::Model<float> tiny_model() {
  mllm::Model<float> m = train::new_mllm<float>(*train::MllmRunConfig::from_json(tiny_run("/tmp/unused"), "run.json").new_model, 5);
  for (autograd::Variable<float> p : m.llm().parameters().all()) p.set_requires_grad(true);
  return m;
}

data::CtSample tiny_sample(uint64_t seed, const std::string& findings, std::optional<data::Question> q = std::nullopt) {
  data::CtSample s;
  s.case_id = "x";
  s.region = data::Region::chest;
  s.image = Rng(seed).uniform<float>({1, 1, 16, 32, 32}, 0.0, 1.0);
  s.findings = findings;
  s.question = std::move(q);
  return s;
}

// The cross-entropy of every kept label of row `r`, from the logits by hand, summed in double.
double summed_ce(const Tensor<float, Cpu>& logits, const Tensor<int64_t, Cpu>& labels, int64_t r) {
  double sum = 0;
  const int64_t S = logits.size(1), V = logits.size(2);
  for (int64_t t = 0; t + 1 < S; ++t) {
    const int64_t y = labels.at(r, t + 1);
    if (y == -100) continue;
    double mx = -1e300, z = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(logits.at(r, t, v)));
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(logits.at(r, t, v)) - mx);
    sum += mx + std::log(z) - double(logits.at(r, t, y));
  }
  return sum;
}

}  // namespace

TEST_CASE("train_mllm: a tiny LoRA run with the mask input leaves a loadable model that writes reports",
          "[train][mllm_training]") {
  const std::string out = scratch_dir("lora");
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
  const std::string whole = scratch_dir("whole"), parts = scratch_dir("parts");
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
    return testing::message_of([&] { train::MllmRunConfig::from_json(j, "run.json"); });
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
  const std::string dir = scratch_dir("projector_seed");
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

TEST_CASE("a question sample is the focused-inference conversation with only the answer labelled", "[train][mllm_training][vqa]") {
  const auto model = tiny_model();
  const augment::FocusedInferenceConfig focused = augment::FocusedInferenceConfig::defaults();
  const data::Question yes_no{"Is there a pleural effusion?", "Yes.", data::Region::chest, {}};
  const data::Question choice{"Which organ is enlarged?", "B", std::nullopt, {{"A", "Liver"}, {"B", "Spleen"}}};
  const train::MllmBatch b = train::make_mllm_batch(
      model, {tiny_sample(1, "The lungs are clear."), tiny_sample(2, "", yes_no), tiny_sample(3, "", choice)}, 96, focused);
  CHECK(b.question_rows == std::vector<bool>{false, true, true});

  const mllm::SpecialIds special = mllm::SpecialIds::of(model);
  const auto expect_row = [&](int64_t r, const std::vector<text::ChatMessage>& messages, const std::string& answer) {
    std::vector<int64_t> ids = mllm::prompt_ids(model, messages);
    const size_t prompt = ids.size();
    for (int32_t id : model.tokenizer().encode(answer, false)) ids.push_back(id);
    ids.push_back(special.eos);
    for (size_t t = 0; t < ids.size(); ++t) {
      INFO("row " << r << ", token " << t);
      CHECK(b.tokens.input_ids.at(r, int64_t(t)) == ids[t]);
      CHECK(b.tokens.labels.at(r, int64_t(t)) == (t < prompt ? -100 : ids[t]));
    }
    for (int64_t t = int64_t(ids.size()); t < b.tokens.labels.size(1); ++t) CHECK(b.tokens.labels.at(r, t) == -100);
  };
  // Exactly what `ctmllm report --focused` sends: the region's system prompt, then the question.
  const std::vector<text::ChatMessage> asked = augment::focused_messages(focused.region("chest"), yes_no.question);
  REQUIRE(asked.size() == 2);
  CHECK(asked[0].content == focused.region("chest").system_prompt);
  expect_row(1, asked, "Yes.");
  // A question without a region is the user turn alone; a multiple-choice one lists its choices.
  expect_row(2, {{"user", "Which organ is enlarged? Choices: A. Liver B. Spleen"}}, "B. Spleen");
  expect_row(0, mllm::region_messages(model, "chest"), "The lungs are clear.");
  CHECK(mllm::prompt_ids(model, asked) != mllm::prompt_ids(model, {{"user", yes_no.question}}));
}

TEST_CASE("answer_weight scales the question answers' cross-entropy and keeps accumulation exact", "[train][mllm_training][vqa]") {
  const auto model = tiny_model();
  const augment::FocusedInferenceConfig focused = augment::FocusedInferenceConfig::defaults();
  const std::vector<data::CtSample> samples = {
      tiny_sample(1, "The lungs are clear. No pleural effusion is seen."),
      tiny_sample(2, "", data::Question{"Is there a pleural effusion?", "Yes.", data::Region::chest, {}})};
  const train::MllmBatch b = train::make_mllm_batch(model, samples, 96, focused);
  mllm::MllmInput<float> in;
  in.input_ids = b.tokens.input_ids;
  in.ct = b.ct;
  in.attention_mask = b.tokens.attention_mask;
  Tensor<float, Cpu> logits;
  {
    autograd::NoGradGuard no_grad;
    logits = model.forward(in).logits.value();
  }
  const double report = summed_ce(logits, b.tokens.labels, 0), answer = summed_ce(logits, b.tokens.labels, 1);
  const double n = double(b.tokens.answer_tokens);
  REQUIRE(n == double(llm::causal_lm_target_count(b.tokens.labels)));
  for (double w : {1.0, 3.0, 0.5}) {
    INFO("answer_weight " << w);
    const double loss = train::mllm_loss(model, b, w).value().item();
    CHECK(loss == Catch::Approx((report + w * answer) / n).epsilon(2e-6));
  }
  in.labels = b.tokens.labels;
  CHECK(train::mllm_loss(model, b, 1.0).value().item() == model.forward(in).loss.value().item());

  // Micro-batches seeded with their label shares give the joint batch's loss and gradients.
  const double w = 4;
  const auto params = model.llm().parameters().all();
  const auto grads = [&] {
    std::vector<Tensor<float, Cpu>> g;
    for (autograd::Variable<float> p : params) {
      g.push_back(p.grad().defined() ? p.grad().clone() : Tensor<float, Cpu>::zeros(p.shape()));
      p.zero_grad();
    }
    return g;
  };
  const double joint = train::mllm_loss(model, b, w).value().item();
  train::mllm_loss(model, b, w).backward();
  const auto joint_grads = grads();
  const train::MllmBatch b0 = train::make_mllm_batch(model, {samples[0]}, 96, focused),
                         b1 = train::make_mllm_batch(model, {samples[1]}, 96, focused);
  const std::vector<double> shares = train::token_weights({b0.tokens.answer_tokens, b1.tokens.answer_tokens});
  double accumulated = 0;
  for (const auto& [part, share] : {std::pair{&b0, shares[0]}, std::pair{&b1, shares[1]}}) {
    const auto l = train::mllm_loss(model, *part, w);
    accumulated += share * l.value().item();
    l.backward(Tensor<float, Cpu>::full({1}, float(share)));
  }
  CHECK(accumulated == Catch::Approx(joint).epsilon(2e-6));
  const auto parts_grads = grads();
  for (size_t i = 0; i < params.size(); ++i) {
    INFO(params[i].name());
    double diff = 0, scale = 0;
    for (int64_t e = 0; e < joint_grads[i].numel(); ++e) {
      diff = std::max(diff, double(std::abs(joint_grads[i].data()[e] - parts_grads[i].data()[e])));
      scale = std::max(scale, double(std::abs(joint_grads[i].data()[e])));
    }
    CHECK(diff <= 1e-5 * std::max(scale, 1e-3));
  }
}

TEST_CASE("run.json vqa: parsed, validated, and a resumed run with question samples is exact", "[train][mllm_training][vqa]") {
  const auto message = [](const nlohmann::json& j) {
    return testing::message_of([&] { train::MllmRunConfig::from_json(j, "run.json"); });
  };
  nlohmann::json j = tiny_run("/tmp/unused");
  const train::MllmRunConfig plain = train::MllmRunConfig::from_json(j, "run.json");
  CHECK(plain.vqa.fraction == 0);
  CHECK(plain.vqa.answer_weight == 1);
  CHECK(plain.vqa.focused.to_json() == augment::FocusedInferenceConfig::defaults().to_json());
  j["vqa"] = {{"fraction", 0.3}, {"answer_weight", 4}};
  const train::MllmRunConfig c = train::MllmRunConfig::from_json(j, "run.json");
  CHECK(c.vqa.fraction == 0.3);
  CHECK(c.vqa.answer_weight == 4);
  j["vqa"]["fraction"] = 1.5;
  CHECK_THAT(message(j), Catch::Contains("run.json: vqa: 'fraction' must be in [0, 1]"));
  j["vqa"]["fraction"] = "often";
  CHECK_THAT(message(j), Catch::Contains("'fraction' must be a number"));
  j["vqa"]["fraction"] = 0.3;
  j["vqa"]["answer_weight"] = 0;
  CHECK_THAT(message(j), Catch::Contains("run.json: vqa: 'answer_weight' must be > 0"));
  j["vqa"].erase("answer_weight");
  j["vqa"]["fractoin"] = 0.3;
  CHECK_THAT(message(j), Catch::Contains("unknown key 'fractoin'"));
  j["vqa"].erase("fractoin");
  j["vqa"]["focused_config"] = "/nonexistent/focused.json";
  CHECK_THAT(message(j), Catch::Contains("/nonexistent/focused.json"));

  // The focused config's system prompts, from the file `ctmllm report --focused-config` reads.
  const std::string dir = scratch_dir("vqa_config");
  fs::create_directories(dir);
  std::ofstream(dir + "/focused.json") << data::synthetic_focused_questions().to_json().dump();
  j["vqa"]["focused_config"] = "focused.json";  // relative to the run.json's folder
  const train::MllmRunConfig f = train::MllmRunConfig::from_json(j, dir + "/run.json", dir);
  CHECK(f.vqa.focused.to_json() == data::synthetic_focused_questions().to_json());
  fs::remove_all(dir);

  // Training on questions: the run resumes bit for bit, and a dataset without questions is refused.
  std::ostringstream progress;
  const std::string whole = scratch_dir("vqa_whole"), parts = scratch_dir("vqa_parts");
  const auto longer_run = [](const std::string& out) {
    nlohmann::json r = tiny_run(out);
    r["max_length"] = 192;  // the system prompt and the long fluid question take more than 96 tokens
    return r;
  };
  const auto with_vqa = [&](const std::string& out) {
    nlohmann::json r = longer_run(out);
    r["vqa"] = {{"fraction", 0.5}, {"answer_weight", 3}};
    return r;
  };
  const auto a = train::train_mllm(train::MllmRunConfig::from_json(with_vqa(whole), "run.json"), &progress);
  nlohmann::json first = with_vqa(parts);
  first["steps"] = 2;
  train::train_mllm(train::MllmRunConfig::from_json(first, "run.json"), &progress);
  nlohmann::json rest = with_vqa(parts);
  rest["resume"] = "latest";
  const auto b = train::train_mllm(train::MllmRunConfig::from_json(rest, "run.json"), &progress);
  const std::vector<double> la = logged_losses(a.log), lb = logged_losses(b.log);
  REQUIRE(la.size() == 4);
  CHECK(la == lb);
  CHECK(a.eval_loss == b.eval_loss);
  // Other losses than the run without questions (the same seed plans the same cases and regions).
  const auto no_vqa = train::train_mllm(train::MllmRunConfig::from_json(longer_run(scratch_dir("vqa_none")), "run.json"), &progress);
  CHECK(logged_losses(no_vqa.log) != la);

  nlohmann::json without = nlohmann::json::parse(std::ifstream(dataset()));
  for (auto& e : without["training"]) e.erase("question_list");
  const std::string stripped = fs::path(dataset()).parent_path().string() + "/no_questions.json";
  std::ofstream(stripped) << without.dump();
  nlohmann::json r = with_vqa(scratch_dir("vqa_refused"));
  r["dataset"] = stripped;
  CHECK_THROWS_WITH(train::train_mllm(train::MllmRunConfig::from_json(r, "run.json"), &progress),
                    Catch::Contains(stripped) && Catch::Contains("no training case has questions"));
  for (const std::string& d : {whole, parts, no_vqa.output_dir}) fs::remove_all(d);
}
