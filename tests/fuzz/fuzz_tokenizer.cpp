// libFuzzer target for the tokenizers. The first input byte picks what the rest feeds:
//   0: text for encode() of the small byte-level BPE fixture (bpe_llama3); valid UTF-8 must
//      survive encode -> decode unchanged, since byte-level BPE without a normalizer is lossless
//   1: a tokenizer.json; when it loads, it encodes and decodes a sample text
//   2: a SentencePiece tokenizer.model; when it loads, likewise
//   3: token ids (2 bytes each) for decode() of bpe_llama3
// Anything may throw ctmllm::Error; nothing may crash, leak or trip a sanitizer.
//
// Build and run from the repository root (CTMLLM_TEST_FIXTURES may point elsewhere):
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I include \
//     tests/fuzz/fuzz_tokenizer.cpp -o fuzz_tokenizer
//   ./fuzz_tokenizer -max_total_time=20 tests/fuzz/corpus/tokenizer
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/text/tokenizer.hpp"

#ifndef CTMLLM_TEST_FIXTURES
#define CTMLLM_TEST_FIXTURES "tests/fixtures"
#endif

namespace {

const ctmllm::text::Tokenizer& small_bpe() {
  static const ctmllm::text::Tokenizer t =
      ctmllm::text::Tokenizer::from_file(std::string(CTMLLM_TEST_FIXTURES) + "/tokenizer/bpe_llama3/tokenizer.json");
  return t;
}

template <class Backend>
void exercise(const Backend& b) {
  const std::string sample = "The liver, 3.5 cm (HU -12). 肝脏 🙂 <|eot_id|> <s>";
  const std::vector<int32_t> ids = b.encode(sample, true);
  b.decode(ids, false);
  b.decode(ids, true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0: {
        const auto& tok = small_bpe();
        tok.encode(input, true);
        if (tok.decode(tok.encode(input, false), false) != input) std::abort();  // only valid UTF-8 gets here
        break;
      }
      case 1: exercise(ctmllm::text::JsonTokenizer::from_string(input, "fuzz.json")); break;
      case 2: {
        exercise(ctmllm::text::SentencePieceTokenizer(ctmllm::text::SentencePieceModel::from_bytes(input, "fuzz.model")));
        break;
      }
      case 3: {
        std::vector<int32_t> ids;
        for (size_t i = 0; i + 1 < input.size(); i += 2)
          ids.push_back(int32_t(uint8_t(input[i]) | (uint8_t(input[i + 1]) << 8)) - 64);
        small_bpe().decode(ids, (data[0] & 4) != 0);
        break;
      }
    }
  } catch (const ctmllm::Error&) {
    // rejected input: the expected outcome for most of it
  }
  return 0;
}
