// Tokenizer encoding speed on report text with the real Llama-3 tokenizer, one report (line) at a
// time on one thread. tokenizers_reference.py times HF tokenizers on the same lines.
#include <benchmark/benchmark.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ctmllm/text/tokenizer.hpp"
#include "report_corpus.hpp"

using namespace ctmllm;

namespace {
void tokenize_llama3_reports(benchmark::State& state) {
  const text::Tokenizer tok = text::Tokenizer::from_file(std::string(CTMLLM_SOURCE_DIR) + "/tests/fixtures/tokenizer_real/llama3");
  const std::vector<std::string> lines = bench::report_corpus(std::string(CTMLLM_SOURCE_DIR));
  size_t bytes = 0, tokens = 0;
  for (const auto& l : lines) bytes += l.size();
  for (auto _ : state) {
    tokens = 0;
    for (const auto& l : lines) tokens += tok.encode(l, false).size();
    benchmark::DoNotOptimize(tokens);
  }
  const double n = double(state.iterations());
  state.counters["bytes/s"] = benchmark::Counter(double(bytes) * n, benchmark::Counter::kIsRate);
  state.counters["tokens/s"] = benchmark::Counter(double(tokens) * n, benchmark::Counter::kIsRate);
}
}  // namespace

BENCHMARK(tokenize_llama3_reports)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
