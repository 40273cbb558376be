#pragma once
// Token sequences of the 3D MLLM (PAPER.md step 4):
//
//   [BOS] [<im_patch>] × visual_tokens()  chat_template(messages, generation prompt)  answer  [EOS]
//   labels: −100 ...................................................................  answer  EOS
//
// The chat template's own BOS text (Llama-3 renders "<|begin_of_text|>") is dropped, since the
// sequence already starts with BOS; a tokenizer without a chat template gets the user text as is.
// Training sequences are right-padded into a batch with −100 labels on the pads; generation
// prompts are left-padded (generate/prompt.hpp).
#include <algorithm>
#include <string>
#include <vector>

#include "ctmllm/mllm/model.hpp"

namespace ctmllm::mllm {

struct TokenSequence {
  std::vector<int64_t> ids;
  std::vector<int64_t> labels;  // −100 where no loss is taken
};

// A right-padded training batch.
struct TokenBatch {
  Tensor<int64_t, Cpu> input_ids;       // [B, S]
  Tensor<int64_t, Cpu> labels;          // [B, S], −100 on prompts and pads
  Tensor<int64_t, Cpu> attention_mask;  // [B, S], 1 = real token
  int64_t answer_tokens = 0;            // labels that count (for tokens/s and loss weighting)
};

// The special ids a model's sequences use, from its config, LLM config and tokenizer.
struct SpecialIds {
  int64_t bos = -1, eos = -1, pad = 0, image = -1;
  std::vector<int64_t> stop;  // every id that ends generation

  template <class T, class D>
  static SpecialIds of(const Model<T, D>& m) {
    const text::Tokenizer& tok = m.tokenizer();
    const io::LlmConfig& lc = m.llm().config();
    SpecialIds s;
    s.image = m.config().image_token_id;
    if (m.config().bos_token_id) s.bos = *m.config().bos_token_id;
    else if (tok.bos_id()) s.bos = *tok.bos_id();
    else if (lc.bos_token_id) s.bos = *lc.bos_token_id;
    CTMLLM_CHECK(s.bos >= 0, "mllm: no BOS token (set bos_token_id in the MLLM config)");
    if (tok.eos_id()) s.eos = *tok.eos_id();
    else if (!lc.eos_token_ids.empty()) s.eos = lc.eos_token_ids.front();
    CTMLLM_CHECK(s.eos >= 0, "mllm: no EOS token (the tokenizer and the LLM config name none)");
    s.pad = tok.pad_id() ? *tok.pad_id() : lc.pad_token_id ? *lc.pad_token_id : s.eos;
    s.stop = lc.eos_token_ids;
    if (std::find(s.stop.begin(), s.stop.end(), s.eos) == s.stop.end()) s.stop.push_back(s.eos);
    return s;
  }
};

// [BOS] [<im_patch>] × N and the rendered conversation, ending where the answer starts.
template <class T, class D>
std::vector<int64_t> prompt_ids(const Model<T, D>& m, const std::vector<text::ChatMessage>& messages) {
  const text::Tokenizer& tok = m.tokenizer();
  const SpecialIds special = SpecialIds::of(m);
  std::string text;
  if (tok.chat_template()) {
    text = tok.apply_chat_template(messages, /*add_generation_prompt=*/true);
    const std::string bos_text = tok.id_to_token(int32_t(special.bos));
    if (text.starts_with(bos_text)) text.erase(0, bos_text.size());
  } else {
    for (const auto& msg : messages) text += (text.empty() ? "" : "\n") + msg.content;
  }
  std::vector<int64_t> ids{special.bos};
  ids.insert(ids.end(), size_t(m.config().visual_tokens()), special.image);
  for (int32_t id : tok.encode(text, /*add_special_tokens=*/false)) ids.push_back(id);
  return ids;
}

// The user turn that asks for one region's findings.
template <class T, class D>
std::vector<text::ChatMessage> region_messages(const Model<T, D>& m, const std::string& region) {
  return {{"user", m.config().region_prompt(region)}};
}

// Prompt + answer + EOS, loss on the answer and EOS only. A sequence longer than max_length
// (0 = no limit) loses the end of its answer; one whose prompt alone does not fit is an Error.
template <class T, class D>
TokenSequence training_sequence(const Model<T, D>& m, const std::vector<text::ChatMessage>& messages,
                                const std::string& answer, int64_t max_length = 0) {
  const SpecialIds special = SpecialIds::of(m);
  TokenSequence s;
  s.ids = prompt_ids(m, messages);
  CTMLLM_CHECK(max_length == 0 || int64_t(s.ids.size()) < max_length, "mllm: the prompt alone takes ", s.ids.size(),
               " tokens, max_length is ", max_length);
  s.labels.assign(s.ids.size(), -100);
  for (int32_t id : m.tokenizer().encode(answer, /*add_special_tokens=*/false)) {
    s.ids.push_back(id);
    s.labels.push_back(id);
  }
  s.ids.push_back(special.eos);
  s.labels.push_back(special.eos);
  if (max_length > 0 && int64_t(s.ids.size()) > max_length) {
    s.ids.resize(size_t(max_length));
    s.labels.resize(size_t(max_length));
  }
  return s;
}

// Right-pads sequences to the longest one.
inline TokenBatch collate(const std::vector<TokenSequence>& seqs, int64_t pad_id) {
  CTMLLM_CHECK(!seqs.empty(), "mllm::collate: no sequences");
  size_t S = 0;
  for (const auto& s : seqs) {
    CTMLLM_CHECK(s.ids.size() == s.labels.size() && !s.ids.empty(), "mllm::collate: a sequence is empty or its labels do not match its ids");
    S = std::max(S, s.ids.size());
  }
  const int64_t B = int64_t(seqs.size());
  TokenBatch b{Tensor<int64_t, Cpu>::full({B, int64_t(S)}, pad_id), Tensor<int64_t, Cpu>::full({B, int64_t(S)}, -100),
               Tensor<int64_t, Cpu>::zeros({B, int64_t(S)}), 0};
  for (int64_t r = 0; r < B; ++r) {
    const auto& s = seqs[size_t(r)];
    for (size_t i = 0; i < s.ids.size(); ++i) {
      b.input_ids.at(r, int64_t(i)) = s.ids[i];
      b.labels.at(r, int64_t(i)) = s.labels[i];
      b.attention_mask.at(r, int64_t(i)) = 1;
    }
    // The first label is never predicted (the loss shifts by one).
    for (size_t i = 1; i < s.labels.size(); ++i) b.answer_tokens += s.labels[i] != -100;
  }
  return b;
}

}  // namespace ctmllm::mllm
