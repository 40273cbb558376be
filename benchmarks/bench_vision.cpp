// The vision side at the paper's sizes: the M3D ViT-B forward on one 1×1×32×256×256 CT and the SPP
// projector to a 4096-wide LLM, random weights, inference (no graph recorded). PyTorch's figures for
// the same workloads come from tools/bench_torch_cpu.py (vit3d_b_fwd_fp32_s, spp_to4096_s) run on the
// same machine at the same time.
#include <benchmark/benchmark.h>

#include "ctmllm/bench/workloads.hpp"
#include "ctmllm/core.hpp"
#include "ctmllm/projector/spp.hpp"
#include "ctmllm/vision/vit3d.hpp"
#include "peak_rss.hpp"

using namespace ctmllm;

namespace {

// ViT-B: 2048 patches + CLS, 12 blocks of width 768, 12 heads, MLP 3072 (≈ 506 GFLOP).
void vit3d_b_fwd_fp32(benchmark::State& state) {
  vision::ViT3D<float> vit(vision::ViT3DConfig{});
  Rng rng(0);
  vit.init(rng);
  const autograd::Variable<float> x(rng.uniform<float>({1, 1, 32, 256, 256}));
  autograd::NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(vit.forward(x).tokens.value().data());
  const double flops = bench::vit3d_forward_flops(vit.config());
  state.counters["FLOP/s"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["peak_RSS_MiB"] = bench::peak_rss_mib();
}

// SPP: 2048 tokens of 768 on 8×16×16 -> avg_pool3d(2) -> 256 tokens -> Linear(768, 4096), GELU, Linear(4096, 4096).
void spp_to4096_fp32(benchmark::State& state) {
  projector::ProjectorConfig c;
  c.out_dim = 4096;
  projector::SpatialPoolingProjector<float> spp(c);
  Rng rng(1);
  spp.init(rng);
  const autograd::Variable<float> x(rng.normal<float>({1, 2048, 768}));
  autograd::NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(spp(x).value().data());
  const double flops = 2.0 * 256 * (768 * 4096 + 4096 * 4096);
  state.counters["FLOP/s"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(vit3d_b_fwd_fp32)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(3);
BENCHMARK(spp_to4096_fp32)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
