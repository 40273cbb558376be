#pragma once
// BLEU exactly as sacrebleu 2.x computes it: the 13a tokenizer (mteval-v13a), n-gram precisions
// clipped by the maximum count over the references, the closest reference length (ties: the
// shorter), the brevity penalty, and sacrebleu's smoothing methods ("exp" by default). Corpus
// BLEU sums the statistics of all segments first; sentence BLEU is corpus BLEU of one segment with
// effective_order on, as sacrebleu.sentence_bleu does. Scores are on sacrebleu's 0-100 scale.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/eval/utf8.hpp"

namespace ctmllm::eval {

enum class BleuSmoothing { None, Floor, AddK, Exp };

struct BleuOptions {
  bool lowercase = false;
  BleuSmoothing smoothing = BleuSmoothing::Exp;
  std::optional<double> smooth_value = std::nullopt;  // floor and add-k only; unset: sacrebleu's 0.1 and 1
  int max_order = 4;
  bool effective_order = false;  // average only over the orders that have hypothesis n-grams
};

// Sufficient statistics of a segment or a corpus (sacrebleu's stats list).
struct BleuStats {
  int64_t hyp_len = 0, ref_len = 0;
  std::vector<double> correct, total;  // per order 1..max_order (double: add-k adds a fraction)
};

struct BleuScore {
  double score = 0, bp = 0;
  std::vector<double> precisions;  // percent, per order
  BleuStats stats;
};

namespace detail {

inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

// One non-overlapping left-to-right pass of a two-character regex substitution, as re.sub does.
// A byte-wise scan gives the same result as Python's code point scan: every class tested is ASCII
// and the bytes of a multi-byte character never match one.
template <class Match, class Emit>
std::string sub_pairs(const std::string& s, Match match, Emit emit) {
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  size_t i = 0;
  for (; i + 1 < s.size(); ++i) {
    if (match(s[i], s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      ++i;
    } else {
      out += s[i];
    }
  }
  if (i < s.size()) out += s[i];
  return out;
}

}  // namespace detail

// sacrebleu's Tokenizer13a: one line of text in, its tokens joined by single spaces out.
inline std::string tokenize_13a(std::string_view line) {
  std::string s(line);
  detail::replace_all(s, "<skipped>", "");
  detail::replace_all(s, "-\n", "");
  detail::replace_all(s, "\n", " ");
  if (s.find('&') != std::string::npos) {
    detail::replace_all(s, "&quot;", "\"");
    detail::replace_all(s, "&amp;", "&");
    detail::replace_all(s, "&lt;", "<");
    detail::replace_all(s, "&gt;", ">");
  }
  // Punctuation and symbols ([{-~[-` -&(-+:-@/] in the regex; it includes the space) stand alone.
  std::string t;
  t.reserve(s.size() * 2 + 2);
  t += ' ';
  for (char c : s) {
    const bool symbol = (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
                        (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
    if (symbol) {
      t += ' ';
      t += c;
      t += ' ';
    } else {
      t += c;
    }
  }
  t += ' ';
  using detail::is_digit;
  // Period and comma split off unless preceded by a digit, then unless followed by a digit.
  t = detail::sub_pairs(
      t, [](char a, char b) { return !is_digit(a) && (b == '.' || b == ','); },
      [](std::string& o, char a, char b) { o += a, o += ' ', o += b, o += ' '; });
  t = detail::sub_pairs(
      t, [](char a, char b) { return (a == '.' || a == ',') && !is_digit(b); },
      [](std::string& o, char a, char b) { o += ' ', o += a, o += ' ', o += b; });
  // A dash after a digit stands alone.
  t = detail::sub_pairs(
      t, [](char a, char b) { return is_digit(a) && b == '-'; },
      [](std::string& o, char a, char b) { o += a, o += ' ', o += b, o += ' '; });
  std::string joined;
  for (std::string_view w : split_whitespace(t, "tokenize_13a")) {
    if (!joined.empty()) joined += ' ';
    joined += w;
  }
  return joined;
}

namespace detail {

using NgramCounts = std::unordered_map<std::string, int64_t>;

// All n-grams of orders 1..max_order of a tokenized line; tokens never contain a space, so the
// space-joined n-gram identifies it (and its order) uniquely.
inline NgramCounts word_ngrams(const std::vector<std::string_view>& tokens, int max_order) {
  NgramCounts counts;
  for (int n = 1; n <= max_order; ++n) {
    for (size_t i = 0; i + n <= tokens.size(); ++i) {
      std::string g(tokens[i]);
      for (int k = 1; k < n; ++k) (g += ' ') += tokens[i + k];
      ++counts[g];
    }
  }
  return counts;
}

inline std::string bleu_preprocess(std::string_view text, const BleuOptions& opt) {
  std::string s = opt.lowercase ? lowercase(text, "bleu") : std::string(text);
  return tokenize_13a(rstrip(s, "bleu"));
}

inline int ngram_order(const std::string& g) { return 1 + static_cast<int>(std::count(g.begin(), g.end(), ' ')); }

}  // namespace detail

// Statistics of one hypothesis against its references (at least one).
inline BleuStats bleu_segment_stats(std::string_view hypothesis, const std::vector<std::string>& references,
                                    const BleuOptions& opt = {}) {
  CTMLLM_CHECK(opt.max_order >= 1, "bleu: max_order must be >= 1, got ", opt.max_order);
  CTMLLM_CHECK(!references.empty(), "bleu: a hypothesis needs at least one reference");
  detail::NgramCounts ref_max;
  std::vector<int64_t> ref_lens;
  for (const std::string& r : references) {
    const std::string tok = detail::bleu_preprocess(r, opt);
    const auto words = split_whitespace(tok, "bleu");
    ref_lens.push_back(static_cast<int64_t>(words.size()));
    for (const auto& [g, c] : detail::word_ngrams(words, opt.max_order)) ref_max[g] = std::max(ref_max[g], c);
  }
  const std::string hyp_tok = detail::bleu_preprocess(hypothesis, opt);
  const auto hyp_words = split_whitespace(hyp_tok, "bleu");
  BleuStats st;
  st.hyp_len = static_cast<int64_t>(hyp_words.size());
  // Closest reference length; on a tie the shorter one.
  int64_t best_diff = -1;
  for (int64_t len : ref_lens) {
    const int64_t diff = std::abs(st.hyp_len - len);
    if (best_diff < 0 || diff < best_diff || (diff == best_diff && len < st.ref_len)) best_diff = diff, st.ref_len = len;
  }
  st.correct.assign(opt.max_order, 0);
  st.total.assign(opt.max_order, 0);
  for (const auto& [g, c] : detail::word_ngrams(hyp_words, opt.max_order)) {
    const int n = detail::ngram_order(g) - 1;
    st.total[n] += static_cast<double>(c);
    if (auto it = ref_max.find(g); it != ref_max.end()) st.correct[n] += static_cast<double>(std::min(c, it->second));
  }
  return st;
}

// sacrebleu's BLEU.compute_bleu over (summed) statistics.
inline BleuScore bleu_from_stats(BleuStats st, const BleuOptions& opt = {}) {
  const int N = opt.max_order;
  CTMLLM_CHECK(static_cast<int>(st.correct.size()) == N && static_cast<int>(st.total.size()) == N,
               "bleu: statistics have ", st.correct.size(), " orders, options say ", N);
  BleuScore out;
  out.bp = 1.0;
  if (st.hyp_len < st.ref_len)
    out.bp = st.hyp_len > 0 ? std::exp(1.0 - static_cast<double>(st.ref_len) / static_cast<double>(st.hyp_len)) : 0.0;
  out.precisions.assign(N, 0.0);
  bool any_correct = false;
  for (double c : st.correct) any_correct = any_correct || c != 0;
  if (!any_correct) {
    out.stats = std::move(st);
    return out;
  }
  const double value = opt.smooth_value.value_or(opt.smoothing == BleuSmoothing::Floor ? 0.1 : 1.0);
  double smooth_mteval = 1.0;
  int eff_order = N;
  for (int n = 1; n <= N; ++n) {
    if (opt.smoothing == BleuSmoothing::AddK && n > 1) st.correct[n - 1] += value, st.total[n - 1] += value;
    if (st.total[n - 1] == 0) break;
    if (opt.effective_order) eff_order = n;
    if (st.correct[n - 1] == 0) {
      if (opt.smoothing == BleuSmoothing::Exp) {
        smooth_mteval *= 2;
        out.precisions[n - 1] = 100.0 / (smooth_mteval * st.total[n - 1]);
      } else if (opt.smoothing == BleuSmoothing::Floor) {
        out.precisions[n - 1] = 100.0 * value / st.total[n - 1];
      }
    } else {
      out.precisions[n - 1] = 100.0 * st.correct[n - 1] / st.total[n - 1];
    }
  }
  // sacrebleu's my_log floors log(0) at -9999999999, which makes the score 0.
  double log_sum = 0;
  for (int n = 0; n < eff_order; ++n) log_sum += out.precisions[n] == 0 ? -9999999999.0 : std::log(out.precisions[n]);
  out.score = out.bp * std::exp(log_sum / eff_order);
  out.stats = std::move(st);
  return out;
}

// Corpus BLEU; ref_streams[k][i] is the k-th reference of hypothesis i (sacrebleu's layout).
inline BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                             const std::vector<std::vector<std::string>>& ref_streams, const BleuOptions& opt = {}) {
  CTMLLM_CHECK(!ref_streams.empty(), "corpus_bleu: no reference stream");
  BleuStats sum;
  sum.correct.assign(opt.max_order, 0);
  sum.total.assign(opt.max_order, 0);
  std::vector<std::string> refs(ref_streams.size());
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    for (size_t k = 0; k < ref_streams.size(); ++k) {
      CTMLLM_CHECK(ref_streams[k].size() == hypotheses.size(), "corpus_bleu: reference stream ", k, " has ",
                   ref_streams[k].size(), " segments for ", hypotheses.size(), " hypotheses");
      refs[k] = ref_streams[k][i];
    }
    const BleuStats s = bleu_segment_stats(hypotheses[i], refs, opt);
    sum.hyp_len += s.hyp_len;
    sum.ref_len += s.ref_len;
    for (int n = 0; n < opt.max_order; ++n) sum.correct[n] += s.correct[n], sum.total[n] += s.total[n];
  }
  return bleu_from_stats(std::move(sum), opt);
}

// Corpus BLEU with one reference per hypothesis.
inline BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references,
                             const BleuOptions& opt = {}) {
  return corpus_bleu(hypotheses, std::vector<std::vector<std::string>>{references}, opt);
}

// sacrebleu.sentence_bleu: effective_order defaults to on.
inline BleuScore sentence_bleu(std::string_view hypothesis, const std::vector<std::string>& references,
                               const BleuOptions& opt = {.effective_order = true}) {
  return bleu_from_stats(bleu_segment_stats(hypothesis, references, opt), opt);
}

}  // namespace ctmllm::eval
