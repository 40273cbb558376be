#pragma once
// Logits processors and token choice on one row of scores, with Hugging Face's semantics:
//   repetition_penalty  (RepetitionPenaltyLogitsProcessor)  s < 0 ? s·p : s / p, for every id seen
//   no_repeat_ngram     (NoRepeatNGramLogitsProcessor)      ban tokens that would repeat an n-gram
//   temperature         (TemperatureLogitsWarper)           s / t
//   top_k               (TopKLogitsWarper)                  keep scores >= the k-th largest (ties kept)
//   top_p               (TopPLogitsWarper)                  drop the least likely tokens whose total
//                                                           probability is <= 1 − p
//   min_p               (MinPLogitsWarper)                  drop p(token) < min_p · max p
// Removed tokens get −inf. process_scores applies them in transformers' order (the warpers only when
// sampling). A draw is inverse-CDF sampling at one uniform number, so a seeded counter-based stream
// (core/rng.hpp) makes it reproducible.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "ctmllm/generate/options.hpp"

namespace ctmllm::generate {

inline constexpr float kFiltered = -std::numeric_limits<float>::infinity();

inline void repetition_penalty(std::span<float> scores, std::span<const int64_t> history, double penalty) {
  if (penalty == 1.0) return;
  std::vector<int64_t> ids(history.begin(), history.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());  // each id once, however often it was seen
  for (const int64_t id : ids) {
    if (id < 0 || id >= int64_t(scores.size())) continue;
    float& s = scores[size_t(id)];
    s = s < 0 ? float(s * penalty) : float(s / penalty);
  }
}

// Bans every token that, after the last n − 1 tokens of history, would complete an n-gram that
// already occurs in history.
inline void no_repeat_ngram(std::span<float> scores, std::span<const int64_t> history, int64_t n) {
  const int64_t len = int64_t(history.size());
  if (n <= 0 || len + 1 < n) return;
  const std::span<const int64_t> prefix = history.subspan(size_t(len - (n - 1)));
  for (int64_t i = 0; i + n <= len; ++i) {
    if (!std::equal(prefix.begin(), prefix.end(), history.begin() + i)) continue;
    const int64_t banned = history[size_t(i + n - 1)];
    if (banned >= 0 && banned < int64_t(scores.size())) scores[size_t(banned)] = kFiltered;
  }
}

inline void temperature(std::span<float> scores, double t) {
  if (t == 1.0) return;
  for (float& s : scores) s = float(s / t);
}

inline void top_k(std::span<float> scores, int64_t k, int64_t min_keep = 1) {
  if (k <= 0) return;
  k = std::min<int64_t>(std::max(k, min_keep), int64_t(scores.size()));
  std::vector<float> sorted(scores.begin(), scores.end());
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float kth = sorted[size_t(k - 1)];
  for (float& s : scores)
    if (s < kth) s = kFiltered;
}

namespace detail {
// Probabilities of the scores (softmax in double; −inf gives 0).
inline std::vector<double> probabilities(std::span<const float> scores) {
  const float mx = *std::max_element(scores.begin(), scores.end());
  std::vector<double> p(scores.size());
  double total = 0;
  for (size_t i = 0; i < scores.size(); ++i) total += p[i] = std::exp(double(scores[i]) - double(mx));
  for (double& v : p) v /= total;
  return p;
}
// Token ids from the most likely down, as transformers' ascending sort read backwards: a higher
// score first, equal scores by the larger id first. Only the first `count` are put in order (a
// partial sort: a vocabulary of 128k sorted whole takes tens of milliseconds a row), the rest follow
// in no particular order; order_first() extends the ordered part.
class MostLikelyFirst {
 public:
  explicit MostLikelyFirst(std::span<const float> scores) : scores_(scores), order_(scores.size()) {
    std::iota(order_.begin(), order_.end(), int64_t(0));
  }
  int64_t size() const { return int64_t(order_.size()); }
  int64_t ordered() const { return ordered_; }
  int64_t operator[](int64_t i) const { return order_[size_t(i)]; }
  // Puts the first min(count, size) ids in order.
  void order_first(int64_t count) {
    count = std::min(count, size());
    if (count <= ordered_) return;
    std::partial_sort(order_.begin() + ordered_, order_.begin() + count, order_.end(), [this](int64_t a, int64_t b) {
      const float sa = scores_[size_t(a)], sb = scores_[size_t(b)];
      return sa > sb || (sa == sb && a > b);
    });
    ordered_ = count;
  }

 private:
  std::span<const float> scores_;
  std::vector<int64_t> order_;
  int64_t ordered_ = 0;
};
}  // namespace detail

// transformers walks the tokens from the least likely up, removing them while their running total
// stays <= 1 - p. Equivalently (up to rounding in the sums), a token stays while the tokens more
// likely than it hold less than total - (1 - p): the walk here goes from the top and orders only
// the tokens it reaches (64 first, then twice as many each time).
inline void top_p(std::span<float> scores, double p, int64_t min_keep = 1) {
  if (p >= 1.0) return;
  const std::vector<double> prob = detail::probabilities(scores);
  const double total = std::accumulate(prob.begin(), prob.end(), 0.0);
  const double keep_below = total - (1.0 - p);
  detail::MostLikelyFirst order(scores);
  double held = 0;  // probability of the tokens kept so far
  int64_t kept = 0;
  for (bool full = false; !full && kept < order.size();) {
    order.order_first(std::max<int64_t>(64, 2 * order.ordered()));
    for (; kept < order.ordered(); ++kept) {
      if (kept >= min_keep && held >= keep_below) {  // the min_keep most likely always stay
        full = true;
        break;
      }
      held += prob[size_t(order[kept])];
    }
  }
  for (int64_t i = kept; i < order.size(); ++i) scores[size_t(order[i])] = kFiltered;
}

inline void min_p(std::span<float> scores, double m, int64_t min_keep = 1) {
  const std::vector<double> prob = detail::probabilities(scores);
  const double threshold = m * *std::max_element(prob.begin(), prob.end());
  detail::MostLikelyFirst order(scores);
  order.order_first(min_keep);  // the min_keep most likely always stay
  for (int64_t i = order.ordered(); i < order.size(); ++i)
    if (prob[size_t(order[i])] < threshold) scores[size_t(order[i])] = kFiltered;
}

// The processors of `o` on one row of scores, in transformers' order; `history` is the row's tokens
// so far (the prompt's real tokens when known, then the generated ones).
inline void process_scores(std::span<float> scores, std::span<const int64_t> history, const GenerationOptions& o) {
  repetition_penalty(scores, history, o.repetition_penalty);
  no_repeat_ngram(scores, history, o.no_repeat_ngram_size);
  if (!o.do_sample) return;
  temperature(scores, o.temperature);
  top_k(scores, o.top_k);
  top_p(scores, o.top_p);
  if (o.min_p) min_p(scores, *o.min_p);
}

// The first id of the largest score, a NaN counting as the largest (torch.argmax's rule, and
// ops::argmax's, which plain greedy decoding takes on the logits' device).
inline int64_t argmax(std::span<const float> scores) {
  size_t best = 0;
  for (size_t i = 1; i < scores.size(); ++i)
    if (std::isnan(scores[i]) ? !std::isnan(scores[best]) : scores[i] > scores[best]) best = i;
  return int64_t(best);
}

// Inverse-CDF draw at u in [0, 1) from softmax(scores): the first id whose cumulative probability
// exceeds u. Filtered (−inf) ids are never drawn.
inline int64_t sample(std::span<const float> scores, double u) {
  const std::vector<double> prob = detail::probabilities(scores);
  double cumulative = 0;
  int64_t last = -1;
  for (size_t i = 0; i < prob.size(); ++i) {
    if (prob[i] == 0) continue;
    cumulative += prob[i];
    last = int64_t(i);
    if (cumulative > u) return last;
  }
  return last;  // u within rounding of 1: the last drawable id
}

}  // namespace ctmllm::generate
