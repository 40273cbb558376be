#pragma once
// ROUGE-N and ROUGE-L as torchmetrics' ROUGEScore computes them with its defaults (no stemmer, no
// custom normalizer or tokenizer, one reference): the text is lowercased (str.lower()), every run
// of characters other than [a-z0-9] becomes one space, and the words are what remains. ROUGE-N
// counts clipped n-gram matches, ROUGE-L uses the longest common subsequence of words. A corpus
// score is the mean of the per-pair scores, as ROUGEScore averages over its updates.
#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/eval/utf8.hpp"

namespace ctmllm::eval {

struct RougePRF {
  double precision = 0, recall = 0, fmeasure = 0;
};

struct RougeScore {
  RougePRF rouge1, rouge2, rougeL;
};

// torchmetrics' default normalisation and tokenisation.
inline std::vector<std::string> rouge_tokenize(std::string_view text) {
  const std::string lower = lowercase(text, "rouge");
  std::vector<std::string> words;
  std::string word;
  for (char c : lower) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      word += c;
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

namespace detail {

// P = hits / hypothesis length, R = hits / reference length, F = their harmonic mean; all 0 when
// P and R are both 0.
inline RougePRF rouge_prf(double hits, double hyp_len, double ref_len) {
  RougePRF s{hits / hyp_len, hits / ref_len, 0};
  if (s.precision == 0 && s.recall == 0) return {};
  s.fmeasure = 2 * s.precision * s.recall / (s.precision + s.recall);
  return s;
}

}  // namespace detail

inline RougePRF rouge_n(const std::vector<std::string>& hyp, const std::vector<std::string>& ref, int n) {
  CTMLLM_CHECK(n >= 1, "rouge_n: n must be >= 1, got ", n);
  const auto ngrams = [n](const std::vector<std::string>& words) {
    std::map<std::vector<std::string>, int64_t> counts;
    for (size_t i = 0; i + n <= words.size(); ++i) ++counts[{words.begin() + i, words.begin() + i + n}];
    return counts;
  };
  const auto h = ngrams(hyp), r = ngrams(ref);
  double hyp_len = 0, ref_len = 0, hits = 0;
  for (const auto& [g, c] : h) hyp_len += static_cast<double>(c);
  for (const auto& [g, c] : r) ref_len += static_cast<double>(c);
  if (hyp_len == 0 || ref_len == 0) return {};
  for (const auto& [g, c] : h)
    if (auto it = r.find(g); it != r.end()) hits += static_cast<double>(std::min(c, it->second));
  return detail::rouge_prf(hits, hyp_len, ref_len);
}

inline RougePRF rouge_l(const std::vector<std::string>& hyp, const std::vector<std::string>& ref) {
  if (hyp.empty() || ref.empty()) return {};
  // Longest common subsequence, one row of the table at a time.
  std::vector<size_t> prev(hyp.size() + 1, 0), cur(hyp.size() + 1, 0);
  for (size_t i = 1; i <= ref.size(); ++i) {
    for (size_t j = 1; j <= hyp.size(); ++j)
      cur[j] = ref[i - 1] == hyp[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return detail::rouge_prf(static_cast<double>(prev.back()), static_cast<double>(hyp.size()),
                           static_cast<double>(ref.size()));
}

inline RougeScore rouge(std::string_view hypothesis, std::string_view reference) {
  const auto h = rouge_tokenize(hypothesis), r = rouge_tokenize(reference);
  return {rouge_n(h, r, 1), rouge_n(h, r, 2), rouge_l(h, r)};
}

// Mean of the per-pair scores (all zero for an empty corpus).
inline RougeScore corpus_rouge(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  CTMLLM_CHECK(hypotheses.size() == references.size(), "corpus_rouge: ", hypotheses.size(), " hypotheses but ",
               references.size(), " references");
  RougeScore mean;
  const auto add = [&](RougePRF& to, const RougePRF& s) {
    const double k = 1.0 / static_cast<double>(hypotheses.size());
    to.precision += s.precision * k, to.recall += s.recall * k, to.fmeasure += s.fmeasure * k;
  };
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    const RougeScore s = rouge(hypotheses[i], references[i]);
    add(mean.rouge1, s.rouge1), add(mean.rouge2, s.rouge2), add(mean.rougeL, s.rougeL);
  }
  return mean;
}

}  // namespace ctmllm::eval
