#pragma once
// Beam search with transformers' semantics (GenerationMixin._beam_search, num_beams > 1, no
// sampling). Per prompt, num_beams running beams start from the prompt (beam 0 at score 0, the
// others at −1e9 so the first step expands one beam). Each step:
//   1. every continuation of every beam scores beam score + log_softmax(logits), after the
//      repetition penalty and n-gram ban;
//   2. the best max(2, 1 + #eos) · num_beams continuations are kept; a continuation "stops" when
//      its token is eos, it matches a stop string, or max_new_tokens is reached;
//   3. the next running beams are the best num_beams continuations that did not stop;
//   4. stopped continuations ranked within the first num_beams become finished hypotheses scored
//      sum(log p) / generated_length^length_penalty; the best num_beams hypotheses are kept;
//   5. a prompt is done when num_beams hypotheses are finished and (early_stopping) the best running
//      beam cannot beat the worst of them — heuristic: at its current length; never: at max length
//      when length_penalty > 0 (an exact bound); always: at once.
// The KV cache rows follow their beams: the prompt's rows are expanded to K beams once
// (KvCache::select_rows), then each step reorders them in place (KvCache::reorder_rows, which copies
// only the rows whose beam changed parent). The cache keeps its buffers, so on the GPU the decode
// steps replay a CUDA graph (llm/static_decode_step.hpp) unless options.cuda_graphs is off. The
// result per prompt is the best finished hypothesis.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/generate/options.hpp"
#include "ctmllm/generate/prompt.hpp"
#include "ctmllm/generate/sampling.hpp"
#include "ctmllm/generate/stopping.hpp"
#include "ctmllm/llm/decoder.hpp"

namespace ctmllm::generate {

template <class T, class D>
std::vector<Generated> beam_search(const llm::Decoder<T, D>& model, const Prompt<T, D>& prompt,
                                   const GenerationOptions& o) {
  check_options(o);
  detail::check_prompt(prompt);
  autograd::NoGradGuard no_grad;
  const int64_t B = prompt.batch(), K = o.num_beams, V = model.vocab_size(), N = o.max_new_tokens;
  std::vector<Generated> out(static_cast<size_t>(B));
  if (N == 0) return out;
  constexpr double kSink = 1e9;  // transformers' penalty that removes a candidate from a selection

  llm::KvCache<T, D> cache = model.make_cache(B, prompt.length() + N);
  const std::vector<float> first = detail::host_logits(detail::prefill(model, prompt, cache));
  std::vector<int64_t> rows;  // beam k of prompt b is row b·K + k
  std::vector<float> scores(static_cast<size_t>(B * K * V));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) {
      rows.push_back(b);
      std::copy_n(first.begin() + b * V, V, scores.begin() + (b * K + k) * V);
    }
  cache = cache.select_rows(rows);
  detail::DecodeSteps<T, D> decode_step(model, cache, o.cuda_graphs);

  struct Hypothesis {
    std::vector<int64_t> tokens;
    double score;
  };
  const std::vector<std::vector<int64_t>> prompt_ids = detail::prompt_history(prompt);
  std::vector<std::vector<Hypothesis>> beams(static_cast<size_t>(B));
  std::vector<std::vector<Hypothesis>> finished(static_cast<size_t>(B));  // best first, at most K
  for (auto& bs : beams)
    for (int64_t k = 0; k < K; ++k) bs.push_back({{}, k == 0 ? 0.0 : -kSink});
  std::vector<bool> done(static_cast<size_t>(B), false);
  const int64_t keep = std::max<int64_t>(2, 1 + int64_t(o.eos_token_ids.size())) * K;
  const StoppingCriteria stopping(o);
  std::vector<float> lp(static_cast<size_t>(V));
  std::vector<double> total(static_cast<size_t>(K * V));
  std::vector<int64_t> order(static_cast<size_t>(K * V));
  std::vector<int64_t> next(static_cast<size_t>(B * K)),
      source(static_cast<size_t>(B * K));  // per row: token, parent row

  for (int64_t t = 0; t < N; ++t) {
    bool every_candidate_stopped = true;
    for (int64_t b = 0; b < B; ++b) {
      // 1. Scores of all K·V continuations.
      for (int64_t k = 0; k < K; ++k) {
        const float* row = scores.data() + (b * K + k) * V;
        double mx = -INFINITY, sum = 0;
        for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(row[v]));
        for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
        const double lse = mx + std::log(sum);
        for (int64_t v = 0; v < V; ++v) lp[size_t(v)] = float(double(row[v]) - lse);
        std::vector<int64_t> history = prompt_ids[size_t(b)];
        const auto& mine = beams[size_t(b)][size_t(k)];
        history.insert(history.end(), mine.tokens.begin(), mine.tokens.end());
        repetition_penalty(lp, history, o.repetition_penalty);
        no_repeat_ngram(lp, history, o.no_repeat_ngram_size);
        for (int64_t v = 0; v < V; ++v) total[size_t(k * V + v)] = mine.score + double(lp[size_t(v)]);
      }
      // 2. The best `keep` continuations, best first (equal scores: lower beam, then lower token).
      std::iota(order.begin(), order.end(), int64_t(0));
      const int64_t n = std::min<int64_t>(keep, K * V);
      std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int64_t x, int64_t y) {
        return total[size_t(x)] > total[size_t(y)] || (total[size_t(x)] == total[size_t(y)] && x < y);
      });
      std::vector<Hypothesis> candidates;
      std::vector<int64_t> from;
      std::vector<bool> stopped;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t k = order[size_t(i)] / V, token = order[size_t(i)] % V;
        Hypothesis h{beams[size_t(b)][size_t(k)].tokens, total[size_t(order[size_t(i)])]};
        h.tokens.push_back(token);
        stopped.push_back(t + 1 == N || stopping.check(h.tokens).has_value());
        every_candidate_stopped = every_candidate_stopped && stopped.back();
        candidates.push_back(std::move(h));
        from.push_back(k);
      }
      // 3. Next running beams: the best K, stopped ones sunk below the rest.
      std::vector<int64_t> pick(static_cast<size_t>(n));
      std::iota(pick.begin(), pick.end(), int64_t(0));
      std::stable_sort(pick.begin(), pick.end(), [&](int64_t x, int64_t y) {
        return candidates[size_t(x)].score - (stopped[size_t(x)] ? kSink : 0) >
               candidates[size_t(y)].score - (stopped[size_t(y)] ? kSink : 0);
      });
      std::vector<Hypothesis> running;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t c = pick[size_t(k)];
        running.push_back(
            {candidates[size_t(c)].tokens, candidates[size_t(c)].score - (stopped[size_t(c)] ? kSink : 0)});
        source[size_t(b * K + k)] = b * K + from[size_t(c)];
        next[size_t(b * K + k)] = candidates[size_t(c)].tokens.back();
      }
      beams[size_t(b)] = std::move(running);
      // 4. Stopped candidates among the first K become hypotheses, unless this prompt is done.
      if (!done[size_t(b)]) {
        auto& fin = finished[size_t(b)];
        for (int64_t i = 0; i < std::min(K, n); ++i)
          if (stopped[size_t(i)])
            fin.push_back({candidates[size_t(i)].tokens,
                           candidates[size_t(i)].score / std::pow(double(t + 1), o.length_penalty)});
        std::stable_sort(fin.begin(), fin.end(),
                         [](const Hypothesis& x, const Hypothesis& y) { return x.score > y.score; });
        if (int64_t(fin.size()) > K) fin.resize(static_cast<size_t>(K));
      }
    }
    // 5. Which prompts are done.
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      const auto& fin = finished[size_t(b)];
      if (!done[size_t(b)] && int64_t(fin.size()) == K) {
        const bool to_max = o.early_stopping == EarlyStopping::never && o.length_penalty > 0;
        const double length = double(to_max ? N : t + 1);
        const double best_possible = beams[size_t(b)][0].score / std::pow(length, o.length_penalty);
        done[size_t(b)] = o.early_stopping == EarlyStopping::always || best_possible <= fin.back().score;
      }
      all_done = all_done && done[size_t(b)];
    }
    if (all_done || every_candidate_stopped || t + 1 == N) break;
    cache.reorder_rows(source);
    scores = detail::host_logits(decode_step(next));
  }

  for (int64_t b = 0; b < B; ++b) {
    const Hypothesis& best = finished[size_t(b)].front();
    Generated& g = out[size_t(b)];
    g.tokens = best.tokens;
    g.score = best.score;
    g.reason = stopping.check(g.tokens).value_or(StopReason::max_new_tokens);
  }
  return out;
}

}  // namespace ctmllm::generate
