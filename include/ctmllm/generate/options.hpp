#pragma once
// What generation is asked to do, and what it returns. The knobs and their meaning follow Hugging
// Face's GenerationConfig; from_generation_config maps a parsed generation_config.json onto them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/io/hf_config.hpp"

namespace ctmllm::generate {

// When beam search stops (transformers' early_stopping): heuristic = False (stop once the best
// running beam, normalised at its current length, cannot beat the worst finished one), always = True
// (stop as soon as num_beams hypotheses are finished), never = "never" (the exact bound: with a
// positive length penalty, assume the running beam reaches max length).
enum class EarlyStopping { heuristic, always, never };

// Turns generated token ids into text; the tokenizer layer provides it, this layer never needs one.
using Detokenize = std::function<std::string(std::span<const int64_t>)>;

struct GenerationOptions {
  int64_t max_new_tokens = 20;
  // Decoding: greedy by default; sampling draws from the processed distribution with a seeded stream.
  bool do_sample = false;
  uint64_t seed = 0;
  double temperature = 1.0;     // sampling only, > 0
  int64_t top_k = 0;            // sampling only; 0 = off
  double top_p = 1.0;           // sampling only; 1 = off
  std::optional<double> min_p;  // sampling only
  // Processors applied to the scores in every mode.
  double repetition_penalty = 1.0;   // > 0; 1 = off
  int64_t no_repeat_ngram_size = 0;  // 0 = off
  // Beam search when num_beams > 1.
  int64_t num_beams = 1;
  double length_penalty = 1.0;  // finished beams score sum(log p) / length^length_penalty
  EarlyStopping early_stopping = EarlyStopping::heuristic;
  // Stopping: a row ends at one of these tokens (kept in its output), or when its text contains a stop
  // string (needs detokenize), or after max_new_tokens.
  std::vector<int64_t> eos_token_ids;
  std::vector<std::string> stop_strings;
  Detokenize detokenize;
  int64_t pad_token_id = 0;  // fed to rows that have finished while others run
  // Streaming: called with (row, token) for every new token of every running row, in order.
  std::function<void(int64_t row, int64_t token)> on_token;
  // On the GPU, greedy, sampled and beam decoding replay each step from a CUDA graph
  // (llm/static_decode_step.hpp); false launches every step's kernels one by one. The CPU always
  // runs its steps directly.
  bool cuda_graphs = true;
};

enum class StopReason { max_new_tokens, eos, stop_string };

struct Generated {
  std::vector<int64_t> tokens;  // new tokens only, the final eos included
  StopReason reason = StopReason::max_new_tokens;
  double score = 0;  // beam search: the hypothesis' length-normalised log-probability
};

// A generation_config.json as options. max_new_tokens, when absent, is max_length minus the prompt
// length (transformers' rule); top_k's default of 50 applies only when sampling, as there.
inline GenerationOptions from_generation_config(const io::GenerationConfig& g, int64_t prompt_length) {
  GenerationOptions o;
  o.max_new_tokens = g.max_new_tokens ? *g.max_new_tokens : std::max<int64_t>(0, g.max_length - prompt_length);
  o.do_sample = g.do_sample;
  o.temperature = g.temperature;
  o.top_k = g.top_k;
  o.top_p = g.top_p;
  o.min_p = g.min_p;
  o.repetition_penalty = g.repetition_penalty;
  o.no_repeat_ngram_size = g.no_repeat_ngram_size;
  o.num_beams = g.num_beams;
  o.length_penalty = g.length_penalty;
  o.eos_token_ids = g.eos_token_ids;
  if (g.pad_token_id) o.pad_token_id = *g.pad_token_id;
  return o;
}

// Every option value that could not be honoured is an Error naming it.
inline void check_options(const GenerationOptions& o) {
  CTMLLM_CHECK(o.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
  CTMLLM_CHECK(!o.do_sample || (std::isfinite(o.temperature) && o.temperature > 0),
               "generate: sampling needs temperature > 0, got ", o.temperature);
  CTMLLM_CHECK(o.top_k >= 0, "generate: top_k must be >= 0, got ", o.top_k);
  CTMLLM_CHECK(o.top_p > 0 && o.top_p <= 1, "generate: top_p must be in (0, 1], got ", o.top_p);
  CTMLLM_CHECK(!o.min_p || (*o.min_p >= 0 && *o.min_p <= 1), "generate: min_p must be in [0, 1]");
  CTMLLM_CHECK(o.repetition_penalty > 0, "generate: repetition_penalty must be > 0, got ", o.repetition_penalty);
  CTMLLM_CHECK(o.no_repeat_ngram_size >= 0, "generate: no_repeat_ngram_size must be >= 0");
  CTMLLM_CHECK(o.num_beams >= 1, "generate: num_beams must be >= 1, got ", o.num_beams);
  CTMLLM_CHECK(o.stop_strings.empty() || o.detokenize, "generate: stop_strings need a detokenize callback");
  CTMLLM_CHECK(o.num_beams == 1 || !o.on_token, "generate: streaming (on_token) is not defined for beam search");
  CTMLLM_CHECK(o.num_beams == 1 || !o.do_sample,
               "generate: beam sampling is not supported; use num_beams = 1 to sample");
}

}  // namespace ctmllm::generate
