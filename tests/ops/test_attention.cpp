// attention (blocked online softmax, flash-attention-2 style backward) against PyTorch fixtures, a naive
// softmax(q kᵀ) v written out below, and finite differences; GQA/MQA, causal offsets, padding masks,
// decode steps, strided inputs and argument checks.
#include <cmath>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/autograd/attention.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {
using Options = ops::AttentionOptions<Cpu>;

// The definition, one query at a time in double: the forward and every input gradient given dy.
struct Naive {
  Tensor<double> out, dq, dk, dv;
};
template <class T>
Naive naive_attention(const Tensor<T>& qt, const Tensor<T>& kt, const Tensor<T>& vt, const Tensor<T>& dyt,
                      const Options& o) {
  const auto q = qt.template to<double>(), k = kt.template to<double>(), v = vt.template to<double>(),
             dy = dyt.template to<double>();
  const int64_t B = q.size(0), Hq = q.size(1), Sq = q.size(2), Dh = q.size(3);
  const int64_t Hkv = k.size(1), Sk = k.size(2), Dv = v.size(3), group = Hq / Hkv;
  const double scale = o.scale.value_or(1.0 / std::sqrt(double(Dh)));
  Naive r{Tensor<double>::zeros(dy.shape()), Tensor<double>::zeros(q.shape()), Tensor<double>::zeros(k.shape()),
          Tensor<double>::zeros(v.shape())};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        const int64_t g = h / group;
        std::vector<double> p(size_t(Sk), 0.0);
        std::vector<bool> seen(size_t(Sk), false);
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Sk; ++j) {
          seen[j] = (!o.causal || j <= i + Sk - Sq) && (!o.key_keep_mask.defined() || o.key_keep_mask(b, j) != 0);
          if (!seen[j]) continue;
          double s = 0;
          for (int64_t d = 0; d < Dh; ++d) s += q(b, h, i, d) * k(b, g, j, d);
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // nothing visible: zeros
        double sum = 0;
        for (int64_t j = 0; j < Sk; ++j) sum += p[j] = seen[j] ? std::exp(p[j] - mx) : 0.0;
        double drow = 0;
        std::vector<double> dp(size_t(Sk), 0.0);
        for (int64_t j = 0; j < Sk; ++j) {
          p[j] /= sum;
          for (int64_t d = 0; d < Dv; ++d) {
            r.out(b, h, i, d) += p[j] * v(b, g, j, d);
            dp[j] += dy(b, h, i, d) * v(b, g, j, d);
          }
          drow += p[j] * dp[j];
        }
        for (int64_t j = 0; j < Sk; ++j) {
          const double ds = p[j] * (dp[j] - drow);
          for (int64_t d = 0; d < Dh; ++d) {
            r.dq(b, h, i, d) += scale * ds * k(b, g, j, d);
            r.dk(b, g, j, d) += scale * ds * q(b, h, i, d);
          }
          for (int64_t d = 0; d < Dv; ++d) r.dv(b, g, j, d) += p[j] * dy(b, h, i, d);
        }
      }
  return r;
}

// Checks the forward and backward of ops::attention against the naive loops.
template <class T>
void check_against_naive(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, const Options& o, double tol) {
  const auto dy = Rng(99).normal<T>({q.size(0), q.size(1), q.size(2), v.size(3)});
  const Naive ref = naive_attention(q, k, v, dy, o);
  const auto fwd = ops::attention(q, k, v, o);
  CHECK(rel_error(fwd.out, ref.out) <= tol);
  const auto g = ops::attention_backward(dy, q, k, v, fwd, o);
  CHECK(rel_error(g.dq, ref.dq) <= tol);
  CHECK(rel_error(g.dk, ref.dk) <= tol);
  CHECK(rel_error(g.dv, ref.dv) <= tol);
}

Tensor<uint8_t> keep_from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  std::vector<uint8_t> flat;
  for (const auto& row : j)
    for (const auto& x : row) flat.push_back(uint8_t(x.get<int>()));
  return Tensor<uint8_t>::from(std::span<const uint8_t>(flat), {int64_t(j.size()), int64_t(j[0].size())});
}

void check_fixture(const char* file, const Options& o) {
  testing::Fixture f(file);
  const auto q = f.get("q"), k = f.get("k"), v = f.get("v");
  const auto fwd = ops::attention(q, k, v, o);
  CHECK(rel_error(fwd.out, f.get("y")) <= 1e-5);
  const auto g = ops::attention_backward(f.get("dy"), q, k, v, fwd, o);
  CHECK(rel_error(g.dq, f.get("dq")) <= 1e-5);
  CHECK(rel_error(g.dk, f.get("dk")) <= 1e-5);
  CHECK(rel_error(g.dv, f.get("dv")) <= 1e-5);
}

template <class T>
Tensor<T> randn(uint64_t seed, const Shape& s) {
  return Rng(seed).normal<T>(s);
}

double gradcheck_attention(const Shape& qs, const Shape& ks, const Options& o, uint64_t seed) {
  autograd::Variable<double> q(randn<double>(seed, qs), true), k(randn<double>(seed + 1, ks), true),
      v(randn<double>(seed + 2, ks), true);
  return testing::gradcheck([&](const auto& in) { return autograd::attention(in[0], in[1], in[2], o); }, {q, k, v});
}
}  // namespace

TEST_CASE("attention matches PyTorch: causal GQA", "[ops][attention]") {
  testing::Fixture f("ops/attention_causal_gqa.safetensors");
  REQUIRE(f.meta("causal") == "true");
  check_fixture("ops/attention_causal_gqa.safetensors", Options{.causal = true});
}

TEST_CASE("attention matches PyTorch: key padding mask", "[ops][attention]") {
  testing::Fixture f("ops/attention_padding.safetensors");
  REQUIRE(f.meta("causal") == "false");
  check_fixture("ops/attention_padding.safetensors", Options{.key_keep_mask = keep_from_json(f.meta("key_keep_mask"))});
}

TEST_CASE("attention matches the naive definition across many blocks", "[ops][attention]") {
  // Several query blocks (64) and key blocks (256), ragged ends, GQA, a mask with holes.
  const int64_t B = 2, Sq = 150, Sk = 300;
  const auto q = randn<float>(1, {B, 4, Sq, 24}), k = randn<float>(2, {B, 2, Sk, 24}), v = randn<float>(3, {B, 2, Sk, 20});
  Tensor<uint8_t> keep = Tensor<uint8_t>::ones({B, Sk});
  for (int64_t j = 0; j < Sk; j += 7) keep(1, j) = 0;
  for (int64_t j = 280; j < Sk; ++j) keep(0, j) = 0;
  SECTION("bidirectional") { check_against_naive(q, k, v, Options{}, 2e-6); }
  SECTION("causal, Sq < Sk") { check_against_naive(q, k, v, Options{.causal = true}, 2e-6); }
  SECTION("causal with padding and a custom scale") {
    check_against_naive(q, k, v, Options{.causal = true, .scale = 0.3, .key_keep_mask = keep}, 2e-6);
  }
  SECTION("a fully masked key block is skipped") {
    Tensor<uint8_t> front = Tensor<uint8_t>::zeros({B, Sk});
    front.slice(1, 0, 40).fill(1);
    check_against_naive(q, k, v, Options{.key_keep_mask = front}, 2e-6);
  }
}

TEST_CASE("attention with one kv head (MQA)", "[ops][attention]") {
  const auto q = randn<float>(4, {2, 6, 70, 16}), k = randn<float>(5, {2, 1, 70, 16}), v = randn<float>(6, {2, 1, 70, 16});
  check_against_naive(q, k, v, Options{.causal = true}, 2e-6);
}

TEST_CASE("attention: a decode step equals the last row of the full causal pass", "[ops][attention]") {
  const auto q = randn<float>(7, {1, 4, 33, 16}), k = randn<float>(8, {1, 2, 33, 16}), v = randn<float>(9, {1, 2, 33, 16});
  const auto full = ops::attention(q, k, v, Options{.causal = true});
  const auto step = ops::attention(q.slice(2, 32, 33), k, v, Options{.causal = true});
  CHECK(rel_error(step.out, full.out.slice(2, 32, 33)) <= 1e-6);
  CHECK(rel_error(step.lse, full.lse.slice(2, 32, 33)) <= 1e-6);
  // Two new queries over a cache of 33 keys: query i sees keys j <= i + 31.
  const auto two = ops::attention(q.slice(2, 31, 33), k, v, Options{.causal = true});
  CHECK(rel_error(two.out, full.out.slice(2, 31, 33)) <= 1e-6);
}

TEST_CASE("attention: queries with no visible key give zeros", "[ops][attention]") {
  // Causal with Sq > Sk: query i sees j <= i − 2, so the first two see nothing.
  const auto q = randn<double>(10, {1, 2, 5, 8}), k = randn<double>(11, {1, 2, 3, 8}), v = randn<double>(12, {1, 2, 3, 8});
  const auto r = ops::attention(q, k, v, Options{.causal = true});
  CHECK(rel_error(r.out.slice(2, 0, 2), Tensor<double>::zeros({1, 2, 2, 8})) == 0.0);
  CHECK(std::isinf(r.lse(0, 1, 1)));
  check_against_naive(q, k, v, Options{.causal = true}, 1e-12);
  CHECK(gradcheck_attention({1, 2, 5, 3}, {1, 2, 3, 3}, Options{.causal = true}, 60) <= 1e-7);
}

TEST_CASE("attention backward passes finite differences", "[ops][attention][gradcheck]") {
  SECTION("causal GQA") { CHECK(gradcheck_attention({2, 4, 6, 5}, {2, 2, 6, 5}, Options{.causal = true}, 20) <= 1e-7); }
  SECTION("padding mask") {
    Tensor<uint8_t> keep = Tensor<uint8_t>::ones({2, 7});
    keep(1, 5) = 0;
    keep(1, 6) = 0;
    keep(0, 2) = 0;
    CHECK(gradcheck_attention({2, 3, 4, 5}, {2, 3, 7, 5}, Options{.key_keep_mask = keep}, 30) <= 1e-7);
  }
  SECTION("causal, Sq < Sk (decode over a cache)") {
    CHECK(gradcheck_attention({1, 2, 3, 4}, {1, 1, 8, 4}, Options{.causal = true, .scale = 0.7}, 40) <= 1e-7);
  }
}

TEST_CASE("attention reads strided q, k, v in place", "[ops][attention]") {
  // The layer's layout: a [B, S, H, D] projection permuted to [B, H, S, D].
  const auto q = randn<float>(13, {2, 70, 4, 16}).permute({0, 2, 1, 3});
  const auto k = randn<float>(14, {2, 70, 2, 16}).permute({0, 2, 1, 3});
  const auto v = randn<float>(15, {2, 70, 2, 16}).permute({0, 2, 1, 3});
  const auto dy = randn<float>(16, {2, 70, 4, 16}).permute({0, 2, 1, 3});
  const Options o{.causal = true};
  const auto a = ops::attention(q, k, v, o), c = ops::attention(q.contiguous(), k.contiguous(), v.contiguous(), o);
  CHECK(rel_error(a.out, c.out) <= 1e-7);
  const auto ga = ops::attention_backward(dy, q, k, v, a, o);
  const auto gc = ops::attention_backward(dy.contiguous(), q.contiguous(), k.contiguous(), v.contiguous(), c, o);
  CHECK(rel_error(ga.dq, gc.dq) <= 1e-7);
  CHECK(rel_error(ga.dk, gc.dk) <= 1e-7);
  CHECK(rel_error(ga.dv, gc.dv) <= 1e-7);
  // A non-unit innermost stride goes through a copy.
  const auto qt = randn<float>(17, {2, 4, 16, 70}).transpose(2, 3);
  CHECK(rel_error(ops::attention(qt, k, v, o).out, ops::attention(qt.contiguous(), k, v, o).out) <= 1e-7);
}

TEST_CASE("attention does not depend on the thread count", "[ops][attention]") {
  const auto q = randn<float>(18, {1, 4, 130, 16}), k = randn<float>(19, {1, 2, 300, 16}), v = randn<float>(20, {1, 2, 300, 16});
  const auto dy = randn<float>(21, {1, 4, 130, 16});
  const Options o{.causal = true};
  const int threads = num_threads();
  set_num_threads(1);
  const auto f1 = ops::attention(q, k, v, o);
  const auto g1 = ops::attention_backward(dy, q, k, v, f1, o);
  set_num_threads(3);
  const auto f3 = ops::attention(q, k, v, o);
  const auto g3 = ops::attention_backward(dy, q, k, v, f3, o);
  set_num_threads(threads);
  CHECK(testing::max_abs_diff(f1.out, f3.out) == 0.0);
  CHECK(testing::max_abs_diff(g1.dq, g3.dq) == 0.0);
  CHECK(testing::max_abs_diff(g1.dk, g3.dk) == 0.0);
  CHECK(testing::max_abs_diff(g1.dv, g3.dv) == 0.0);
}

TEST_CASE("attention in bfloat16 accumulates in float", "[ops][attention]") {
  const auto q = randn<float>(22, {1, 2, 20, 16}), k = randn<float>(23, {1, 2, 20, 16}), v = randn<float>(24, {1, 2, 20, 16});
  const auto r = ops::attention(q.to<bf16>(), k.to<bf16>(), v.to<bf16>(), Options{.causal = true});
  const auto ref = ops::attention(q.to<bf16>().to<float>(), k.to<bf16>().to<float>(), v.to<bf16>().to<float>(),
                                  Options{.causal = true});
  CHECK(rel_error(r.out, ref.out) <= 1e-2);
  CHECK(rel_error(r.lse, ref.lse) <= 1e-6);
}

TEST_CASE("attention rejects bad arguments", "[ops][attention]") {
  const auto q = Tensor<float>::zeros({2, 4, 5, 8}), k = Tensor<float>::zeros({2, 2, 6, 8}), v = Tensor<float>::zeros({2, 2, 6, 3});
  CHECK_NOTHROW(ops::attention(q, k, v));
  CHECK_THROWS_AS(ops::attention(Tensor<float>::zeros({2, 5, 8}), k, v), ctmllm::Error);
  CHECK_THROWS_AS(ops::attention(q, Tensor<float>::zeros({2, 2, 6, 7}), v), ctmllm::Error);  // head_dim
  CHECK_THROWS_AS(ops::attention(q, Tensor<float>::zeros({1, 2, 6, 8}), v), ctmllm::Error);  // batch
  CHECK_THROWS_AS(ops::attention(q, Tensor<float>::zeros({2, 3, 6, 8}), Tensor<float>::zeros({2, 3, 6, 3})),
                  ctmllm::Error);  // 4 query heads over 3 kv heads
  CHECK_THROWS_AS(ops::attention(q, k, Tensor<float>::zeros({2, 2, 5, 3})), ctmllm::Error);  // keys
  CHECK_THROWS_AS(ops::attention(q, k, Tensor<float>(), Options{}), ctmllm::Error);
  CHECK_THROWS_AS(ops::attention(q, k, v, Options{.key_keep_mask = Tensor<uint8_t>::ones({2, 5})}), ctmllm::Error);
  CHECK_THROWS_AS(ops::attention(q, k, v, Options{.scale = std::numeric_limits<double>::infinity()}), ctmllm::Error);
  const auto fwd = ops::attention(q, k, v);
  CHECK_THROWS_AS(ops::attention_backward(Tensor<float>::zeros({2, 4, 5, 8}), q, k, v, fwd), ctmllm::Error);  // dy
  auto stale = fwd;
  stale.lse = Tensor<float>::zeros({2, 4, 6});
  CHECK_THROWS_AS(ops::attention_backward(Tensor<float>::zeros({2, 4, 5, 3}), q, k, v, stale), ctmllm::Error);
}
