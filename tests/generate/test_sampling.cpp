// Logits processors and token choice against small hand-computed examples (transformers' rules).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "ctmllm/core/rng.hpp"
#include "ctmllm/generate/sampling.hpp"
#include "ctmllm/ops/reduce.hpp"
#include "support/catch.hpp"

using namespace ctmllm;
using namespace ctmllm::generate;

namespace {
const float kInf = std::numeric_limits<float>::infinity();
// Scores whose softmax is exactly these probabilities (up to rounding).
std::vector<float> logits_of(const std::vector<double>& p) {
  std::vector<float> s;
  for (const double v : p) s.push_back(float(std::log(v)));
  return s;
}
std::vector<bool> kept(const std::vector<float>& s) {
  std::vector<bool> k;
  for (const float v : s) k.push_back(v != -kInf);
  return k;
}
}  // namespace

TEST_CASE("repetition penalty divides positive and multiplies negative scores of seen ids", "[generate][sampling]") {
  std::vector<float> s = {2.0f, -1.0f, 0.5f, -3.0f};
  const std::vector<int64_t> history = {0, 1, 1};  // id 1 twice: penalised once
  repetition_penalty(s, history, 2.0);
  CHECK(s == std::vector<float>{1.0f, -2.0f, 0.5f, -3.0f});
}

TEST_CASE("no-repeat n-gram bans the token that would repeat an n-gram", "[generate][sampling]") {
  std::vector<float> s(5, 0.0f);
  no_repeat_ngram(s, std::vector<int64_t>{1, 2, 3, 1}, 2);  // after 1 came 2
  CHECK(kept(s) == std::vector<bool>{true, true, false, true, true});
  std::vector<float> t(5, 0.0f);
  no_repeat_ngram(t, std::vector<int64_t>{1, 2, 3, 1, 2, 4, 1, 2}, 3);  // after (1, 2) came 3 and 4
  CHECK(kept(t) == std::vector<bool>{true, true, true, false, false});
  std::vector<float> u(5, 0.0f);
  no_repeat_ngram(u, std::vector<int64_t>{1}, 3);  // too short for a 3-gram
  CHECK(kept(u) == std::vector<bool>(5, true));
}

TEST_CASE("temperature and top-k", "[generate][sampling]") {
  std::vector<float> s = {1.0f, 2.0f};
  temperature(s, 0.5);
  CHECK(s == std::vector<float>{2.0f, 4.0f});
  std::vector<float> k2 = {1, 3, 2, 3};
  top_k(k2, 2);  // the 2nd largest is 3: both 3s stay
  CHECK(kept(k2) == std::vector<bool>{false, true, false, true});
  std::vector<float> k3 = {1, 3, 2, 3};
  top_k(k3, 3);
  CHECK(kept(k3) == std::vector<bool>{false, true, true, true});
  std::vector<float> k9 = {1, 3};
  top_k(k9, 9);  // more than the vocabulary: nothing removed
  CHECK(kept(k9) == std::vector<bool>{true, true});
}

TEST_CASE("top-p removes the least likely tokens holding at most 1 - p", "[generate][sampling]") {
  const std::vector<double> p = {0.5, 0.3, 0.15, 0.05};
  // Ascending: 0.05, 0.15, 0.3, 0.5 with running sums 0.05, 0.2, 0.5, 1.
  auto run = [&](double top) {
    std::vector<float> s = logits_of(p);
    top_p(s, top);
    return kept(s);
  };
  CHECK(run(0.9) == std::vector<bool>{true, true, true, false});     // 1 - p = 0.1: drops 0.05
  CHECK(run(0.75) == std::vector<bool>{true, true, false, false});   // 0.25: drops 0.05 and 0.15
  CHECK(run(0.01) == std::vector<bool>{true, false, false, false});  // the most likely always stays
  CHECK(run(1.0) == std::vector<bool>{true, true, true, true});
}

TEST_CASE("top-p and min-p over a wide vocabulary keep what transformers' full ascending walk keeps", "[generate][sampling]") {
  // The reference: every token sorted ascending (equal scores by id), removed from the bottom while
  // the running total stays <= 1 - p (min-p: below the threshold), the min_keep most likely kept.
  auto reference = [](std::vector<float> s, double p, double m, int64_t min_keep) {
    std::vector<double> prob(s.size());
    const float mx = *std::max_element(s.begin(), s.end());
    double total = 0;
    for (size_t i = 0; i < s.size(); ++i) total += prob[i] = std::exp(double(s[i]) - double(mx));
    for (double& v : prob) v /= total;
    std::vector<int64_t> order(s.size());
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[size_t(a)] < s[size_t(b)]; });
    const int64_t n = int64_t(s.size());
    const double top = *std::max_element(prob.begin(), prob.end());
    double cumulative = 0;
    for (int64_t i = 0; i < n - min_keep; ++i) {
      const size_t id = size_t(order[size_t(i)]);
      if (m > 0) {
        if (prob[id] < m * top) s[id] = -kInf;
        continue;
      }
      cumulative += prob[id];
      if (cumulative > 1.0 - p) break;
      s[id] = -kInf;
    }
    return kept(s);
  };
  Rng rng(11);
  for (const double sd : {0.5, 2.0, 6.0}) {  // flat to peaked: from most tokens kept to a handful
    const Tensor<float, Cpu> t = rng.normal<float>({5000}, 0.0, sd);
    const std::vector<float> scores(t.data(), t.data() + t.numel());
    for (const double p : {0.3, 0.9, 0.99})
      for (const int64_t min_keep : {1, 3}) {
        INFO("sd " << sd << ", p " << p << ", min_keep " << min_keep);
        std::vector<float> a = scores;
        top_p(a, p, min_keep);
        CHECK(kept(a) == reference(scores, p, 0.0, min_keep));
        std::vector<float> b = scores;
        min_p(b, p, min_keep);
        CHECK(kept(b) == reference(scores, 1.0, p, min_keep));
      }
  }
}

TEST_CASE("min-p removes tokens below min_p times the top probability", "[generate][sampling]") {
  const std::vector<double> p = {0.5, 0.3, 0.15, 0.05};
  std::vector<float> a = logits_of(p);
  min_p(a, 0.4);  // threshold 0.2
  CHECK(kept(a) == std::vector<bool>{true, true, false, false});
  std::vector<float> b = logits_of(p);
  min_p(b, 0.7);  // threshold 0.35
  CHECK(kept(b) == std::vector<bool>{true, false, false, false});
}

TEST_CASE("process_scores applies penalties always and warpers only when sampling", "[generate][sampling]") {
  GenerationOptions o;
  o.repetition_penalty = 2.0;
  o.temperature = 0.5;
  o.top_k = 1;
  const std::vector<int64_t> history = {0};
  std::vector<float> greedy = {2, 1, 0};
  process_scores(greedy, history, o);
  CHECK(greedy == std::vector<float>{1, 1, 0});  // penalty only
  o.do_sample = true;
  std::vector<float> sampled = {2, 1, 0};
  process_scores(sampled, history, o);  // penalty -> [1, 1, 0], temperature -> [2, 2, 0], top-1 keeps the tie
  CHECK(sampled == std::vector<float>{2, 2, -kInf});
}

TEST_CASE("argmax takes the first maximum, sample inverts the CDF", "[generate][sampling]") {
  CHECK(argmax(std::vector<float>{1, 5, 5, 2}) == 1);
  // A NaN counts as the largest, as in ops::argmax (plain greedy decoding takes that one on the
  // logits' device) and torch.argmax.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const std::vector<float>& row : {std::vector<float>{1, nan, 7, nan}, {nan, 9, nan}, {-kInf, 3, kInf, 2}}) {
    const int64_t n = int64_t(row.size());
    CHECK(argmax(row) == ops::argmax(Tensor<float>::from(std::span<const float>(row), {1, 1, n}), 2).item());
  }
  CHECK(argmax(std::vector<float>{1, nan, 7, nan}) == 1);
  CHECK(argmax(std::vector<float>{nan, 9, nan}) == 0);
  const std::vector<float> s = logits_of({0.5, 0.3, 0.15, 0.05});  // cumulative 0.5, 0.8, 0.95, 1
  CHECK(sample(s, 0.0) == 0);
  CHECK(sample(s, 0.49) == 0);
  CHECK(sample(s, 0.51) == 1);
  CHECK(sample(s, 0.79) == 1);
  CHECK(sample(s, 0.81) == 2);
  CHECK(sample(s, 0.96) == 3);
  std::vector<float> f = s;
  f[0] = -kInf;  // renormalised: 0.6, 0.3, 0.1
  CHECK(sample(f, 0.0) == 1);
  CHECK(sample(f, 0.95) == 3);
  CHECK(sample(f, 0.9999999) == 3);
}

TEST_CASE("seeded draws follow the distribution", "[generate][sampling]") {
  const std::vector<float> s = logits_of({0.5, 0.3, 0.15, 0.05});
  const Rng rng(7);
  std::vector<double> freq(4, 0.0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) freq[size_t(sample(s, rng.uniform_at(uint64_t(i))))] += 1.0 / n;
  CHECK(freq[0] == Catch::Approx(0.5).margin(0.01));
  CHECK(freq[1] == Catch::Approx(0.3).margin(0.01));
  CHECK(freq[2] == Catch::Approx(0.15).margin(0.01));
  CHECK(freq[3] == Catch::Approx(0.05).margin(0.01));
}
