#pragma once
// A batch of prompts, the prefill every decoding strategy starts with, and its decode steps.
//
// Prompts of different lengths are left-padded (the real tokens end together, so every row's next
// token is at the same cache slot); the attention mask hides the pads and positions follow it.
// The model reads inputs_embeds when given — the MLLM's prompts, with visual tokens spliced in
// as embeddings — and input_ids otherwise; ids given beside embeddings seed the history that the
// repetition penalty and the n-gram ban look at.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/llm/static_decode_step.hpp"
#include "ctmllm/ops/reduce.hpp"

namespace ctmllm::generate {

template <class T, class D = Cpu>
struct Prompt {
  Tensor<int64_t, D> input_ids;            // [B, S]
  autograd::Variable<T, D> inputs_embeds;  // [B, S, H]
  Tensor<int64_t, D> attention_mask;       // [B, S], 1 = real token; undefined = no padding

  int64_t batch() const { return inputs_embeds.defined() ? inputs_embeds.size(0) : input_ids.size(0); }
  int64_t length() const { return inputs_embeds.defined() ? inputs_embeds.size(1) : input_ids.size(1); }
};

// Token-id prompts left-padded with pad_id to the longest one.
template <class T = float, class D = Cpu>
Prompt<T, D> left_pad(const std::vector<std::vector<int64_t>>& prompts, int64_t pad_id) {
  CTMLLM_CHECK(!prompts.empty(), "left_pad: no prompts");
  size_t S = 0;
  for (const auto& p : prompts) S = std::max(S, p.size());
  CTMLLM_CHECK(S > 0, "left_pad: every prompt is empty");
  const int64_t B = int64_t(prompts.size());
  Tensor<int64_t, Cpu> ids = Tensor<int64_t, Cpu>::full({B, int64_t(S)}, pad_id);
  Tensor<int64_t, Cpu> mask = Tensor<int64_t, Cpu>::zeros({B, int64_t(S)});
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[size_t(b)];
    for (size_t i = 0; i < p.size(); ++i) {
      ids.at(b, int64_t(S - p.size() + i)) = p[i];
      mask.at(b, int64_t(S - p.size() + i)) = 1;
    }
  }
  return {ids.template to_device<D>(), {}, mask.template to_device<D>()};
}

namespace detail {

template <class T, class D>
void check_prompt(const Prompt<T, D>& p) {
  CTMLLM_CHECK(p.input_ids.defined() || p.inputs_embeds.defined(),
               "generate: the prompt has neither ids nor embeddings");
  if (p.input_ids.defined()) check_rank(p.input_ids, 2, "generate", "input_ids");
  if (p.inputs_embeds.defined()) {
    CTMLLM_CHECK(p.inputs_embeds.rank() == 3, "generate: inputs_embeds must be [B, S, H], got ",
                 p.inputs_embeds.value().describe());
    if (p.input_ids.defined())
      check_shape(p.input_ids, Shape{p.batch(), p.length()}, "generate", "input_ids (beside inputs_embeds)");
  }
  if (p.attention_mask.defined())
    check_shape(p.attention_mask, Shape{p.batch(), p.length()}, "generate", "attention_mask");
}

// Each row's real prompt ids (empty when the prompt is given as embeddings only).
template <class T, class D>
std::vector<std::vector<int64_t>> prompt_history(const Prompt<T, D>& p) {
  std::vector<std::vector<int64_t>> h(size_t(p.batch()));
  if (!p.input_ids.defined()) return h;
  const std::vector<int64_t> ids = p.input_ids.to_vector();
  const std::vector<int64_t> mask = p.attention_mask.defined() ? p.attention_mask.to_vector() : std::vector<int64_t>();
  const int64_t S = p.length();
  for (int64_t b = 0; b < p.batch(); ++b)
    for (int64_t s = 0; s < S; ++s)
      if (mask.empty() || mask[size_t(b * S + s)] != 0) h[size_t(b)].push_back(ids[size_t(b * S + s)]);
  return h;
}

// Logits [B, 1, V] as host floats, row-major [B·V].
template <class T, class D>
std::vector<float> host_logits(const autograd::Variable<T, D>& logits) {
  const Tensor<float, Cpu> f = logits.value().template to_device<Cpu>().template to<float>();
  return std::vector<float>(f.data(), f.data() + f.numel());
}

// Each row's argmax of logits [B, 1, V], taken where the logits are (on the GPU only B ids come
// back); ties and NaN as generate::argmax.
template <class T, class D>
std::vector<int64_t> row_argmax(const autograd::Variable<T, D>& logits) {
  return ops::argmax(logits.value(), 2).to_vector();
}

// Runs the prompt into `cache`; returns the logits of each row's next token [B, 1, V].
template <class T, class D>
autograd::Variable<T, D> prefill(const llm::Decoder<T, D>& model, const Prompt<T, D>& p, llm::KvCache<T, D>& cache) {
  llm::DecoderInput<T, D> in;
  if (p.inputs_embeds.defined())
    in.inputs_embeds = p.inputs_embeds;
  else
    in.input_ids = p.input_ids;
  in.attention_mask = p.attention_mask;
  in.cache = &cache;
  in.logits_to_keep = 1;
  return model.forward(in).logits;
}

// Decode steps over `cache`: each call feeds one token per row ([B], 1 = real) and returns the logits
// of the next ones [B, 1, V]. On the GPU with cuda_graphs the steps run on fixed buffers and replay a
// CUDA graph (llm/static_decode_step.hpp); otherwise each is a Decoder::forward over the cache.
template <class T, class D>
class DecodeSteps {
 public:
  DecodeSteps(const llm::Decoder<T, D>& model, llm::KvCache<T, D>& cache, bool cuda_graphs)
      : model_(model), cache_(cache) {
    if (!std::is_same_v<D, Cpu> && cuda_graphs) graph_.emplace(model, cache);
  }
  autograd::Variable<T, D> operator()(const std::vector<int64_t>& tokens) {
    if (graph_) return (*graph_)(tokens);
    const int64_t B = int64_t(tokens.size());
    llm::DecoderInput<T, D> in;
    in.input_ids = Tensor<int64_t, Cpu>::from(std::span<const int64_t>(tokens), {B, 1}).template to_device<D>();
    in.cache = &cache_;
    return model_.forward(in).logits;
  }

 private:
  const llm::Decoder<T, D>& model_;
  llm::KvCache<T, D>& cache_;
  std::optional<llm::StaticDecodeStep<T, D>> graph_;
};

}  // namespace detail
}  // namespace ctmllm::generate
