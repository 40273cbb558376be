#pragma once
// What the benchmark programs (benchmarks/) and `ctmllm bench` share about their workloads: the
// published shapes they run at, their inputs, and the work a run does (FLOPs, bytes), so that both
// report the same rates for the same run.
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/vision/config.hpp"

namespace ctmllm::bench {

// Qwen2.5-0.5B's shape (494 M parameters): hidden 896, 24 layers, 14 query / 2 kv heads,
// intermediate 4864, vocabulary 151936, tied embeddings.
inline io::LlmConfig qwen25_05b_config() {
  io::LlmConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 151936;
  c.hidden_size = 896;
  c.intermediate_size = 4864;
  c.num_hidden_layers = 24;
  c.num_attention_heads = 14;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 32768;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.rope.theta = 1e6;
  return c;
}

// Llama-3.1-8B's shape (8.03 B parameters, 16.06 GB in bf16): hidden 4096, 32 layers, 32 query / 8
// kv heads of 128, intermediate 14336, vocabulary 128256, untied lm_head, llama3 RoPE scaling.
inline io::LlmConfig llama31_8b_config() {
  io::LlmConfig c;
  c.model_type = "llama";
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = false;
  c.rope.theta = 500000.0;
  c.rope.type = io::RopeType::Llama3;
  c.rope.factor = 8.0;
  c.rope.low_freq_factor = 1.0;
  c.rope.high_freq_factor = 4.0;
  c.rope.original_max_position_embeddings = 8192;
  return c;
}

// Deterministic token ids [batch, len] spread over the vocabulary, as a prompt.
inline Tensor<int64_t> synthetic_ids(int64_t batch, int64_t len, int64_t vocab) {
  Tensor<int64_t> ids = Tensor<int64_t>::empty({batch, len});
  for (int64_t i = 0; i < ids.numel(); ++i) ids.data()[i] = (i * 7919) % vocab;
  return ids;
}

// Bytes one decode step reads from the weights: every matrix once (lm_head, tied to the embedding
// or not, is a whole vocab × hidden read), and the norm weights and biases (the rank-1 parameters).
// The embedding lookup reads one row per token and is left out.
template <class T, class D>
double decode_weight_bytes(const llm::Decoder<T, D>& m) {
  const auto matrix_bytes = [](const llm::Dense<T, D>& d) {
    return d.weight.defined() ? double(d.weight.value().numel()) * sizeof(T) : double(d.weight_bf16.numel()) * sizeof(bf16);
  };
  double bytes = 0;
  m.for_each_dense([&](const std::string&, const llm::Dense<T, D>& d) { bytes += matrix_bytes(d); });
  if (m.family().tied_embeddings) bytes += matrix_bytes(m.lm_head());  // for_each_dense skips a tied lm_head
  for (const auto& p : m.parameters().all())
    if (p.rank() == 1) bytes += double(p.value().numel()) * sizeof(T);
  return bytes;
}

// A STREAM-like read: sums `a` with every thread (16 accumulators per chunk), as decode streams its
// weights; time it on an array far past the caches for the read bandwidth, decode's roofline.
// Returns the sum, so that the reads cannot be optimised away.
inline double read_all(std::span<const float> a) {
  std::vector<float> partial(size_t(num_threads() * 4), 0.0f);  // parallel_for makes at most this many chunks
  parallel_for(0, int64_t(a.size()), 1 << 20, [&](int64_t lo, int64_t hi) {
    float acc[16] = {};
    for (int64_t i = lo; i + 16 <= hi; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] += a[size_t(i + l)];
    partial[size_t(lo * int64_t(partial.size()) / int64_t(a.size()))] = std::accumulate(acc, acc + 16, 0.0f);
  });
  return std::accumulate(partial.begin(), partial.end(), 0.0);
}

// FLOPs (2 per multiply-add) of a ViT3D forward on `batch` volumes of the config's img_size: the
// patch embedding, each block's qkv, out and MLP projections and attention's two S × S products.
// Norms, GELU and the softmax are left out.
inline double vit3d_forward_flops(const vision::ViT3DConfig& c, int64_t batch = 1) {
  const double patches = double(c.num_patches()), tokens = patches + (c.classification ? 1 : 0);
  const double e = double(c.hidden_size), mlp = double(c.mlp_dim);
  const double patch = double(c.in_channels * c.patch_size[0] * c.patch_size[1] * c.patch_size[2]);
  const double block = 2 * tokens * (4 * e * e + 2 * e * mlp) + 4 * tokens * tokens * e;
  return double(batch) * (2 * patches * patch * e + double(c.num_layers) * block);
}

}  // namespace ctmllm::bench
