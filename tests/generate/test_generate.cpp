// generate(): greedy decoding with the KV cache against transformers' generate for every family,
// batched (left-padded) prompts and prompts given as embeddings, streaming, sampling determinism,
// stop tokens and stop strings, and option errors.
#include <string>
#include <vector>

#include "ctmllm/generate/generate.hpp"
#include "support/catch.hpp"
#include "support/fixtures.hpp"
#include "support/llm_fixtures.hpp"

using namespace ctmllm;
using generate::GenerationOptions;

namespace {
using Model = llm::Decoder<float>;
std::vector<int64_t> row(const Tensor<int64_t>& t, int64_t r, int64_t s0 = 0) {
  const auto v = t.select(0, r).clone().to_vector();
  return std::vector<int64_t>(v.begin() + s0, v.end());
}
GenerationOptions greedy(int64_t n) {
  GenerationOptions o;
  o.max_new_tokens = n;
  return o;
}
}  // namespace

TEST_CASE("greedy decoding with the KV cache reproduces transformers' generate", "[generate]") {
  const std::string family = GENERATE("llama", "mistral", "phi3", "qwen2", "gemma");
  INFO(family);
  const Model model = testing::load_llm_fixture(family);
  const testing::Fixture ref = testing::llm_reference(family);
  const auto prompt = ref.get<int64_t>("greedy_prompt");                             // [1, 9]
  const std::vector<int64_t> expect = row(ref.get<int64_t>("greedy_output"), 0, 9);  // 12 new tokens
  const auto out = generate::generate(model, generate::Prompt<float>{.input_ids = prompt}, greedy(12));
  REQUIRE(out.size() == 1);
  CHECK(out[0].tokens == expect);
  CHECK(out[0].reason == generate::StopReason::max_new_tokens);
}

TEST_CASE("a left-padded batch and embedding prompts generate what each prompt generates alone", "[generate]") {
  const Model model = testing::load_llm_fixture("qwen2");
  const testing::Fixture ref = testing::llm_reference("qwen2");
  const auto ids = ref.get<int64_t>("input_ids");
  const std::vector<int64_t> r0 = row(ids, 0), r1 = row(ids, 1);
  const std::vector<std::vector<int64_t>> prompts = {r0, std::vector<int64_t>(r1.begin(), r1.begin() + 6),
                                                     std::vector<int64_t>(r0.begin() + 3, r0.begin() + 12)};
  const auto batch = generate::left_pad<float>(prompts, 0);
  const auto together = generate::generate(model, batch, greedy(10));
  REQUIRE(together.size() == 3);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto alone = generate::generate(model, generate::left_pad<float>({prompts[i]}, 0), greedy(10));
    CHECK(together[i].tokens == alone[0].tokens);
  }
  // The same batch as embeddings (how the MLLM passes visual tokens), with and without ids beside.
  autograd::Variable<float> embeds;
  {
    autograd::NoGradGuard no_grad;
    embeds = model.embed(batch.input_ids);
  }
  const auto from_embeds =
      generate::generate(model, {.inputs_embeds = embeds, .attention_mask = batch.attention_mask}, greedy(10));
  for (size_t i = 0; i < prompts.size(); ++i) CHECK(from_embeds[i].tokens == together[i].tokens);
}

TEST_CASE("bf16 weights decode the same greedy tokens on the fixtures", "[generate][bf16]") {
  const std::string family = GENERATE("llama", "qwen2", "gemma");
  INFO(family);
  const testing::Fixture ref = testing::llm_reference(family);
  const auto prompt = ref.get<int64_t>("greedy_prompt");
  const generate::Prompt<float> p{.input_ids = prompt};
  const auto a = generate::generate(testing::load_llm_fixture(family, llm::Storage::bf16), p, greedy(12));
  const auto b = generate::generate(testing::load_llm_fixture(family), p, greedy(12));
  // bf16 rounding may flip a near-tie late in the sequence; the first tokens must agree.
  CHECK(std::vector<int64_t>(a[0].tokens.begin(), a[0].tokens.begin() + 4) ==
        std::vector<int64_t>(b[0].tokens.begin(), b[0].tokens.begin() + 4));
}

TEST_CASE("streaming reports every token of every running row in order", "[generate]") {
  const Model model = testing::load_llm_fixture("llama");
  const auto batch = generate::left_pad<float>({{5, 9, 11, 40}, {7, 8}}, 0);
  std::vector<std::vector<int64_t>> streamed(2);
  GenerationOptions o = greedy(6);
  o.on_token = [&](int64_t r, int64_t token) { streamed[size_t(r)].push_back(token); };
  const auto out = generate::generate(model, batch, o);
  CHECK(streamed[0] == out[0].tokens);
  CHECK(streamed[1] == out[1].tokens);
}

TEST_CASE("stop tokens and stop strings end a row, the others continue", "[generate]") {
  const Model model = testing::load_llm_fixture("llama");
  const auto batch = generate::left_pad<float>({{5, 9, 11, 40}, {7, 8}}, 0);
  const auto free_run = generate::generate(model, batch, greedy(8));
  // Row 0's third token as eos: row 0 stops there (the eos kept), row 1 runs on unchanged unless it meets it.
  GenerationOptions o = greedy(8);
  const int64_t eos = free_run[0].tokens[2];
  o.eos_token_ids = {eos};
  const auto out = generate::generate(model, batch, o);
  CHECK(out[0].tokens == std::vector<int64_t>(free_run[0].tokens.begin(), free_run[0].tokens.begin() + 3));
  CHECK(out[0].reason == generate::StopReason::eos);
  const auto hit = std::find(free_run[1].tokens.begin(), free_run[1].tokens.end(), eos);
  CHECK(out[1].tokens ==
        std::vector<int64_t>(free_run[1].tokens.begin(), hit == free_run[1].tokens.end() ? hit : hit + 1));
  // Stop strings on a detokenizer that spells token i as "<i>": "5><" spans two tokens when a token
  // ending in 5 is followed by another.
  GenerationOptions s = greedy(8);
  s.detokenize = [](std::span<const int64_t> ids) {
    std::string text;
    for (const int64_t id : ids) text += "<" + std::to_string(id) + ">";
    return text;
  };
  const std::string needle =
      "<" + std::to_string(free_run[1].tokens[1]) + "><" + std::to_string(free_run[1].tokens[2]) + ">";
  s.stop_strings = {needle};
  const auto stopped = generate::generate(model, batch, s);
  CHECK(stopped[1].reason == generate::StopReason::stop_string);
  CHECK(stopped[1].tokens == std::vector<int64_t>(free_run[1].tokens.begin(), free_run[1].tokens.begin() + 3));
}

TEST_CASE("sampling is reproducible by seed and follows the filters", "[generate]") {
  const Model model = testing::load_llm_fixture("phi3");
  const auto batch = generate::left_pad<float>({{5, 9, 11, 40}, {7, 8}, {100, 3, 3}}, 0);
  GenerationOptions o = greedy(10);
  o.do_sample = true;
  o.temperature = 1.5;
  o.seed = 1234;
  const auto a = generate::generate(model, batch, o), b = generate::generate(model, batch, o);
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].tokens == b[i].tokens);
  o.seed = 99;
  const auto c = generate::generate(model, batch, o);
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) differs = differs || a[i].tokens != c[i].tokens;
  CHECK(differs);
  // top_k = 1 leaves one token: sampling becomes greedy.
  o.top_k = 1;
  const auto k1 = generate::generate(model, batch, o), g = generate::generate(model, batch, greedy(10));
  for (size_t i = 0; i < g.size(); ++i) CHECK(k1[i].tokens == g[i].tokens);
}

TEST_CASE("generation option errors are ctmllm::Error", "[generate][errors]") {
  const Model model = testing::load_llm_fixture("llama");
  const auto p = generate::left_pad<float>({{5, 9}}, 0);
  auto bad = [&](auto edit) {
    GenerationOptions o = greedy(4);
    edit(o);
    CHECK_THROWS_AS(generate::generate(model, p, o), Error);
  };
  bad([](GenerationOptions& o) { o.max_new_tokens = -1; });
  bad([](GenerationOptions& o) { o.do_sample = true, o.temperature = 0; });
  bad([](GenerationOptions& o) { o.top_p = 0; });
  bad([](GenerationOptions& o) { o.top_k = -2; });
  bad([](GenerationOptions& o) { o.min_p = 1.5; });
  bad([](GenerationOptions& o) { o.repetition_penalty = 0; });
  bad([](GenerationOptions& o) { o.num_beams = 0; });
  bad([](GenerationOptions& o) { o.stop_strings = {"x"}; });  // no detokenize
  bad([](GenerationOptions& o) { o.num_beams = 2, o.on_token = [](int64_t, int64_t) {}; });
  CHECK_THROWS_AS(generate::generate(model, generate::left_pad<float>({{5, 384}}, 0), greedy(2)), Error);  // bad id
  CHECK_THROWS_AS(generate::generate(model, generate::Prompt<float>{}, greedy(2)), Error);  // empty prompt
}

TEST_CASE("a generation_config.json maps onto the options", "[generate]") {
  const auto g = io::load_generation_config(testing::fixture_path("io/config/generation_llama31.json"));
  const auto o = generate::from_generation_config(g, 10);
  CHECK(o.do_sample == g.do_sample);
  CHECK(o.temperature == g.temperature);
  CHECK(o.top_p == g.top_p);
  CHECK(o.eos_token_ids == g.eos_token_ids);
  CHECK(o.max_new_tokens == (g.max_new_tokens ? *g.max_new_tokens : std::max<int64_t>(0, g.max_length - 10)));
}
