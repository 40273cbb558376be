// Writes a small random 3D MLLM folder (the layout of docs/MLLM.md) to try the report pipeline
// without a trained model: a byte-level BPE tokenizer trained on synthetic reports, a Llama decoder
// with random weights, a freshly initialised ViT and spatial-pooling projector. Its reports are
// noise, but every stage runs; the CI run of embed_minimal reads the folder this writes.
//
//   make_tiny_model --out tiny_model && embed_minimal --model tiny_model --ct scan.nii.gz
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ctmllm/data/phantom.hpp"
#include "ctmllm/data/report_writer.hpp"
#include "ctmllm/text/bpe_trainer.hpp"
#include "ctmllm/train/mllm_training.hpp"

using namespace ctmllm;

int main(int argc, char** argv) {
  CLI::App app{"Writes a small random 3D MLLM folder (reports are noise; every stage runs)"};
  std::string out;
  uint64_t seed = 0;
  size_t vocab = 512;
  app.add_option("--out", out, "the model folder to write")->required();
  app.add_option("--seed", seed, "seed of the weights and of the tokenizer's corpus");
  app.add_option("--vocab", vocab, "tokenizer vocabulary size");
  CLI11_PARSE(app, argc, argv);
  try {
    // The tokenizer's corpus: reports of sampled synthetic patients (no volume is rasterized).
    const data::PhantomConfig world;
    std::vector<std::string> corpus;
    for (uint64_t i = 0; i < 200; ++i) {
      const uint64_t s = data::derive_seed(seed, i);
      const data::Report r = data::write_report(data::sample_anatomy(data::phantom_extent(world), world.prevalence, s).findings, s);
      corpus.insert(corpus.end(), r.findings.begin(), r.findings.end());
    }
    text::BpeTrainerOptions bpe;
    bpe.vocab_size = vocab;
    const std::string tokenizer = (std::filesystem::path(out) / "tokenizer").string();
    text::train_bpe(corpus, bpe).save(tokenizer);

    train::NewMllmSpec spec;
    spec.tokenizer = tokenizer;
    spec.mllm = nlohmann::json::parse(R"({
      "vision": {"img_size": [32, 64, 64], "patch_size": [4, 16, 16], "hidden_size": 48, "num_layers": 2,
                 "num_heads": 4, "mlp_dim": 96},
      "projector": {"type": "spp", "pool": 2, "in_dim": 48, "out_dim": 64}})");
    spec.llm = nlohmann::json::parse(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024})");
    spec.llm["vocab_size"] = vocab;  // new_mllm grows it to hold the added special tokens
    const mllm::Model<float> model = train::new_mllm<float>(spec, seed);
    model.save_pretrained(out);
    std::filesystem::remove_all(tokenizer);  // save_pretrained copied it into llm/
    std::printf("wrote %s: %lld parameters, %lld visual tokens, vocabulary %lld\n", out.c_str(),
                (long long)model.parameters().numel(), (long long)model.config().visual_tokens(),
                (long long)model.llm().vocab_size());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_tiny_model: error: %s\n", e.what());
    return 1;
  }
}
