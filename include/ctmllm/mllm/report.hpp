#pragma once
// Report writing: several conversations about one CT — the regions' prompts (PAPER.md step 9), or
// focused-inference questions — answered in one batch that shares one vision encoding.
//
//   auto reports = mllm::write_reports(model, ct, mask, {"chest", "abdomen", "pelvis"});
//
// The CT (and mask) are encoded once; every row's prompt gets the same visual tokens; the prompts
// are left-padded and decoded together (generate::generate: greedy by default, or sampling / beam
// search from the options). Each row's result is what it generates alone. Text streams out
// through on_text as tokens arrive, in valid UTF-8 pieces.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/generate/generate.hpp"
#include "ctmllm/mllm/prompt.hpp"
#include <algorithm>
#include <cctype>

namespace ctmllm::mllm {

struct Answer {
  std::string text;              // decoded without special tokens, trimmed
  std::vector<int64_t> tokens;   // generated ids, the final stop token included
  generate::StopReason reason = generate::StopReason::max_new_tokens;
};

struct AnswerOptions {
  generate::GenerationOptions generation = paper_decoding();
  // (row, piece): new text of a row, in order, as it is generated.
  std::function<void(size_t row, std::string_view piece)> on_text;

  // Greedy, up to 512 new tokens (PAPER.md step 9).
  static generate::GenerationOptions paper_decoding() {
    generate::GenerationOptions g;
    g.max_new_tokens = 512;
    return g;
  }
};

namespace detail {
// An LLM's vocabulary may be larger than its tokenizer's (rows padded to a round size, as Qwen's):
// such ids have no text and are left out of the decoded answer.
inline bool has_text(const text::Tokenizer& tok, int64_t token) { return token >= 0 && token < int64_t(tok.vocab_size()); }

// Decodes a growing token list and hands out only the text not handed out yet, holding back a
// trailing incomplete UTF-8 sequence (decode shows it as U+FFFD) until the next token completes it.
class TextStream {
 public:
  std::string push(const text::Tokenizer& tok, int64_t token, const std::vector<int64_t>& stop) {
    if (std::find(stop.begin(), stop.end(), token) != stop.end() || !has_text(tok, token)) return {};
    tokens_.push_back(int32_t(token));
    return take(tok, /*final=*/false);
  }
  // What is left when the row has stopped (an incomplete sequence stays U+FFFD, as in the answer).
  std::string finish(const text::Tokenizer& tok) { return take(tok, /*final=*/true); }

 private:
  std::string take(const text::Tokenizer& tok, bool final) {
    const std::string text = tok.decode(tokens_, /*skip_special_tokens=*/true);
    if ((!final && text.ends_with("\xEF\xBF\xBD")) || text.size() <= emitted_) return {};
    std::string piece = text.substr(emitted_);
    emitted_ = text.size();
    return piece;
  }

  std::vector<int32_t> tokens_;
  size_t emitted_ = 0;
};

inline std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}
}  // namespace detail

// One CT's visual tokens [1, N, H] (its preprocessed volume [1, C, D, H, W], and the mask's when
// the model takes one), to answer several batches of questions about it without encoding it again.
template <class T, class D>
autograd::Variable<T, D> encode_ct(const Model<T, D>& model, const Tensor<T, D>& ct, const Tensor<T, D>& mask = {}) {
  CTMLLM_CHECK(ct.defined() && ct.rank() == 5 && ct.size(0) == 1, "mllm: give one CT volume [1, C, D, H, W], got ",
               ct.defined() ? ct.describe() : std::string("none"));
  autograd::NoGradGuard no_grad;
  return model.visual_tokens(ct, mask);
}

// Answers each conversation about the CT whose visual tokens are `visual` (encode_ct), in one batch.
template <class T, class D>
std::vector<Answer> answer(const Model<T, D>& model, const autograd::Variable<T, D>& visual,
                           const std::vector<std::vector<text::ChatMessage>>& conversations, const AnswerOptions& o = {}) {
  CTMLLM_CHECK(!conversations.empty(), "mllm::answer: no prompts");
  CTMLLM_CHECK(visual.rank() == 3 && visual.size(0) == 1 && visual.size(1) == model.config().visual_tokens(),
               "mllm::answer: the visual tokens ", visual.value().describe(), " are not one CT's [1, ",
               model.config().visual_tokens(), ", H]");
  autograd::NoGradGuard no_grad;
  const text::Tokenizer& tok = model.tokenizer();
  const SpecialIds special = SpecialIds::of(model);
  const int64_t R = int64_t(conversations.size());

  std::vector<std::vector<int64_t>> prompts;
  for (const auto& c : conversations) prompts.push_back(prompt_ids(model, c));
  generate::Prompt<T, D> prompt = generate::left_pad<T, D>(prompts, special.pad);
  prompt.inputs_embeds = model.embed(prompt.input_ids,
                                     autograd::Variable<T, D>(visual.value().expand(Shape{R, visual.size(1), visual.size(2)})),
                                     prompt.attention_mask);

  generate::GenerationOptions g = o.generation;
  if (g.eos_token_ids.empty()) g.eos_token_ids = special.stop;
  g.pad_token_id = special.pad;
  if (!g.stop_strings.empty() && !g.detokenize)
    g.detokenize = [&tok](std::span<const int64_t> ids) {
      return tok.decode(std::vector<int32_t>(ids.begin(), ids.end()), /*skip_special_tokens=*/true);
    };
  std::vector<detail::TextStream> streams(static_cast<size_t>(R));
  if (o.on_text) {
    const auto user_on_token = g.on_token;
    g.on_token = [&, user_on_token](int64_t row, int64_t token) {
      if (user_on_token) user_on_token(row, token);
      const std::string piece = streams[size_t(row)].push(tok, token, g.eos_token_ids);
      if (!piece.empty()) o.on_text(size_t(row), piece);
    };
  }
  const std::vector<generate::Generated> gen = generate::generate(model.llm(), prompt, g);
  if (o.on_text)
    for (int64_t r = 0; r < R; ++r)
      if (const std::string rest = streams[size_t(r)].finish(tok); !rest.empty()) o.on_text(size_t(r), rest);
  std::vector<Answer> out;
  for (const auto& r : gen) {
    std::vector<int32_t> ids;
    for (int64_t t : r.tokens)
      if (std::find(g.eos_token_ids.begin(), g.eos_token_ids.end(), t) == g.eos_token_ids.end() && detail::has_text(tok, t))
        ids.push_back(int32_t(t));
    out.push_back({detail::trim(tok.decode(ids, /*skip_special_tokens=*/true)), r.tokens, r.reason});
  }
  return out;
}

// One answer per region, in the order given (the regions' prompts from the model's config).
template <class T, class D>
std::vector<Answer> write_reports(const Model<T, D>& model, const autograd::Variable<T, D>& visual,
                                  const std::vector<std::string>& regions, const AnswerOptions& o = {}) {
  std::vector<std::vector<text::ChatMessage>> conversations;
  for (const std::string& r : regions) conversations.push_back(region_messages(model, r));
  return answer(model, visual, conversations, o);
}
template <class T, class D>
std::vector<Answer> write_reports(const Model<T, D>& model, const Tensor<T, D>& ct, const Tensor<T, D>& mask,
                                  const std::vector<std::string>& regions, const AnswerOptions& o = {}) {
  return write_reports(model, encode_ct(model, ct, mask), regions, o);
}

}  // namespace ctmllm::mllm
