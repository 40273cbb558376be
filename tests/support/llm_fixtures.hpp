#pragma once
// The transformers fixtures of the five LLM families (tests/fixtures/llm/<family>: a tiny random
// model and its reference outputs, computed in float64), as the decoder, KV-cache and generation
// tests load them.
#include <string>

#include "ctmllm/llm/decoder.hpp"
#include "support/fixtures.hpp"

namespace ctmllm::testing {

inline llm::Decoder<float> load_llm_fixture(const std::string& family, llm::Storage storage = llm::Storage::compute) {
  return llm::Decoder<float>::from_pretrained(fixture_path("llm/" + family), {storage});
}
inline Fixture llm_reference(const std::string& family) { return Fixture("llm/" + family + "/reference.safetensors"); }

}  // namespace ctmllm::testing
