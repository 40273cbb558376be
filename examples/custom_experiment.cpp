// A projector ablation as the paper runs them, with a projector the library does not have: a
// user-defined module (learned-query attention pooling, M visual tokens per CT) replaces the
// model's projector through mllm::Model::set_projector, and only it trains; the ViT and the LLM
// stay frozen. Everything is made here, nothing is downloaded:
//   - synthetic CT phantoms in memory (data::make_phantom) with their reports (data::write_report);
//   - a byte-level BPE tokenizer trained on those reports (text::train_bpe);
//   - a small MLLM with a random LLM and ViT (train::new_mllm);
//   - per step a batch of (CT, region prompt, region findings) -> causal-LM loss -> AdamW.
// It prints the trainable-parameter count and the loss going down.
//
// Exit status: 0 when the mean loss of the last steps is below that of the first, 2 when not, 1 on
// an error.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ctmllm/autograd/softmax.hpp"
#include "ctmllm/data/phantom.hpp"
#include "ctmllm/data/report_writer.hpp"
#include "ctmllm/mllm/prompt.hpp"
#include "ctmllm/text/bpe_trainer.hpp"
#include "ctmllm/train/mllm_training.hpp"

using namespace ctmllm;
using Var = autograd::Variable<float>;

// M learned queries attend over the ViT's N patch tokens: softmax(Q·Kᵀ/√H)·V with K, V per-token
// Linears (E -> H), so the token count no longer depends on the volume's grid.
class AttentionPoolProjector : public projector::CustomProjector<float> {
 public:
  AttentionPoolProjector(int64_t in_dim, int64_t out_dim, int64_t tokens, Rng& rng)
      : queries_(params_.add("queries", rng.normal<float>({tokens, out_dim}))),
        key_(params_, "key", in_dim, out_dim),
        value_(params_, "value", in_dim, out_dim) {
    key_.init(rng);
    value_.init(rng);
  }
  std::string name() const override { return "attention_pool"; }
  int64_t num_tokens() const override { return queries_.size(0); }
  const autograd::Parameters<float>& parameters() const override { return params_; }
  // tokens [B, N, E] -> [B, M, H]
  Var operator()(const Var& tokens, const std::vector<Var>&) const override {
    const Var k = key_(tokens), v = value_(tokens);
    const Var scores = autograd::matmul(queries_, k, false, true);  // [B, M, N]
    return autograd::matmul(autograd::softmax(autograd::mul_scalar(scores, 1.0 / std::sqrt(double(k.size(2)))), -1), v);
  }

 private:
  autograd::Parameters<float> params_;
  Var queries_;
  nn::Linear<float> key_, value_;
};

struct Case {
  Tensor<float, Cpu> ct;  // [1, 1, D, H, W], preprocessed
  data::Report report;
};

int main(int argc, char** argv) {
  CLI::App app{"Trains a user-defined projector of a frozen 3D MLLM on synthetic CTs"};
  int cases = 8, steps = 60, batch = 4, tokens = 8;
  double lr = 1e-2;
  uint64_t seed = 0;
  app.add_option("--cases", cases, "synthetic CTs to train on")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "optimizer steps")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "cases per step")->check(CLI::PositiveNumber);
  app.add_option("--tokens", tokens, "visual tokens the projector makes per CT")->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "AdamW learning rate");
  app.add_option("--seed", seed, "seed of the data, the model and the projector");
  CLI11_PARSE(app, argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    // Phantoms at half the default resolution: the model's 32×64×64 input is reached with less work.
    data::PhantomConfig world;
    world.shape = {32, 64, 64};
    world.spacing = {6.0, 6.0, 10.0};
    std::vector<data::Phantom> phantoms;
    std::vector<data::Report> reports;
    std::vector<std::string> corpus;
    for (int i = 0; i < cases; ++i) {
      phantoms.push_back(data::make_phantom(world, data::derive_seed(seed, uint64_t(i))));
      reports.push_back(data::write_report(phantoms.back().findings, data::derive_seed(seed, uint64_t(i))));
      corpus.insert(corpus.end(), reports.back().findings.begin(), reports.back().findings.end());
    }

    const auto tokenizer = std::filesystem::temp_directory_path() / ("ctmllm_custom_experiment_" + std::to_string(seed));
    text::BpeTrainerOptions bpe;
    bpe.vocab_size = 512;
    text::train_bpe(corpus, bpe).save(tokenizer.string());
    train::NewMllmSpec spec;
    spec.tokenizer = tokenizer.string();
    spec.mllm = nlohmann::json::parse(R"({
      "vision": {"img_size": [32, 64, 64], "patch_size": [4, 16, 16], "hidden_size": 48, "num_layers": 2,
                 "num_heads": 4, "mlp_dim": 96},
      "projector": {"type": "spp", "pool": 2, "in_dim": 48, "out_dim": 64}})");
    spec.llm = nlohmann::json::parse(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024})");
    spec.llm["vocab_size"] = bpe.vocab_size;  // new_mllm grows it to hold the added special tokens
    mllm::Model<float> model = train::new_mllm<float>(spec, seed);
    std::filesystem::remove_all(tokenizer);

    // The ablation: the user module in place of the projector, everything else frozen.
    Rng rng(data::derive_seed(seed, 99));
    model.set_projector(std::make_shared<AttentionPoolProjector>(48, 64, tokens, rng));
    for (Var p : model.parameters().all()) p.set_requires_grad(false);
    for (Var p : model.custom_projector().parameters().all()) p.set_requires_grad(true);
    std::printf("model: %lld parameters, %lld trainable (projector '%s', %lld visual tokens)\n",
                (long long)model.parameters().numel(), (long long)model.parameters().numel(/*trainable_only=*/true),
                model.custom_projector().name().c_str(), (long long)model.config().visual_tokens());

    std::vector<Case> data;
    for (int i = 0; i < cases; ++i) {
      const data::Phantom& p = phantoms[size_t(i)];
      data.push_back({vision::preprocess_ct(p.ct.to<float>(), p.spacing[2], model.config().preprocess), reports[size_t(i)]});
    }
    std::printf("data: %d synthetic CTs and reports, tokenizer of %zu tokens (%.1f s)\n", cases,
                model.tokenizer().vocab_size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

    train::AdamW<float> opt(model.parameters().trainable(), {.lr = lr, .weight_decay = 0});
    const int64_t pad = mllm::SpecialIds::of(model).pad;
    std::vector<double> losses;
    for (int step = 0; step < steps; ++step) {
      std::vector<mllm::TokenSequence> seqs;
      std::vector<Tensor<float, Cpu>> cts;
      for (int b = 0; b < batch; ++b) {
        const int i = (step * batch + b) % cases;
        const data::Region region = data::kRegions[size_t(step * batch + b) / size_t(cases) % 3];
        seqs.push_back(mllm::training_sequence(model, mllm::region_messages(model, data::region_name(region)),
                                               data[size_t(i)].report.region(region)));
        cts.push_back(data[size_t(i)].ct);
      }
      const mllm::TokenBatch tb = mllm::collate(seqs, pad);
      opt.zero_grad();
      const auto out = model.forward(
          {.input_ids = tb.input_ids, .ct = ops::concat(cts, 0), .attention_mask = tb.attention_mask, .labels = tb.labels});
      out.loss.backward();
      opt.step();
      losses.push_back(out.loss.value().data()[0]);
      if (step % 5 == 0 || step == steps - 1) std::printf("step %3d  loss %.4f\n", step, losses.back());
    }

    const size_t k = std::max<size_t>(1, losses.size() / 5);
    double first = 0, last = 0;
    for (size_t i = 0; i < k; ++i) {
      first += losses[i] / double(k);
      last += losses[losses.size() - 1 - i] / double(k);
    }
    std::printf("mean loss of the first %zu steps %.4f, of the last %zu %.4f (%.1f s)\n", k, first, k, last,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return last < first ? 0 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "custom_experiment: error: %s\n", e.what());
    return 1;
  }
}
