// A training step on the CPU: forward, causal-LM loss, backward, global-norm clipping (1.0) and an
// AdamW update over every parameter, float32, for
//   tiny  the fixture Llama (tests/fixtures/train/llama_adamw/base: hidden 64, 2 layers), batch 2 × 64,
//   mid   benchmarks/train_mid_llama.json (hidden 512, 4 layers, 8 heads / 2 kv, vocabulary 8192,
//         19.7 M parameters) with random weights, batch 2 × 256.
// PyTorch's same step: torch_cpu_reference.py --suite train (LlamaForCausalLM, torch.optim.AdamW).
// FLOP/s counts 6 · parameters · tokens (the matmul work of forward + backward), without attention.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/clip.hpp"

using namespace ctmllm;

namespace {

// Token ids every position keeps as a label (the same formula as the reference script).
Tensor<int64_t> batch_ids(int64_t batch, int64_t seq, int64_t vocab) {
  Tensor<int64_t> ids = Tensor<int64_t>::empty({batch, seq});
  for (int64_t i = 0; i < ids.numel(); ++i) ids.data()[i] = (i * 7919 + 13) % vocab;
  return ids;
}

void train_step(benchmark::State& state, llm::Decoder<float> model, int64_t batch, int64_t seq) {
  const std::vector<autograd::Variable<float>> params = model.parameters().all();
  train::AdamW<float> opt(params, {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
  const Tensor<int64_t> ids = batch_ids(batch, seq, model.vocab_size());
  for (auto _ : state) {
    opt.zero_grad();
    const auto loss = llm::causal_lm_loss(model.forward({.input_ids = ids}).logits, ids);
    loss.backward();
    benchmark::DoNotOptimize(train::clip_grad_norm(params, 1.0));
    opt.step();
  }
  const double tokens = double(batch * seq) * double(state.iterations());
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["FLOP/s"] = benchmark::Counter(6.0 * double(model.parameters().numel()) * tokens,
                                                benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.counters["params_M"] = double(model.parameters().numel()) / 1e6;
}

void train_step_tiny_llama(benchmark::State& state) {
  train_step(state, llm::Decoder<float>::from_pretrained(std::string(CTMLLM_SOURCE_DIR) + "/tests/fixtures/train/llama_adamw/base"), 2, 64);
}

void train_step_mid_llama(benchmark::State& state) {
  const io::LlmConfig c = io::load_llm_config(std::string(CTMLLM_SOURCE_DIR) + "/benchmarks/train_mid_llama.json");
  train_step(state, llm::Decoder<float>(c, llm::RandomWeights(0)), 2, 256);
}

}  // namespace

BENCHMARK(train_step_tiny_llama)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(train_step_mid_llama)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
