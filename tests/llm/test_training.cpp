// Training goes through the same Decoder code: float64 gradients of the logits with respect to every
// parameter and to inputs_embeds (the MLLM's visual tokens) against central finite differences, on
// tiny random models of each family, over a left-padded batch.
#include <string>
#include <vector>

#include "ctmllm/llm/decoder.hpp"
#include "support/catch.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;

namespace {
using DoubleDecoder = llm::Decoder<double>;  // gradchecks run in double

// A small config of `family` (head_dim 8 != hidden / heads for Gemma, as the real ones).
io::LlmConfig tiny(const std::string& family) {
  const io::RopeConfig llama3_rope{.type = io::RopeType::Llama3, .factor = 8, .original_max_position_embeddings = 8};
  return {.model_type = family, .vocab_size = 11, .hidden_size = 16, .intermediate_size = 24, .num_hidden_layers = 2,
          .num_attention_heads = 2, .num_key_value_heads = family == "phi3" ? 2 : 1,
          .head_dim = family == "gemma" ? 12 : 8, .max_position_embeddings = 64,
          .hidden_act = family == "gemma" ? io::Activation::GeluTanh : io::Activation::Silu,
          .tie_word_embeddings = family == "qwen2" || family == "gemma", .attention_bias = family == "qwen2",
          .rope = family == "llama" ? llama3_rope : io::RopeConfig{}};
}
}  // namespace

TEST_CASE("decoder gradients match finite differences for every family", "[llm][training]") {
  const std::string family = GENERATE("llama", "mistral", "phi3", "qwen2", "gemma");
  INFO(family);
  const DoubleDecoder model(tiny(family), llm::RandomWeights(5));
  const auto ids = Tensor<int64_t>::from({0, 0, 3, 7, 1, 4, 9, 2, 10, 5}, {2, 5});
  const auto mask = Tensor<int64_t>::from({0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5});
  const auto& params = model.parameters().all();
  const double err = testing::gradcheck(
      [&](const std::vector<autograd::Variable<double>>&) {
        return model.forward({.input_ids = ids, .attention_mask = mask}).logits;
      },
      params);
  CHECK(err <= 1e-6);
}

TEST_CASE("gradients reach injected input embeddings", "[llm][training]") {
  const std::string family = GENERATE("llama", "gemma");
  INFO(family);
  const DoubleDecoder model(tiny(family), llm::RandomWeights(6));
  const autograd::Variable<double> embeds(Rng(1).normal<double>({2, 4, 16}), /*requires_grad=*/true);
  const auto mask = Tensor<int64_t>::from({0, 1, 1, 1, 1, 1, 1, 1}, {2, 4});
  const double err = testing::gradcheck(
      [&](const std::vector<autograd::Variable<double>>& in) {
        return model.forward({.inputs_embeds = in[0], .attention_mask = mask}).logits;
      },
      {embeds});
  CHECK(err <= 1e-6);
}
