#pragma once
// A small random 3D MLLM with a real tokenizer, for tests of the report pipeline and the CLI.
#include "ctmllm/mllm/model.hpp"
#include "support/fixtures.hpp"

namespace ctmllm::testing {

// A small random MLLM around the byte-level BPE test tokenizer (615 tokens, <im_patch> among them),
// on device D with the same weights on every device.
template <class D = Cpu>
mllm::Model<float, D> tiny_mllm(bool mask, uint64_t seed = 3) {
  text::Tokenizer tok = text::Tokenizer::from_file(fixture_path("tokenizer/bpe_llama3"));
  const io::LlmConfig lc{.model_type = "llama", .vocab_size = int64_t(tok.vocab_size()), .hidden_size = 32,
                         .intermediate_size = 64, .num_hidden_layers = 2, .num_attention_heads = 4,
                         .num_key_value_heads = 2, .head_dim = 8, .max_position_embeddings = 256,
                         .bos_token_id = *tok.token_to_id("<|begin_of_text|>"),
                         .eos_token_ids = {*tok.token_to_id("<|end_of_text|>")}};
  mllm::MllmConfig c = mllm::MllmConfig::from_json(
      nlohmann::json::parse(R"({"image_token_id": 0,
        "vision": {"img_size": [16, 32, 32], "patch_size": [4, 8, 8], "hidden_size": 24, "num_layers": 1,
                   "num_heads": 2, "mlp_dim": 48},
        "projector": {"type": "spp", "pool": 2, "in_dim": 24, "out_dim": 32}})"),
      "test config");
  c.image_token_id = *tok.token_to_id("<im_patch>");
  c.segmentation_mask = mask;
  c.mask_num_classes = 2;
  mllm::Model<float, D> m(c, llm::Decoder<float, D>(lc, llm::RandomWeights(seed)));
  Rng rng(seed);
  m.init(rng);
  m.set_tokenizer(std::move(tok), fixture_path("tokenizer/bpe_llama3"));
  return m;
}

}  // namespace ctmllm::testing
