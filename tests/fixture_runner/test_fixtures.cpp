// Every shipped fixture through the fixture runner (the code `ctmllm_fixture` runs): each output it
// writes matches the reference key of the same name — floats <= 1e-4 relative (the AdamW trajectory,
// losses, norms and final weights, <= 1e-5), token ids exactly — and every reference output of the
// kind is produced (support/fixture_check.hpp; tests/cuda/test_cuda_fixtures.cu runs them on the GPU).
#include <string>

#include "support/fixture_check.hpp"

using ctmllm::testing::check_against_reference;

TEST_CASE("fixture runner: every LLM family", "[fixtures][llm]") {
  check_against_reference("llm", GENERATE("llama", "mistral", "phi3", "qwen2", "gemma"));
}

TEST_CASE("fixture runner: vision encoder", "[fixtures][vision]") { check_against_reference("vision", "vit3d"); }

TEST_CASE("fixture runner: projectors", "[fixtures][projector]") {
  check_against_reference("vision", GENERATE("projector_spp", "projector_mlp_mix", "projector_linear", "projector_token_packer"));
}

TEST_CASE("fixture runner: the tiny MLLM, CT and CT + mask, frozen-LLM gradients", "[fixtures][mllm]") {
  check_against_reference("mllm", "tiny");
}

TEST_CASE("fixture runner: peft LoRA and DoRA adapters, logits, loss, gradients, merged logits", "[fixtures][lora]") {
  check_against_reference("lora", GENERATE("llama_r4", "llama_dora_r4"));
}

TEST_CASE("fixture runner: AdamW steps with clipping follow torch", "[fixtures][train]") {
  check_against_reference("train", "llama_adamw");
}
