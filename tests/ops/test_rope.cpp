// rope (rotate-half) against transformers' rotary embeddings (default, linear, llama3, partial rotary),
// its backward by finite differences, argument checks and strided inputs; rope_into_cache against
// rope and the cache writes it stands for.
#include <algorithm>
#include <string>
#include <vector>

#include "ctmllm/autograd/rope.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {
ops::RopeConfig config_of(const testing::Fixture& f) {
  ops::RopeConfig c;
  c.theta = std::stod(f.meta("theta"));
  c.rotary_dim = std::stoll(f.meta("rotary_dim"));
  const std::string& kind = f.meta("scaling");
  if (kind == "linear") {
    c.scaling = ops::RopeScaling::linear;
    c.factor = std::stod(f.meta("factor"));
  } else if (kind == "llama3") {
    c.scaling = ops::RopeScaling::llama3;
    c.factor = std::stod(f.meta("factor"));
    c.low_freq_factor = std::stod(f.meta("low_freq_factor"));
    c.high_freq_factor = std::stod(f.meta("high_freq_factor"));
    c.original_max_position_embeddings = std::stoll(f.meta("original_max_position_embeddings"));
  } else {
    REQUIRE(kind == "none");
  }
  return c;
}

void check_fixture(const char* file) {
  INFO(file);
  testing::Fixture f(file);
  const ops::RopeConfig cfg = config_of(f);
  const auto inv = ops::rope_inv_freq(cfg);
  const auto ref_inv = f.get("inv_freq");
  REQUIRE(int64_t(inv.size()) == ref_inv.numel());
  // transformers rounds inv_freq to float32.
  CHECK(rel_error(Tensor<double>::from(std::span<const double>(inv), ref_inv.shape()), ref_inv) <= 1e-6);
  const auto x = f.get("x");
  const auto pos = f.get<int64_t>("position_ids");
  CHECK(rel_error(ops::rope(x, pos, cfg), f.get("y")) <= 1e-5);
  CHECK(rel_error(ops::rope_backward(f.get("dy"), pos, cfg), f.get("dx")) <= 1e-5);
}

ops::RopeConfig llama3_partial() {
  ops::RopeConfig c;
  c.theta = 10000.0;
  c.rotary_dim = 8;
  c.scaling = ops::RopeScaling::llama3;
  c.factor = 8.0;
  c.original_max_position_embeddings = 32;
  return c;
}
}  // namespace

TEST_CASE("rope matches transformers' default RoPE with left padding", "[ops][rope]") {
  check_fixture("ops/rope_default.safetensors");
}
TEST_CASE("rope matches transformers' linear scaling after a KV cache", "[ops][rope]") {
  check_fixture("ops/rope_linear.safetensors");
}
TEST_CASE("rope matches transformers' llama3 scaling", "[ops][rope]") {
  check_fixture("ops/rope_llama3.safetensors");
}
TEST_CASE("rope matches transformers' partial rotary (Phi-3)", "[ops][rope]") {
  check_fixture("ops/rope_partial.safetensors");
}

TEST_CASE("rope backward passes finite differences", "[ops][rope][gradcheck]") {
  const auto pos = Tensor<int64_t>::from({5, 0, 17, 3, 250, 251, 252, 9}, {2, 4});
  autograd::Variable<double> x(Rng(4).normal<double>({2, 3, 4, 12}), true);
  const double err = testing::gradcheck([&](const auto& in) { return autograd::rope(in[0], pos, llama3_partial()); }, {x});
  CHECK(err <= 1e-7);
}

TEST_CASE("rope is a rotation: its backward undoes it", "[ops][rope]") {
  const auto x = Rng(5).normal<double>({1, 2, 6, 12});
  const auto pos = Tensor<int64_t>::from({0, 7, 1000, 4, -3, 65536}, {1, 6});
  const auto y = ops::rope(x, pos, llama3_partial());
  CHECK(rel_error(ops::rope_backward(y, pos, llama3_partial()), x) <= 1e-14);
  // The pass-through dims are copied, the rotated ones are not.
  CHECK(rel_error(y.slice(3, 8, 12), x.slice(3, 8, 12)) == 0.0);
  CHECK(rel_error(y.slice(3, 0, 8), x.slice(3, 0, 8)) > 0.1);
}

TEST_CASE("rope rejects bad arguments", "[ops][rope]") {
  ops::RopeConfig cfg;
  cfg.rotary_dim = 8;
  const auto x = Tensor<float>::zeros({2, 3, 5, 8});
  const auto pos = Tensor<int64_t>::zeros({2, 5});
  CHECK_NOTHROW(ops::rope(x, pos, cfg));
  CHECK_THROWS_AS(ops::rope(Tensor<float>::zeros({2, 5, 8}), pos, cfg), ctmllm::Error);
  CHECK_THROWS_AS(ops::rope(x, Tensor<int64_t>::zeros({2, 4}), cfg), ctmllm::Error);
  CHECK_THROWS_AS(ops::rope(x, Tensor<int64_t>::zeros({10}), cfg), ctmllm::Error);
  CHECK_THROWS_AS(ops::rope(x, Tensor<int64_t>(), cfg), ctmllm::Error);
  CHECK_THROWS_AS(ops::rope_backward(Tensor<float>::zeros({2, 3, 6, 8}), pos, cfg), ctmllm::Error);
  auto bad = cfg;
  bad.rotary_dim = 10;  // more than head_dim
  CHECK_THROWS_AS(ops::rope(x, pos, bad), ctmllm::Error);
  bad.rotary_dim = 7;  // odd
  CHECK_THROWS_AS(ops::rope_inv_freq(bad), ctmllm::Error);
  bad.rotary_dim = 0;
  CHECK_THROWS_AS(ops::rope_inv_freq(bad), ctmllm::Error);
  bad = cfg;
  bad.theta = 0;
  CHECK_THROWS_AS(ops::rope_inv_freq(bad), ctmllm::Error);
  bad = cfg;
  bad.scaling = ops::RopeScaling::linear;
  bad.factor = 0;
  CHECK_THROWS_AS(ops::rope_inv_freq(bad), ctmllm::Error);
  bad = llama3_partial();
  bad.high_freq_factor = bad.low_freq_factor;
  CHECK_THROWS_AS(ops::rope_inv_freq(bad), ctmllm::Error);
  bad = llama3_partial();
  bad.original_max_position_embeddings = 0;
  CHECK_THROWS_AS(ops::rope_inv_freq(bad), ctmllm::Error);
}

TEST_CASE("rope works on strided views", "[ops][rope]") {
  ops::RopeConfig cfg;
  cfg.rotary_dim = 16;
  // q as the attention layer makes it: a [B, S, H, D] projection permuted to [B, H, S, D].
  const auto q = Rng(6).normal<float>({2, 7, 3, 16}).permute({0, 2, 1, 3});
  const auto pos = Tensor<int64_t>::from({3, 4, 5, 6, 7, 8, 9}, {1, 7}).expand({2, 7});
  const auto expect = ops::rope(q.contiguous(), pos.contiguous(), cfg);
  CHECK(rel_error(ops::rope(q, pos, cfg), expect) == 0.0);
  // A non-unit innermost stride goes through a copy.
  const auto qt = Rng(7).normal<float>({2, 3, 16, 7}).transpose(2, 3);
  CHECK(rel_error(ops::rope(qt, pos, cfg), ops::rope(qt.contiguous(), pos, cfg)) == 0.0);
  CHECK(rel_error(ops::rope_backward(q, pos, cfg), ops::rope_backward(q.contiguous(), pos, cfg)) == 0.0);
}

namespace {
// q, k, v as the decoder passes them: heads of one [B, S, Hq + 2·Hkv, D] projection, permuted.
struct Projection {
  Tensor<float> qkv;
  int64_t Hq, Hkv;
  Tensor<float> heads(int64_t from, int64_t n) const { return qkv.slice(2, from, from + n).permute({0, 2, 1, 3}); }
  Tensor<float> q() const { return heads(0, Hq); }
  Tensor<float> k() const { return heads(Hq, Hkv); }
  Tensor<float> v() const { return heads(Hq + Hkv, Hkv); }
};
}  // namespace

TEST_CASE("rope_into_cache equals rope and the cache writes", "[ops][rope]") {
  const ops::RopeConfig cfg = llama3_partial();
  const int64_t B = 2, S = 3, L = 9, D = 12;
  const Projection p{Rng(8).normal<float>({B, S, 4 + 2 * 2, D}), 4, 2};
  const auto pos = Tensor<int64_t>::from({5, 6, 7, 40, 41, 42}, {B, S});
  const auto before = Rng(9).normal<float>({B, 2, L, D});
  const auto k_rotated = ops::rope(p.k(), pos, cfg);
  for (const bool with_index : {false, true}) {
    INFO((with_index ? "slots from an index" : "slots from 4 on"));
    const auto index = Tensor<int64_t>::from({8, 0, 3}, {S});
    const std::vector<int64_t> slot = with_index ? std::vector<int64_t>{8, 0, 3} : std::vector<int64_t>{4, 5, 6};
    const auto keys = before.clone(), values = before.clone();
    const auto q = ops::rope_into_cache(p.q(), p.k(), p.v(), pos, cfg, keys, values,
                                        with_index ? ops::CacheSlots<Cpu>{0, index} : ops::CacheSlots<Cpu>{4, {}});
    CHECK(rel_error(q, ops::rope(p.q(), pos, cfg)) == 0.0);
    for (int64_t j = 0; j < L; ++j) {
      const auto it = std::find(slot.begin(), slot.end(), j);
      const int64_t s = it - slot.begin();
      INFO("slot " << j);
      const bool written = it != slot.end();
      CHECK(rel_error(keys.slice(2, j, j + 1), written ? k_rotated.slice(2, s, s + 1) : before.slice(2, j, j + 1)) == 0);
      CHECK(rel_error(values.slice(2, j, j + 1), written ? p.v().slice(2, s, s + 1) : before.slice(2, j, j + 1)) == 0);
    }
  }
}

TEST_CASE("rope_into_cache reads inputs that overlap the cache as they were", "[ops][rope]") {
  const ops::RopeConfig cfg = llama3_partial();
  const auto pos = Tensor<int64_t>::from({3, 4}, {1, 2});
  const auto keys = Rng(10).normal<float>({1, 2, 6, 12}), values = Rng(11).normal<float>({1, 2, 6, 12});
  const auto q = Rng(12).normal<float>({1, 3, 2, 12});
  // k and v: the caches' slots 0 and 1, written to slots 1 and 2.
  const auto k = keys.slice(2, 0, 2), v = values.slice(2, 0, 2);
  const auto want_keys = keys.clone(), want_values = values.clone();
  ops::rope_into_cache(q, k.clone(), v.clone(), pos, cfg, want_keys, want_values, ops::CacheSlots<Cpu>{1, {}});
  ops::rope_into_cache(q, k, v, pos, cfg, keys, values, ops::CacheSlots<Cpu>{1, {}});
  CHECK(rel_error(keys, want_keys) == 0);
  CHECK(rel_error(values, want_values) == 0);
  CHECK_THROWS_WITH(ops::rope_into_cache(q, k, v, pos, cfg, keys, keys, ops::CacheSlots<Cpu>{1, {}}),
                    Catch::Contains("keys and values share memory"));
}

TEST_CASE("rope_into_cache rejects bad arguments", "[ops][rope]") {
  const ops::RopeConfig cfg = llama3_partial();
  const Projection p{Tensor<float>::zeros({1, 2, 3 + 2, 12}), 3, 1};
  const auto pos = Tensor<int64_t>::zeros({1, 2});
  const auto cache = Tensor<float>::zeros({1, 1, 4, 12});
  const auto call = [&](const Tensor<float>& k, const Tensor<float>& v, const Tensor<float>& keys,
                        const Tensor<float>& values, const ops::CacheSlots<Cpu>& slots) {
    return ops::rope_into_cache(p.q(), k, v, pos, cfg, keys, values, slots);
  };
  CHECK_NOTHROW(call(p.k(), p.v(), cache, cache.clone(), {2, {}}));
  CHECK_THROWS_WITH(call(p.k(), p.v(), cache, cache.clone(), {3, {}}), Catch::Contains("slots [3, 5) do not fit"));
  CHECK_THROWS_WITH(call(p.k(), p.v(), cache, cache.clone(), {0, Tensor<int64_t>::from({1, 4}, {2})}),
                    Catch::Contains("slot 4 for token 1 is outside the cache's [0, 4)"));
  CHECK_THROWS_WITH(call(p.k(), p.v(), cache, cache.clone(), {0, Tensor<int64_t>::from({-1, 0}, {2})}),
                    Catch::Contains("slot -1 for token 0"));
  CHECK_THROWS_AS(call(p.k(), p.v(), cache, cache.clone(), {0, Tensor<int64_t>::from({1}, {1})}), Error);
  CHECK_THROWS_AS(call(p.k(), p.v().slice(3, 0, 8), cache, cache.clone(), {0, {}}), Error);
  CHECK_THROWS_AS(call(p.k(), p.v(), cache, Tensor<float>::zeros({1, 1, 5, 12}), {0, {}}), Error);
  CHECK_THROWS_AS(call(p.k(), p.v(), Tensor<float>::zeros({1, 1, 12, 4}).transpose(2, 3), cache.clone(), {0, {}}),
                  Error);  // not contiguous
  CHECK_THROWS_AS(call(p.q(), p.v(), cache, cache.clone(), {0, {}}), Error);  // k with q's heads
  CHECK_THROWS_AS(call(p.k(), p.v(), Tensor<float>(), cache.clone(), {0, {}}), Error);
}
