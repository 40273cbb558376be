// The reference fixtures with every model on the GPU: the fixture runner (support/fixture_runner.hpp)
// on Cuda tensors — LLM families (logits, padded logits, greedy generation with the KV cache on the
// device), the ViT and projectors, the tiny MLLM with frozen-LLM gradients, LoRA/DoRA, and AdamW steps
// with clipping — against the same references and tolerances as the CPU fixture tests: floats <= 1e-4
// relative, the AdamW trajectory <= 1e-5, token ids exactly.
#include <string>

#include "cuda/gpu_check.hpp"
#include "support/fixture_check.hpp"

using namespace ctmllm;
using testing::check_against_reference;

TEST_CASE("cuda fixtures: every LLM family", "[cuda][fixtures]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  testing::PoisonDeviceMemory poison;
  check_against_reference<Cuda>("llm", GENERATE("llama", "mistral", "phi3", "qwen2", "gemma"));
}

TEST_CASE("cuda fixtures: vision encoder", "[cuda][fixtures]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  testing::PoisonDeviceMemory poison;
  check_against_reference<Cuda>("vision", "vit3d");
}

TEST_CASE("cuda fixtures: projectors", "[cuda][fixtures]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  testing::PoisonDeviceMemory poison;
  check_against_reference<Cuda>("vision",
                                GENERATE("projector_spp", "projector_mlp_mix", "projector_linear", "projector_token_packer"));
}

TEST_CASE("cuda fixtures: the tiny MLLM, CT and CT + mask, frozen-LLM gradients", "[cuda][fixtures]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  testing::PoisonDeviceMemory poison;
  check_against_reference<Cuda>("mllm", "tiny");
}

TEST_CASE("cuda fixtures: peft LoRA and DoRA adapters", "[cuda][fixtures]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  testing::PoisonDeviceMemory poison;
  check_against_reference<Cuda>("lora", GENERATE("llama_r4", "llama_dora_r4"));
}

TEST_CASE("cuda fixtures: AdamW steps with clipping follow torch", "[cuda][fixtures]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  testing::PoisonDeviceMemory poison;
  check_against_reference<Cuda>("train", "llama_adamw");
}
