#pragma once
// generate(): prefill a batch of prompts into a KV cache, then decode one token per row per step —
// greedy, or sampled from the processed distribution with a seeded stream — until every row has
// stopped (eos, stop string, max_new_tokens). num_beams > 1 runs beam search (beam_search.hpp).
// Rows that stop early are fed the pad token until the rest finish (their outputs are discarded);
// each row's result is what it generates alone. On the GPU the decode steps run on fixed buffers and
// replay a CUDA graph (llm/static_decode_step.hpp) unless options.cuda_graphs is off, and plain
// greedy decoding takes each row's argmax there, so only B ids cross to the host per step.
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/generate/beam_search.hpp"
#include "ctmllm/generate/options.hpp"
#include "ctmllm/generate/prompt.hpp"
#include "ctmllm/generate/sampling.hpp"
#include "ctmllm/generate/stopping.hpp"
#include "ctmllm/llm/decoder.hpp"

namespace ctmllm::generate {

template <class T, class D>
std::vector<Generated> generate(const llm::Decoder<T, D>& model, const Prompt<T, D>& prompt,
                                const GenerationOptions& o) {
  check_options(o);
  detail::check_prompt(prompt);
  if (o.num_beams > 1) return beam_search(model, prompt, o);
  autograd::NoGradGuard no_grad;
  const int64_t B = prompt.batch(), V = model.vocab_size();
  std::vector<Generated> out(static_cast<size_t>(B));
  if (o.max_new_tokens == 0) return out;

  llm::KvCache<T, D> cache = model.make_cache(B, prompt.length() + o.max_new_tokens);
  // Plain greedy decoding (no processor that reads the history) takes each row's argmax where the
  // logits are: on the GPU B ids come back per step instead of B·V scores.
  const bool plain_greedy = !o.do_sample && o.repetition_penalty == 1.0 && o.no_repeat_ngram_size == 0;
  std::vector<float> scores;  // [B·V], processed on the host
  std::vector<int64_t> best;  // [B], plain greedy
  const auto take = [&](const autograd::Variable<T, D>& logits) {
    if (plain_greedy)
      best = detail::row_argmax(logits);
    else
      scores = detail::host_logits(logits);
  };
  take(detail::prefill(model, prompt, cache));
  detail::DecodeSteps<T, D> decode_step(model, cache, o.cuda_graphs);
  std::vector<std::vector<int64_t>> history = detail::prompt_history(prompt);
  const StoppingCriteria stopping(o);
  Rng rng(o.seed);
  std::vector<bool> running(static_cast<size_t>(B), true);
  std::vector<int64_t> next(static_cast<size_t>(B));
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const uint64_t draws = rng.take(uint64_t(B));  // one uniform per row per step, used or not
    bool any_running = false;
    for (int64_t b = 0; b < B; ++b) {
      if (!running[size_t(b)]) {
        next[size_t(b)] = o.pad_token_id;
        continue;
      }
      int64_t token = 0;
      if (plain_greedy) {
        token = best[size_t(b)];
      } else {
        const std::span<float> row(scores.data() + b * V, size_t(V));
        process_scores(row, history[size_t(b)], o);
        token = o.do_sample ? sample(row, rng.uniform_at(draws + uint64_t(b))) : argmax(row);
      }
      next[size_t(b)] = token;
      history[size_t(b)].push_back(token);
      Generated& g = out[size_t(b)];
      g.tokens.push_back(token);
      if (o.on_token) o.on_token(b, token);
      if (const auto why = stopping.check(g.tokens)) {
        g.reason = *why;
        running[size_t(b)] = false;
      }
      any_running = any_running || running[size_t(b)];
    }
    if (!any_running || step + 1 == o.max_new_tokens) break;
    take(decode_step(next));
  }
  return out;
}

}  // namespace ctmllm::generate
