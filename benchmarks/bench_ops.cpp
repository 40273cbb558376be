// CPU op benchmarks at the paper's shapes. Names match benchmarks/torch_cpu_reference.py so that
// compare_cpu.py can print our time, PyTorch's time from the same run, and the ratio.
#include <benchmark/benchmark.h>

#include "ctmllm/core.hpp"
#include "ctmllm/ops/activation.hpp"
#include "ctmllm/ops/attention.hpp"
#include "ctmllm/ops/matmul.hpp"
#include "ctmllm/ops/norm.hpp"
#include "ctmllm/ops/patch_embed.hpp"

using namespace ctmllm;

namespace {
void set_rates(benchmark::State& state, double flops_per_iter, double bytes_per_iter) {
  const double n = double(state.iterations());
  if (flops_per_iter > 0) state.counters["FLOP/s"] = benchmark::Counter(flops_per_iter * n, benchmark::Counter::kIsRate);
  if (bytes_per_iter > 0) state.counters["bytes/s"] = benchmark::Counter(bytes_per_iter * n, benchmark::Counter::kIsRate);
}

// The ViT MLP up-projection: tokens [2048, 768] x weight [3072, 768]^T.
void gemm_2048x768x3072_f32(benchmark::State& state) {
  Rng rng(0);
  const auto x = rng.normal<float>({2048, 768}), w = rng.normal<float>({3072, 768});
  for (auto _ : state) benchmark::DoNotOptimize(ops::linear(x, w).data());
  set_rates(state, 2.0 * 2048 * 768 * 3072, 4.0 * (2048 * 768 + 3072 * 768 + 2048 * 3072));
}

// Bidirectional attention at the ViT-B shape: 1 x 12 heads x 2049 tokens x 64.
void attention_vitb_f32(benchmark::State& state) {
  Rng rng(1);
  const auto q = rng.normal<float>({1, 12, 2049, 64}), k = rng.normal<float>({1, 12, 2049, 64}),
             v = rng.normal<float>({1, 12, 2049, 64});
  for (auto _ : state) benchmark::DoNotOptimize(ops::attention(q, k, v, ops::AttentionOptions<Cpu>{}).out.data());
  set_rates(state, 4.0 * 2049 * 2049 * 64 * 12, 4.0 * 4 * 12 * 2049 * 64);
}

// LayerNorm over the ViT's tokens: memory bound, counted as one read and one write of x.
void layer_norm_2049x768_f32(benchmark::State& state) {
  Rng rng(2);
  const auto x = rng.normal<float>({2049, 768}), w = rng.normal<float>({768}), b = rng.normal<float>({768});
  for (auto _ : state) benchmark::DoNotOptimize(ops::layer_norm(x, w, b, 1e-5).y.data());
  set_rates(state, 0, 2.0 * 4 * 2049 * 768);
}

// Patch embedding of a 1x1x32x256x256 CT into 2048 tokens of 768 (kernel = stride = 4x16x16).
void patch_embed_vitb_f32(benchmark::State& state) {
  Rng rng(3);
  const auto vol = rng.uniform<float>({1, 1, 32, 256, 256}), w = rng.normal<float>({768, 1024}, 0.0, 0.02),
             b = rng.normal<float>({768});
  for (auto _ : state) benchmark::DoNotOptimize(ops::patch_embed(vol, w, b, {4, 16, 16}).data());
  set_rates(state, 2.0 * 2048 * 1024 * 768, 4.0 * (32 * 256 * 256 + 768 * 1024 + 2048 * 768));
}

// SwiGLU's hidden activation silu(gate) · up over a 128-token prefill of Qwen2.5-0.5B's MLP width
// (ctmllm_bench_llm's model): one read of gate and up, one write.
void swiglu_128x4864_f32(benchmark::State& state) {
  Rng rng(4);
  const auto gate = rng.normal<float>({128, 4864}), up = rng.normal<float>({128, 4864});
  for (auto _ : state) benchmark::DoNotOptimize(ops::gated_activation(gate, up, ops::Activation::silu).data());
  set_rates(state, 0, 3.0 * 4 * 128 * 4864);
}
}  // namespace

BENCHMARK(gemm_2048x768x3072_f32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(attention_vitb_f32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(layer_norm_2049x768_f32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(patch_embed_vitb_f32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(swiglu_128x4864_f32)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_MAIN();
