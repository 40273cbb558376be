#pragma once
// The five decoder families the paper tried, as switches over one shared block implementation
// (decoder.hpp). Each family is one function of its config.json: what differs between
// LlamaForCausalLM, MistralForCausalLM, Phi3ForCausalLM, Qwen2ForCausalLM and GemmaForCausalLM
// is which tensors exist (fused or separate projections, biases, a tied head) and three numeric
// details (the RMSNorm weight offset, the embedding scale, the MLP activation). Head counts, head_dim
// and the RoPE variant come from the config for every family.
#include <string>

#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/ops/activation.hpp"

namespace ctmllm::llm {

struct Family {
  std::string model_type;
  bool fused_qkv = false;         // one qkv_proj [(Hq + 2 Hkv)·head_dim, H], split into q, k, v at run time
  bool fused_gate_up = false;     // one gate_up_proj [2 I, H], gate rows first
  bool qkv_bias = false;          // biases on q, k, v
  bool o_bias = false;            // bias on o_proj
  bool mlp_bias = false;          // biases on gate, up, down
  double norm_weight_offset = 0;  // RMSNorm scales by (offset + w)
  bool scale_embeddings = false;  // embeddings (token and injected) × √hidden
  bool tied_embeddings = false;   // lm_head = embed_tokens
  ops::Activation activation = ops::Activation::silu;  // of the gate in act(gate) · up
};

namespace family_detail {
inline ops::Activation activation(io::Activation a) {
  switch (a) {
    case io::Activation::Silu:
      return ops::Activation::silu;
    case io::Activation::Gelu:
      return ops::Activation::gelu_erf;
    case io::Activation::GeluTanh:
      return ops::Activation::gelu_tanh;
  }
  return ops::Activation::silu;
}
inline Family common(const io::LlmConfig& c) {
  Family f;
  f.model_type = c.model_type;
  f.tied_embeddings = c.tie_word_embeddings;
  f.activation = activation(c.hidden_act);
  return f;
}
}  // namespace family_detail

// Llama (Llama-3.1: GQA, "llama3" RoPE scaling from the config): optional attention and MLP biases.
inline Family llama(const io::LlmConfig& c) {
  Family f = family_detail::common(c);
  f.qkv_bias = f.o_bias = c.attention_bias;
  f.mlp_bias = c.mlp_bias;
  return f;
}

// Mistral: Llama's block without biases.
inline Family mistral(const io::LlmConfig& c) { return family_detail::common(c); }

// Phi-3: fused qkv_proj and gate_up_proj, no biases.
inline Family phi3(const io::LlmConfig& c) {
  Family f = family_detail::common(c);
  f.fused_qkv = f.fused_gate_up = true;
  return f;
}

// Qwen2 / Qwen2.5: biases on q, k, v (not o); tied embeddings in the small models.
inline Family qwen2(const io::LlmConfig& c) {
  Family f = family_detail::common(c);
  f.qkv_bias = true;
  return f;
}

// Gemma: (1 + w) RMSNorm, embeddings × √hidden, tanh-GELU, tied head, head_dim from the config.
inline Family gemma(const io::LlmConfig& c) {
  Family f = family_detail::common(c);
  f.qkv_bias = f.o_bias = c.attention_bias;
  f.norm_weight_offset = 1.0;
  f.scale_embeddings = true;
  return f;
}

// The family of a parsed config.json.
inline Family family_of(const io::LlmConfig& c) {
  if (c.model_type == "llama") return llama(c);
  if (c.model_type == "mistral") return mistral(c);
  if (c.model_type == "phi3") return phi3(c);
  if (c.model_type == "qwen2") return qwen2(c);
  if (c.model_type == "gemma") return gemma(c);
  fail("llm: model_type '", c.model_type,
       "' is not supported by llm::Decoder (llama, mistral, phi3, qwen2 and gemma are; gemma2 needs soft-capping and "
       "alternating sliding-window layers)");
}

}  // namespace ctmllm::llm
