#pragma once
// Shared by the GPU benchmarks: random device inputs and timing of a call with CUDA events on the
// ops stream (Google Benchmark's manual time). Without a GPU every benchmark skips.
#include <benchmark/benchmark.h>

#include <exception>

#include "ctmllm/core.hpp"
#include "ctmllm/core/cuda/event.hpp"

namespace ctmllm::bench_gpu {

template <class T>
Tensor<T, Cuda> device_normal(const Shape& s, uint64_t seed, double std = 1.0) {
  return Rng(seed).normal<float>(s, 0.0, std).to<T>().template to_device<Cuda>();
}

// Runs a benchmark's body; an exception (a case cuDNN refuses, out of memory) becomes this
// benchmark's error instead of ending the program, which would lose every other result with it (the
// JSON output is written at the end).
template <class Body>
void report_errors(benchmark::State& state, Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Times f() per iteration with device events; bytes and flops per call feed the rate counters.
template <class F>
void time_on_device(benchmark::State& state, double bytes, double flops, F&& f) {
  if (!Cuda::available()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  report_errors(state, [&] {
    f();  // warm-up: handles, cuBLASLt heuristics, allocator cache
    ctmllm::cuda::synchronize();
    ctmllm::cuda::Event start, stop;  // qualified: CUB (embedding) declares a global namespace cuda
    for (auto _ : state) {
      start.record();
      f();
      stop.record();
      state.SetIterationTime(ctmllm::cuda::elapsed_ms(start, stop) / 1e3);
    }
    using benchmark::Counter;
    if (bytes > 0) state.counters["bytes_per_second"] = Counter(bytes, Counter::kIsIterationInvariantRate);
    if (flops > 0) state.counters["flops"] = Counter(flops, Counter::kIsIterationInvariantRate);
  });
}

}  // namespace ctmllm::bench_gpu
