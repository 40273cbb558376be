// KvCache: prefill then decode equals the full forward (every family, GQA/MQA included), a
// left-padded batch through the cache gives each row's unpadded logits, row selection and in-place
// reordering (beams; every pattern of 4 and 5 rows), and fixed-shape decode steps (StaticDecodeStep,
// what the GPU replays as a CUDA graph) equal the forward's steps, also over reordered rows.
#include <numeric>
#include <string>
#include <vector>

#include "ctmllm/core/rng.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/llm/static_decode_step.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/llm_fixtures.hpp"

using namespace ctmllm;
using testing::rel_error;

using Model = llm::Decoder<float>;

TEST_CASE("prefill then decode through the cache equals the full forward", "[llm][kv_cache]") {
  const std::string family = GENERATE("llama", "mistral", "phi3", "qwen2", "gemma");
  const auto storage = GENERATE(llm::Storage::compute, llm::Storage::bf16);
  INFO(family << (storage == llm::Storage::bf16 ? " bf16" : " float"));
  const Model model = testing::load_llm_fixture(family, storage);
  const auto ids = testing::llm_reference(family).get<int64_t>("input_ids");  // [2, 17]
  autograd::NoGradGuard no_grad;
  const Tensor<float> full = model.forward({.input_ids = ids}).logits.value();
  auto cache = model.make_cache(2, 20);
  CHECK(cache.kv_heads() == model.config().num_key_value_heads);  // GQA-aware: kv heads, not query heads
  // Chunks of 9, 1, 1, 3, 1, 1, 1 tokens: a prefill, single-token steps and a multi-token step.
  int64_t s0 = 0;
  for (const int64_t n : {9, 1, 1, 3, 1, 1, 1}) {
    const auto out = model.forward({.input_ids = ids.slice(1, s0, s0 + n).clone(), .cache = &cache});
    const double err = rel_error(out.logits.value(), full.slice(1, s0, s0 + n).clone());
    INFO("tokens [" << s0 << ", " << s0 + n << "): " << err);
    CHECK(err <= 1e-5);
    s0 += n;
    CHECK(cache.length() == s0);
    CHECK(cache.real_tokens(0) == s0);
  }
}

TEST_CASE("a left-padded batch through the cache gives each row's unpadded logits", "[llm][kv_cache]") {
  const std::string family = GENERATE("llama", "qwen2", "gemma");
  INFO(family);
  const Model model = testing::load_llm_fixture(family);
  const auto ref = testing::llm_reference(family);
  const auto ids = ref.get<int64_t>("padded_input_ids"), mask = ref.get<int64_t>("padded_attention_mask");
  const auto expect = ref.get("padded_logits");  // [2, 9, V]; row 1 starts with 4 pads
  autograd::NoGradGuard no_grad;
  auto cache = model.make_cache(2, 9);
  // The first 6 tokens in one step (row 1: 4 pads and 2 real tokens), then one at a time.
  int64_t s0 = 0;
  for (const int64_t n : {6, 1, 1, 1}) {
    const auto out = model.forward({.input_ids = ids.slice(1, s0, s0 + n).clone(),
                                    .attention_mask = mask.slice(1, s0, s0 + n).clone(),
                                    .cache = &cache});
    const Tensor<float> logits = out.logits.value();
    CHECK(rel_error(logits.select(0, 0).clone(), expect.select(0, 0).slice(0, s0, s0 + n).clone()) <= 1e-5);
    const int64_t r0 = std::max<int64_t>(s0, 4);  // row 1's real positions in this chunk
    if (r0 < s0 + n)
      CHECK(rel_error(logits.select(0, 1).slice(0, r0 - s0, n).clone(),
                      expect.select(0, 1).slice(0, r0, s0 + n).clone()) <= 1e-5);
    s0 += n;
  }
  CHECK(cache.real_tokens(0) == 9);
  CHECK(cache.real_tokens(1) == 5);
  CHECK_FALSE(cache.kept(1, 3));
  CHECK(cache.kept(1, 4));
}

TEST_CASE("select_rows expands and reorders the cache's rows", "[llm][kv_cache]") {
  const Model model = testing::load_llm_fixture("gemma");  // MQA: one kv head
  const auto ids = testing::llm_reference("gemma").get<int64_t>("input_ids");
  autograd::NoGradGuard no_grad;
  auto cache = model.make_cache(2, 17);
  (void)model.forward({.input_ids = ids.slice(1, 0, 16).clone(), .cache = &cache});
  // Rows (1, 0, 1): the last token of each source row continues exactly as in the full forward.
  auto picked = cache.select_rows({1, 0, 1});
  CHECK(picked.batch() == 3);
  CHECK(picked.length() == 16);
  const auto last = ids.slice(1, 16, 17).clone();  // [2, 1]
  const auto next = Tensor<int64_t>::from({last.at(1, 0), last.at(0, 0), last.at(1, 0)}, {3, 1});
  const Tensor<float> got = model.forward({.input_ids = next, .cache = &picked}).logits.value();
  const Tensor<float> full = model.forward({.input_ids = ids}).logits.value().slice(1, 16, 17).clone();
  for (const auto& [r, src] : {std::pair{0, 1}, {1, 0}, {2, 1}})
    CHECK(rel_error(got.select(0, r).clone(), full.select(0, src).clone()) <= 1e-5);
  CHECK_THROWS_AS(cache.select_rows({2}), Error);
}

TEST_CASE("reorder_rows in place equals select_rows, for every row pattern of 4 and 5 rows", "[llm][kv_cache]") {
  const int64_t B = GENERATE(4, 5);
  // 2 layers, 2 kv heads, head_dim 3, 4 of 7 slots filled with distinct values; row b keeps slot
  // b % 4 out (a pad), so the keep flags and real-token counts differ by row too.
  llm::KvCache<float> cache(2, B, 2, 3, 7);
  std::vector<uint8_t> keep(size_t(B * 4), 1);
  for (int64_t b = 0; b < B; ++b) keep[size_t(b * 4 + b % 4)] = 0;
  cache.reserve(4, keep);
  Rng rng(7);
  for (int64_t l = 0; l < 2; ++l)
    cache.store(l, rng.uniform<float>({B, 2, 4, 3}, -1, 1), rng.uniform<float>({B, 2, 4, 3}, -1, 1));
  cache.advance(4);
  std::vector<int64_t> identity(static_cast<size_t>(B));
  std::iota(identity.begin(), identity.end(), int64_t(0));
  int64_t patterns = 1, failed = 0;
  for (int64_t b = 0; b < B; ++b) patterns *= B;
  std::string first_failure;
  for (int64_t p = 0; p < patterns; ++p) {  // rows[r] = digit r of p in base B: swaps, cycles, repeats
    std::vector<int64_t> rows;
    for (int64_t r = 0, q = p; r < B; ++r, q /= B) rows.push_back(q % B);
    const auto want = cache.select_rows(rows);
    auto got = cache.select_rows(identity);
    got.reorder_rows(rows);
    bool same = got.length() == 4;
    for (int64_t l = 0; l < 2; ++l)  // all 7 slots: the 3 never written stay zero in both
      same = same && testing::max_abs_diff(got.keys(l, 7), want.keys(l, 7)) == 0 &&
             testing::max_abs_diff(got.values(l, 7), want.values(l, 7)) == 0;
    for (int64_t b = 0; b < B; ++b) {
      same = same && got.real_tokens(b) == want.real_tokens(b);
      for (int64_t j = 0; j < 7; ++j) same = same && got.kept(b, j) == want.kept(b, j);
    }
    if (!same && failed++ == 0) first_failure = "pattern " + std::to_string(p);
  }
  INFO(first_failure);
  CHECK(failed == 0);
  // Bad rows are an Error and change nothing.
  auto copy = cache.select_rows(identity);
  CHECK_THROWS_WITH(copy.reorder_rows(std::vector<int64_t>(size_t(B - 1), 0)),
                    Catch::Contains("KvCache::reorder_rows: " + std::to_string(B - 1) + " rows for a batch of"));
  std::vector<int64_t> bad(size_t(B), 0);
  bad.back() = B;
  CHECK_THROWS_WITH(copy.reorder_rows(bad), Catch::Contains("outside a batch of"));
  for (int64_t l = 0; l < 2; ++l) CHECK(testing::max_abs_diff(copy.keys(l, 4), cache.keys(l, 4)) == 0);
}

TEST_CASE("fixed-shape decode steps follow rows reordered in place (beam search on the GPU)", "[llm][kv_cache]") {
  const Model model = testing::load_llm_fixture("qwen2");
  const auto ref = testing::llm_reference("qwen2");
  const auto ids = ref.get<int64_t>("padded_input_ids"), mask = ref.get<int64_t>("padded_attention_mask");  // [2, 9]
  autograd::NoGradGuard no_grad;
  // The same left-padded prefill in two caches, each expanded to 3 rows (beams of prompts 0, 1, 1).
  auto eager = model.make_cache(2, 11), fixed = model.make_cache(2, 11);
  for (auto* cache : {&eager, &fixed}) {
    (void)model.forward({.input_ids = ids.slice(1, 0, 6).clone(), .attention_mask = mask.slice(1, 0, 6).clone(),
                         .cache = cache});
    *cache = cache->select_rows({0, 1, 1});
  }
  llm::StaticDecodeStep<float> step(model, fixed);
  // Before each step the rows move as beams do: a swap, a repeat, nothing, a 3-cycle, a repeat.
  const std::vector<std::vector<int64_t>> orders = {{0, 2, 1}, {2, 2, 0}, {0, 1, 2}, {1, 2, 0}, {1, 1, 2}};
  for (size_t s = 0; s < orders.size(); ++s) {
    const std::vector<int64_t> tokens = {int64_t(11 + s), int64_t(40 + 3 * s), int64_t(7 + 5 * s)};
    eager.reorder_rows(orders[s]);
    fixed.reorder_rows(orders[s]);
    const Tensor<float> want =
        model.forward({.input_ids = Tensor<int64_t>::from(std::span<const int64_t>(tokens), {3, 1}), .cache = &eager})
            .logits.value();
    const Tensor<float> got = step(tokens).value();
    INFO("step " << s);
    CHECK(rel_error(got, want) <= 1e-6);
    for (int64_t b = 0; b < 3; ++b) CHECK(fixed.real_tokens(b) == eager.real_tokens(b));
  }
  // Row 0 ends on prompt 0 (6 real tokens + 5), row 2 on prompt 1 (4 of its 6 were pads).
  CHECK(fixed.real_tokens(0) == 11);
  CHECK(fixed.real_tokens(2) == 7);
}

TEST_CASE("fixed-shape decode steps equal the forward's steps over a left-padded batch", "[llm][kv_cache]") {
  const std::string family = GENERATE("llama", "mistral", "phi3", "qwen2", "gemma");
  INFO(family);
  const Model model = testing::load_llm_fixture(family);
  const auto ref = testing::llm_reference(family);
  const auto ids = ref.get<int64_t>("padded_input_ids"), mask = ref.get<int64_t>("padded_attention_mask");  // [2, 9]
  autograd::NoGradGuard no_grad;
  // The same prefill of 6 tokens (row 1: 4 pads) into two caches with room for 6 more.
  auto eager = model.make_cache(2, 12), fixed = model.make_cache(2, 12);
  for (auto* cache : {&eager, &fixed})
    (void)model.forward({.input_ids = ids.slice(1, 0, 6).clone(), .attention_mask = mask.slice(1, 0, 6).clone(),
                         .cache = cache});
  llm::StaticDecodeStep<float> step(model, fixed);
  // The prompt's last 3 tokens, then 3 more: each step's logits as the forward's over the cache.
  for (int64_t s = 6; s < 12; ++s) {
    const std::vector<int64_t> tokens = s < 9 ? std::vector<int64_t>{ids.at(0, s), ids.at(1, s)}
                                              : std::vector<int64_t>{s, 2 * s + 1};
    const Tensor<float> want =
        model.forward({.input_ids = Tensor<int64_t>::from(std::span<const int64_t>(tokens), {2, 1}), .cache = &eager})
            .logits.value();
    const Tensor<float> got = step(tokens).value();
    INFO("step at slot " << s);
    CHECK(got.shape() == want.shape());
    CHECK(rel_error(got, want) <= 1e-6);
    CHECK(fixed.length() == eager.length());
    CHECK(fixed.real_tokens(1) == eager.real_tokens(1));
  }
  CHECK(fixed.real_tokens(1) == 8);
  CHECK_FALSE(step.graph_captured());  // the CPU runs every step directly
  CHECK_THROWS_AS(step({1, 2}), Error);  // the cache is full
}

TEST_CASE("fixed-shape decode steps reject bad input", "[llm][kv_cache]") {
  const Model model = testing::load_llm_fixture("llama");
  autograd::NoGradGuard no_grad;
  auto cache = model.make_cache(2, 4);
  llm::StaticDecodeStep<float> step(model, cache);
  CHECK_THROWS_AS(step({1}), Error);  // one token for two rows
  CHECK_THROWS_WITH(step({1, model.vocab_size()}), Catch::Contains("StaticDecodeStep: id"));
  CHECK(cache.length() == 0);  // nothing was reserved
  (void)step({1, 2});
  CHECK(cache.length() == 1);
  llm::KvCache<float> none;
  CHECK_THROWS_AS(llm::StaticDecodeStep<float>(model, none), Error);
  // decode_fixed checks its buffers' shapes.
  const auto ids = Tensor<int64_t>::zeros({2, 1}), slot = Tensor<int64_t>::zeros({1});
  CHECK_THROWS_AS(model.decode_fixed(ids, ids, slot, Tensor<uint8_t>::zeros({2, 3}), cache), Error);
  CHECK_THROWS_AS(model.decode_fixed(ids, ids, Tensor<int64_t>::zeros({2}), Tensor<uint8_t>::zeros({2, 4}), cache), Error);
  CHECK_THROWS_AS(model.decode_fixed(Tensor<int64_t>::zeros({1, 1}), ids, slot, Tensor<uint8_t>::zeros({2, 4}), cache),
                  Error);
}
