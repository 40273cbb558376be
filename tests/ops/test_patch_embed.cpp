// patchify / unpatchify against the einops rearrange written with tensor views, patch_embed against
// the PyTorch patch Conv3d fixture, and their backward by finite differences.
#include "ctmllm/autograd/patch_embed.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;
using ops::PatchOrder;

namespace {
// rearrange(x, "b c (d p1) (h p2) (w p3) -> b (d h w) (p1 p2 p3 c)") or "... (c p1 p2 p3)", by views.
template <class T>
Tensor<T, Cpu> patches_by_views(const Tensor<T, Cpu>& x, std::array<int64_t, 3> p, PatchOrder order) {
  const int64_t B = x.size(0), C = x.size(1), gd = x.size(2) / p[0], gh = x.size(3) / p[1], gw = x.size(4) / p[2];
  const Tensor<T, Cpu> split = x.reshape({B, C, gd, p[0], gh, p[1], gw, p[2]});
  const Tensor<T, Cpu> moved =
      order == PatchOrder::channel_last ? split.permute({0, 2, 4, 6, 3, 5, 7, 1}) : split.permute({0, 2, 4, 6, 1, 3, 5, 7});
  return moved.reshape({B, gd * gh * gw, C * p[0] * p[1] * p[2]});
}
}  // namespace

TEST_CASE("patchify orders patches as the M3D perceptron and the Conv3d weight", "[ops][patch_embed]") {
  const auto x = Rng(1).normal<float>({2, 3, 4, 6, 8});
  for (auto order : {PatchOrder::channel_last, PatchOrder::channel_first}) {
    const auto rows = ops::patchify(x, {2, 3, 4}, order);
    REQUIRE(rows.shape() == Shape{2, 8, 72});
    CHECK(rel_error(rows, patches_by_views(x, {2, 3, 4}, order)) == 0.0);
    CHECK(rel_error(ops::unpatchify(rows, x.shape(), {2, 3, 4}, order), x) == 0.0);
  }
}

TEST_CASE("patch_embed matches the PyTorch patch Conv3d (kernel = stride = 4x16x16)", "[ops][patch_embed]") {
  testing::Fixture f("ops/patch_conv3d.safetensors");
  REQUIRE(f.meta("stride") == "[4, 16, 16]");
  const auto x = f.get("x"), w = f.get("w"), b = f.get("b");
  // Conv3d output [B, E, 2, 2, 2] as tokens [B, N, E].
  const auto tokens = [](const Tensor<float, Cpu>& t) { return t.reshape({2, 24, 8}).transpose(1, 2).contiguous(); };
  const auto dy = tokens(f.get("dy"));
  // The same weight in both patch orders: as stored (c p1 p2 p3), and moved to (p1 p2 p3 c).
  const std::pair<PatchOrder, std::array<int, 5>> orders[] = {{PatchOrder::channel_first, {0, 1, 2, 3, 4}},
                                                              {PatchOrder::channel_last, {0, 2, 3, 4, 1}}};
  for (const auto& [order, perm] : orders) {
    const auto flat = [&](const Tensor<float, Cpu>& t) { return t.permute(std::span<const int>(perm)).reshape({24, -1}); };
    const double ey = rel_error(ops::patch_embed(x, flat(w), b, {4, 16, 16}, order), tokens(f.get("y")));
    const auto g = ops::patch_embed_backward(dy, x, flat(w), {4, 16, 16}, order);
    const double ex = rel_error(g.dx, f.get("dx")), ew = rel_error(g.dweight, flat(f.get("dw"))),
                 eb = rel_error(g.dbias, f.get("db"));
    INFO("y " << ey << ", dx " << ex << ", dw " << ew << ", db " << eb);
    CHECK(ey <= 1e-5);
    CHECK(ex <= 1e-5);
    CHECK(ew <= 1e-5);
    CHECK(eb <= 1e-5);
  }
}

TEST_CASE("patch_embed backward passes finite differences", "[ops][patch_embed][gradcheck]") {
  const std::array<int64_t, 3> p{2, 1, 3};
  for (auto order : {PatchOrder::channel_last, PatchOrder::channel_first}) {
    autograd::Variable<double> x(Rng(3).normal<double>({2, 2, 4, 3, 6}), true);
    autograd::Variable<double> w(Rng(4).normal<double>({5, 12}), true), b(Rng(5).normal<double>({5}), true);
    CHECK(testing::gradcheck([&](const auto& in) { return autograd::patch_embed(in[0], in[1], in[2], p, order); },
                             {x, w, b}) <= 1e-7);
    // No bias, and pixels that need no gradient (dx is skipped).
    autograd::Variable<double> pixels(Rng(6).normal<double>({1, 2, 2, 3, 3}), false);
    CHECK(testing::gradcheck([&](const auto& in) { return autograd::patch_embed(in[0], in[1], {}, p, order); },
                             {pixels, w}) <= 1e-7);
    CHECK(testing::gradcheck([&](const auto& in) { return autograd::patchify(in[0], p, order); }, {x}) <= 1e-7);
    autograd::Variable<double> rows(Rng(7).normal<double>({2, 12, 12}), true);
    CHECK(testing::gradcheck([&](const auto& in) { return autograd::unpatchify(in[0], x.shape(), p, order); }, {rows}) <=
          1e-7);
  }
}

TEST_CASE("patch_embed rejects bad arguments", "[ops][patch_embed]") {
  const auto x = Rng(1).normal<float>({1, 2, 4, 6, 6});
  const auto w = Rng(2).normal<float>({5, 24}), b = Rng(3).normal<float>({5});
  CHECK_THROWS_AS(ops::patchify(Rng(1).normal<float>({2, 4, 6, 6}), {2, 2, 3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::patchify(x, {2, 0, 3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::patchify(x, {2, 2, -3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::patch_embed(x, Rng(2).normal<float>({5, 23}), b, {2, 2, 3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::patch_embed(x, Rng(2).normal<float>({5, 24, 1}), b, {2, 2, 3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::patch_embed(x, w, Rng(3).normal<float>({4}), {2, 2, 3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::unpatchify(Rng(1).normal<float>({1, 6, 23}), x.shape(), {2, 2, 3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::patch_embed_backward(Rng(1).normal<float>({1, 6, 4}), x, w, {2, 2, 3}), ctmllm::Error);
  try {
    ops::patch_embed(Rng(1).normal<float>({1, 1, 30, 64, 64}), Rng(2).normal<float>({8, 1024}), Tensor<float, Cpu>(),
                     {4, 16, 16});
    FAIL("no error");
  } catch (const ctmllm::Error& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("patch_embed: x [1, 1, 30, 64, 64]") != std::string::npos);
    CHECK(m.find("[4, 16, 16]") != std::string::npos);
  }
}

TEST_CASE("patch_embed works on strided views", "[ops][patch_embed]") {
  const auto x = Rng(2).normal<float>({1, 6, 4, 2, 6}).permute({0, 3, 2, 4, 1});  // [1, 2, 4, 6, 6], strided
  const auto w = Rng(3).normal<float>({24, 5}).transpose(0, 1), b = Rng(4).normal<float>({5});
  REQUIRE(!x.is_contiguous());
  for (auto order : {PatchOrder::channel_last, PatchOrder::channel_first}) {
    CHECK(rel_error(ops::patch_embed(x, w, b, {2, 2, 3}, order), ops::patch_embed(x.contiguous(), w.contiguous(), b, {2, 2, 3}, order)) == 0.0);
    CHECK(rel_error(ops::patchify(x, {2, 2, 3}, order), patches_by_views(x, {2, 2, 3}, order)) == 0.0);
  }
}

TEST_CASE("patch_embed does not depend on the thread count", "[ops][patch_embed]") {
  const auto x = Rng(5).normal<float>({1, 1, 16, 64, 64});
  const auto w = Rng(6).normal<float>({96, 1024}, 0.0, 0.03), b = Rng(7).normal<float>({96});
  const int threads = num_threads();
  set_num_threads(1);
  const auto y1 = ops::patch_embed(x, w, b, {4, 16, 16});
  const auto g1 = ops::patch_embed_backward(y1, x, w, {4, 16, 16});
  set_num_threads(2);
  const auto y2 = ops::patch_embed(x, w, b, {4, 16, 16});
  const auto g2 = ops::patch_embed_backward(y1, x, w, {4, 16, 16});
  set_num_threads(threads);
  CHECK(rel_error(y1, y2) == 0.0);
  CHECK(rel_error(g1.dx, g2.dx) == 0.0);
  CHECK(rel_error(g1.dweight, g2.dweight) == 0.0);
  CHECK(rel_error(g1.dbias, g2.dbias) == 0.0);
}
