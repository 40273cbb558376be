// GPU op timings (Google Benchmark, manual time from CUDA events around each call on the ops
// stream): GEMMs through cuBLASLt, layer_norm, rms_norm, softmax and gelu, in the shapes that
// torch_gpu_reference.py times in PyTorch; run_h200.sh prints both with their ratio. Inputs are
// random (never zeros: they run faster than real data). Without a GPU every benchmark skips.
#include <benchmark/benchmark.h>

#include "ctmllm/core.hpp"
#include "ctmllm/core/cuda/event.hpp"
#include "ctmllm/ops/activation.hpp"
#include "ctmllm/ops/matmul.hpp"
#include "ctmllm/ops/norm.hpp"
#include "ctmllm/ops/softmax.hpp"

using namespace ctmllm;

namespace {

template <class T>
Tensor<T, Cuda> device_normal(const Shape& s, uint64_t seed) {
  return Rng(seed).normal<float>(s).to<T>().template to_device<Cuda>();
}

// Times f() per iteration with device events; bytes and flops per call feed the rate counters.
template <class F>
void time_on_device(benchmark::State& state, double bytes, double flops, F&& f) {
  if (!Cuda::available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  f();  // warm-up: handles, cuBLASLt heuristics, allocator cache
  cuda::synchronize();
  cuda::Event start, stop;
  for (auto _ : state) {
    start.record();
    f();
    stop.record();
    state.SetIterationTime(cuda::elapsed_ms(start, stop) / 1e3);
  }
  state.counters["bytes_per_second"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  if (flops > 0) state.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

void gemm_bf16_8192x4096x4096(benchmark::State& state) {  // linear: x [8192, 4096] · w [4096, 4096]ᵀ + b
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 1), w = device_normal<bf16>({4096, 4096}, 2);
  const auto b = device_normal<bf16>({4096}, 3);
  time_on_device(state, 2.0 * (8192 * 4096 * 2 + 4096 * 4096), 2.0 * 8192 * 4096 * 4096,
                 [&] { benchmark::DoNotOptimize(ops::linear(x, w, b)); });
}

void gemm_f32_2048x2048x2048(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto a = device_normal<float>({2048, 2048}, 4), b = device_normal<float>({2048, 2048}, 5);
  time_on_device(state, 4.0 * 3 * 2048 * 2048, 2.0 * 2048 * 2048 * 2048,
                 [&] { benchmark::DoNotOptimize(ops::matmul(a, b)); });
}

void bmm_bf16_64x1024x128x1024(benchmark::State& state) {  // attention-shaped: [64, 1024, 128] · [64, 128, 1024]
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto a = device_normal<bf16>({64, 1024, 128}, 6), b = device_normal<bf16>({64, 128, 1024}, 7);
  time_on_device(state, 2.0 * 64 * (2 * 1024 * 128 + 1024 * 1024), 2.0 * 64 * 1024 * 1024 * 128,
                 [&] { benchmark::DoNotOptimize(ops::matmul(a, b)); });
}

void layer_norm_bf16_8192x4096(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 8), w = device_normal<bf16>({4096}, 9), b = device_normal<bf16>({4096}, 10);
  time_on_device(state, 2.0 * 2 * 8192 * 4096, 0, [&] { benchmark::DoNotOptimize(ops::layer_norm(x, w, b)); });
}

void rms_norm_bf16_8192x4096(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 11), w = device_normal<bf16>({4096}, 12);
  time_on_device(state, 2.0 * 2 * 8192 * 4096, 0, [&] { benchmark::DoNotOptimize(ops::rms_norm(x, w)); });
}

void softmax_bf16_8192x4096(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 13);
  time_on_device(state, 2.0 * 2 * 8192 * 4096, 0, [&] { benchmark::DoNotOptimize(ops::softmax(x)); });
}

void gelu_bf16_64M(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({int64_t(1) << 26}, 14);
  time_on_device(state, 2.0 * 2 * double(int64_t(1) << 26), 0, [&] { benchmark::DoNotOptimize(ops::gelu(x)); });
}

}  // namespace

BENCHMARK(gemm_bf16_8192x4096x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(gemm_f32_2048x2048x2048)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bmm_bf16_64x1024x128x1024)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(layer_norm_bf16_8192x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(rms_norm_bf16_8192x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(softmax_bf16_8192x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(gelu_bf16_64M)->UseManualTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
