#pragma once
// The demo's settings: sizes of the synthetic dataset, the two training stages and the evaluation.
// The defaults are the measured recipe (docs/DEMO.md): under 10 minutes on a 2-core CPU; --quick
// shrinks everything to about a minute.
#include <cstdint>
#include <string>

namespace ctmllm::demo {

struct DemoSettings {
  std::string out = "runs/demo";
  uint64_t seed = 1;
  int threads = 0;
  // Data.
  int training_cases = 800, validation_cases = 60;
  // The CT window (HU) of both stages, see run_demo.hpp's ct_window.
  double hu_min = -160, hu_max = 320;
  // Tokenizer.
  int vocab_size = 1024;
  // Stage 1: the vision encoder, pretrained on label maps and finding lists.
  int64_t vit_hidden = 128, vit_layers = 2, vit_heads = 4, vit_mlp = 256;
  int stage1_steps = 900, stage1_batch = 4;
  double stage1_lr = 2e-3;
  // Stage 2: the MLLM (encoder frozen; projector and the LLM, trained from scratch, learn).
  int64_t projector_pool = 4;  // 8x8x8 patches -> 2x2x2 tokens, + the summary token
  int64_t llm_hidden = 192, llm_layers = 3, llm_intermediate = 512;
  // 12 query heads of 16 dimensions and 4 KV heads: stage 2 read every finding kind in three
  // stage-2 seeds of four, against two of four with 6 of 32 and 2 (docs/DEMO.md, "What limits it" 8);
  // four of four since the summary channels skip the GELU ("What limits it" 9).
  int64_t llm_heads = 12, llm_kv_heads = 4;
  int stage2_steps = 1600, stage2_batch = 8;
  double stage2_lr = 1e-3;
  double vqa_fraction = 0.3, answer_weight = 30;  // yes/no question samples (run.json "vqa")
  // Evaluation.
  int64_t max_new_tokens = 160;

  // About a minute: a smoke run of every stage (the F1 target is for the defaults).
  void make_quick() {
    training_cases = 48;
    validation_cases = 12;
    stage1_steps = 40;
    stage2_steps = 40;
    max_new_tokens = 48;
  }
};

}  // namespace ctmllm::demo
