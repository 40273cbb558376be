// LLM inference on the CPU: prefill and decode tokens/s of a ~0.5 B-parameter decoder (Qwen2.5-0.5B's
// shape: hidden 896, 24 layers, 14 query / 2 kv heads, intermediate 4864, vocabulary 151936, tied
// embeddings) with random bf16 weights, against the memory-bandwidth roofline measured in the same
// process. Decode reads every weight once per step (plus the KV cache), so
//   roofline tokens/s = read bandwidth / bytes per step, and the achieved fraction is reported
// (target >= 70 %). The counters also give the peak RSS. Timings depend on the machine's load:
// measure the roofline and the model in one run, and compare only within it.

#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "ctmllm/bench/workloads.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/generate/sampling.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "peak_rss.hpp"

using namespace ctmllm;

namespace {

// The read bandwidth (bench::read_all) of a 256 MiB array, best of 5. Far past the caches, yet
// below the ~1 GB model, so the model benchmarks' peak RSS is their own.
double read_bandwidth() {
  static const double measured = [] {
    const std::vector<float> a(size_t(1) << 26, 1.0f);
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(bench::read_all(a));
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, double(a.size() * sizeof(float)) / s);
    }
    return best;
  }();
  return measured;
}

void memory_read_bandwidth(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(read_bandwidth());
  state.counters["GB/s"] = read_bandwidth() / 1e9;
}

// STREAM copy, for reference (writes cost a read for ownership, so copy is lower than read).
void memory_copy_bandwidth(benchmark::State& state) {
  std::vector<float> a(size_t(1) << 25, 1.0f), b(a.size());
  for (auto _ : state) {
    parallel_for(0, int64_t(a.size()), 1 << 20,
                 [&](int64_t lo, int64_t hi) { std::copy(a.begin() + lo, a.begin() + hi, b.begin() + lo); });
    benchmark::DoNotOptimize(b.data());
  }
  state.counters["GB/s"] = benchmark::Counter(2.0 * double(a.size() * sizeof(float)) * double(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);  // in GB/s, like memory_read_bandwidth
}

const llm::Decoder<float>& model() {
  static const llm::Decoder<float> m(bench::qwen25_05b_config(), llm::RandomWeights(0), {llm::Storage::bf16});
  return m;
}

// Prefill of a prompt (logits of the last position only, as generation asks).
void prefill(benchmark::State& state) {
  const auto& m = model();
  const int64_t len = state.range(0);
  const auto ids = bench::synthetic_ids(1, len, m.vocab_size());
  autograd::NoGradGuard no_grad;
  for (auto _ : state) {
    auto cache = m.make_cache(1, len);
    benchmark::DoNotOptimize(m.forward({.input_ids = ids, .cache = &cache, .logits_to_keep = 1}).logits.value().data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(double(len) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["peak_RSS_MiB"] = bench::peak_rss_mib();
}

// Greedy decode steps after a 128-token prefill; state.range(0) rows decode together (3: the three
// regions of one CT).
void decode(benchmark::State& state) {
  const auto& m = model();
  const int64_t batch = state.range(0), prompt = 128, steps = int64_t(state.max_iterations);
  autograd::NoGradGuard no_grad;
  auto cache = m.make_cache(batch, prompt + steps);
  const auto ids = bench::synthetic_ids(batch, prompt, m.vocab_size());
  auto logits = m.forward({.input_ids = ids, .cache = &cache, .logits_to_keep = 1}).logits.value();
  const int64_t V = m.vocab_size();
  Tensor<int64_t> next = Tensor<int64_t>::empty({batch, 1});
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (int64_t b = 0; b < batch; ++b)
      next.data()[b] = generate::argmax(std::span<const float>(logits.data() + b * V, size_t(V)));
    logits = m.forward({.input_ids = next, .cache = &cache}).logits.value();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double steps_per_s = double(state.iterations()) / seconds, bytes = bench::decode_weight_bytes(m),
               bw = read_bandwidth();
  state.counters["tokens/s"] = double(batch) * steps_per_s;
  state.counters["weight_GB/s"] = bytes * steps_per_s / 1e9;
  state.counters["read_GB/s"] = bw / 1e9;
  state.counters["roofline_fraction"] = steps_per_s * bytes / bw;
  state.counters["peak_RSS_MiB"] = bench::peak_rss_mib();
}

// Beam search's reorder of the KV cache between steps (KvCache::reorder_rows) after a 512-token
// prompt, 4 beams of the model's cache shape: rows [1, 0, 0, 2] (beams 0 and 1 trade places, beam 0
// continues twice, beam 3 is dropped): 5 row copies of float keys and values, two of them to and
// from the spare (transformers' index_select copies 4 rows of bf16: 0.4 of the bytes).
void beam_reorder(benchmark::State& state) {
  const io::LlmConfig c = bench::qwen25_05b_config();  // the cache's shape only: no model needed
  const int64_t beams = 4, prompt = 512;
  llm::KvCache<float> cache(c.num_hidden_layers, beams, c.num_key_value_heads, c.head_dim, prompt + 1);
  cache.reserve(prompt, std::vector<uint8_t>(size_t(beams * prompt), 1));
  Rng rng(0);
  for (int64_t l = 0; l < cache.layers(); ++l) {
    const Shape kv{beams, cache.kv_heads(), prompt, cache.head_dim()};
    cache.store(l, rng.uniform<float>(kv), rng.uniform<float>(kv));
  }
  cache.advance(prompt);
  const std::vector<int64_t> rows = {1, 0, 0, 2};
  for (auto _ : state) cache.reorder_rows(rows);
}

}  // namespace

BENCHMARK(memory_read_bandwidth)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(memory_copy_bandwidth)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(prefill)->Arg(128)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(decode)->Arg(1)->Iterations(32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(decode)->Arg(3)->Iterations(32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(beam_reorder)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
