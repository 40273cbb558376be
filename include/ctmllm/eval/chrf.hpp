#pragma once
// chrF (and chrF++ with word_order > 0) exactly as sacrebleu 2.x computes it: character n-grams
// of orders 1..char_order over code points with all white space removed, word n-grams over
// words whose leading or trailing punctuation is split off, per-order (hypothesis, reference,
// match) counts summed over the corpus, the reference with the best sentence score chosen per
// segment, and the F-beta of the precision and recall averaged over the orders that have both
// hypothesis and reference n-grams (sacrebleu's default, "effective order"). Scale 0-100.
#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/eval/utf8.hpp"

namespace ctmllm::eval {

struct ChrfOptions {
  int char_order = 6;
  int word_order = 0;  // 2 gives chrF++
  double beta = 2;
  bool lowercase = false;
  bool whitespace = false;     // keep white space inside character n-grams
  bool eps_smoothing = false;  // chrF++.py / NLTK style averaging of per-order F scores
};

// Per order (character orders, then word orders): hypothesis n-grams, reference n-grams, matches.
struct ChrfStats {
  std::vector<double> hyp, ref, match;
};

namespace detail {

// Filled in place and never moved: the character n-gram keys are views into `chars`.
struct ChrfNgrams {
  std::u32string chars;
  std::vector<std::unordered_map<std::u32string_view, int64_t>> char_grams;
  std::vector<std::unordered_map<std::string, int64_t>> word_grams;
};

// sacrebleu's CHRF._remove_punctuation: a word longer than one character loses a trailing
// punctuation mark, or else a leading one, as a separate token.
inline std::vector<std::string> chrf_words(std::string_view s) {
  const auto is_punct = [](char c) { return std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").find(c) != std::string_view::npos; };
  std::vector<std::string> out;
  for (std::string_view w : split_whitespace(s, "chrf")) {
    if (decode_utf8(w, "chrf").size() == 1) {
      out.emplace_back(w);
    } else if (is_punct(w.back())) {
      out.emplace_back(w.substr(0, w.size() - 1));
      out.emplace_back(w.substr(w.size() - 1));
    } else if (is_punct(w.front())) {
      out.emplace_back(w.substr(0, 1));
      out.emplace_back(w.substr(1));
    } else {
      out.emplace_back(w);
    }
  }
  return out;
}

inline void chrf_extract(std::string_view text, const ChrfOptions& opt, ChrfNgrams& g) {
  const std::string lowered = opt.lowercase ? lowercase(text, "chrf") : std::string(text);
  const std::u32string all = decode_utf8(lowered, "chrf");
  g.chars.clear();
  for (char32_t c : all)
    if (opt.whitespace || !is_space(c)) g.chars += c;
  const std::u32string_view chars(g.chars);
  g.char_grams.assign(opt.char_order, {});
  for (int n = 1; n <= opt.char_order; ++n)
    for (size_t i = 0; i + n <= chars.size(); ++i) ++g.char_grams[n - 1][chars.substr(i, n)];
  g.word_grams.assign(opt.word_order, {});
  if (opt.word_order == 0) return;
  const std::vector<std::string> words = chrf_words(lowered);
  for (int n = 1; n <= opt.word_order; ++n) {
    for (size_t i = 0; i + n <= words.size(); ++i) {
      std::string key = words[i];
      for (int k = 1; k < n; ++k) (key += ' ') += words[i + k];
      ++g.word_grams[n - 1][key];
    }
  }
}

template <class Map>
void chrf_match(const Map& hyp, const Map& ref, ChrfStats& st) {
  double h = 0, r = 0, m = 0;
  for (const auto& [g, c] : hyp) {
    h += static_cast<double>(c);
    if (auto it = ref.find(g); it != ref.end()) m += static_cast<double>(std::min(c, it->second));
  }
  for (const auto& [g, c] : ref) r += static_cast<double>(c);
  st.hyp.push_back(ref.empty() ? 0 : h);  // no reference n-grams of this order: no hypothesis count
  st.ref.push_back(r);
  st.match.push_back(m);
}

inline void check_chrf_options(const ChrfOptions& opt) {
  CTMLLM_CHECK(opt.char_order >= 0 && opt.word_order >= 0 && opt.char_order + opt.word_order > 0,
               "chrf: orders must be >= 0 with at least one, got char ", opt.char_order, " word ", opt.word_order);
}

}  // namespace detail

// sacrebleu's CHRF._compute_f_score.
inline double chrf_from_stats(const ChrfStats& st, const ChrfOptions& opt = {}) {
  const double eps = 1e-16, factor = opt.beta * opt.beta;
  const size_t order = st.hyp.size();
  CTMLLM_CHECK(order > 0 && st.ref.size() == order && st.match.size() == order, "chrf: statistics have ", order, " / ",
               st.ref.size(), " / ", st.match.size(), " orders");
  double score = 0, avg_prec = 0, avg_rec = 0;
  int effective = 0;
  for (size_t i = 0; i < order; ++i) {
    const double prec = st.hyp[i] > 0 ? st.match[i] / st.hyp[i] : eps;
    const double rec = st.ref[i] > 0 ? st.match[i] / st.ref[i] : eps;
    const double denom = factor * prec + rec;
    score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
    if (st.hyp[i] > 0 && st.ref[i] > 0) avg_prec += prec, avg_rec += rec, ++effective;
  }
  if (opt.eps_smoothing) return 100 * score / static_cast<double>(order);
  if (effective == 0) return 0.0;
  avg_prec /= effective;
  avg_rec /= effective;
  if (avg_prec + avg_rec == 0) return 0.0;
  return 100 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
}

// Statistics of one hypothesis against the best-scoring of its references (at least one).
inline ChrfStats chrf_segment_stats(std::string_view hypothesis, const std::vector<std::string>& references,
                                    const ChrfOptions& opt = {}) {
  detail::check_chrf_options(opt);
  CTMLLM_CHECK(!references.empty(), "chrf: a hypothesis needs at least one reference");
  detail::ChrfNgrams hyp, ref;
  detail::chrf_extract(hypothesis, opt, hyp);
  ChrfStats best;
  double best_f = -1.0;
  for (const std::string& r : references) {
    detail::chrf_extract(r, opt, ref);
    ChrfStats st;
    for (int n = 0; n < opt.char_order; ++n) detail::chrf_match(hyp.char_grams[n], ref.char_grams[n], st);
    for (int n = 0; n < opt.word_order; ++n) detail::chrf_match(hyp.word_grams[n], ref.word_grams[n], st);
    const double f = chrf_from_stats(st, opt);
    if (f > best_f) best_f = f, best = std::move(st);
  }
  return best;
}

// Corpus chrF; ref_streams[k][i] is the k-th reference of hypothesis i (sacrebleu's layout).
inline double corpus_chrf(const std::vector<std::string>& hypotheses,
                          const std::vector<std::vector<std::string>>& ref_streams, const ChrfOptions& opt = {}) {
  detail::check_chrf_options(opt);
  CTMLLM_CHECK(!ref_streams.empty(), "corpus_chrf: no reference stream");
  const size_t order = static_cast<size_t>(opt.char_order + opt.word_order);
  ChrfStats sum{std::vector<double>(order), std::vector<double>(order), std::vector<double>(order)};
  std::vector<std::string> refs(ref_streams.size());
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    for (size_t k = 0; k < ref_streams.size(); ++k) {
      CTMLLM_CHECK(ref_streams[k].size() == hypotheses.size(), "corpus_chrf: reference stream ", k, " has ",
                   ref_streams[k].size(), " segments for ", hypotheses.size(), " hypotheses");
      refs[k] = ref_streams[k][i];
    }
    const ChrfStats s = chrf_segment_stats(hypotheses[i], refs, opt);
    for (size_t n = 0; n < order; ++n) sum.hyp[n] += s.hyp[n], sum.ref[n] += s.ref[n], sum.match[n] += s.match[n];
  }
  return chrf_from_stats(sum, opt);
}

// Corpus chrF with one reference per hypothesis.
inline double corpus_chrf(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references,
                          const ChrfOptions& opt = {}) {
  return corpus_chrf(hypotheses, std::vector<std::vector<std::string>>{references}, opt);
}

inline double sentence_chrf(std::string_view hypothesis, const std::vector<std::string>& references,
                            const ChrfOptions& opt = {}) {
  return chrf_from_stats(chrf_segment_stats(hypothesis, references, opt), opt);
}

}  // namespace ctmllm::eval
