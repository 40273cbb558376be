// conv3d (general vol2col path and the patch fast path) against PyTorch fixtures and plain loops,
// and its backward by finite differences.
#include "ctmllm/autograd/conv3d.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {
using Dims = std::array<int64_t, 3>;
using T64 = Tensor<double, Cpu>;

struct LoopConv {
  T64 y, dx, dw, db;
};
// y = conv3d(x, w, b) and, for dy, the gradients, as direct sums over every (output, kernel tap).
LoopConv conv_loops(const T64& x, const T64& w, const T64& b, Dims s, Dims p, const T64& dy = T64()) {
  const int64_t B = x.size(0), C = x.size(1), O = w.size(0);
  const int64_t Do = (x.size(2) + 2 * p[0] - w.size(2)) / s[0] + 1, Ho = (x.size(3) + 2 * p[1] - w.size(3)) / s[1] + 1,
                Wo = (x.size(4) + 2 * p[2] - w.size(4)) / s[2] + 1;
  LoopConv r{T64::zeros({B, O, Do, Ho, Wo}), T64::zeros(x.shape()), T64::zeros(w.shape()), T64::zeros({O})};
  for (int64_t n = 0; n < B; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t d = 0; d < Do; ++d)
        for (int64_t h = 0; h < Ho; ++h)
          for (int64_t v = 0; v < Wo; ++v) {
            const double g = dy.defined() ? dy(n, o, d, h, v) : 0.0;
            double sum = b.defined() ? b(o) : 0.0;
            r.db(o) += g;
            for (int64_t c = 0; c < C; ++c)
              for (int64_t i = 0; i < w.size(2); ++i)
                for (int64_t j = 0; j < w.size(3); ++j)
                  for (int64_t l = 0; l < w.size(4); ++l) {
                    const int64_t id = d * s[0] - p[0] + i, ih = h * s[1] - p[1] + j, iw = v * s[2] - p[2] + l;
                    if (id < 0 || id >= x.size(2) || ih < 0 || ih >= x.size(3) || iw < 0 || iw >= x.size(4)) continue;
                    sum += w(o, c, i, j, l) * x(n, c, id, ih, iw);
                    r.dx(n, c, id, ih, iw) += g * w(o, c, i, j, l);
                    r.dw(o, c, i, j, l) += g * x(n, c, id, ih, iw);
                  }
            r.y(n, o, d, h, v) = sum;
          }
  return r;
}

void check_fixture(const char* file, Dims stride, Dims padding) {
  testing::Fixture f(file);
  const auto x = f.get("x"), w = f.get("w");
  const double ey = rel_error(ops::conv3d(x, w, f.get("b"), stride, padding), f.get("y"));
  const auto g = ops::conv3d_backward(f.get("dy"), x, w, stride, padding);
  const double ex = rel_error(g.dx, f.get("dx")), ew = rel_error(g.dw, f.get("dw")), eb = rel_error(g.db, f.get("db"));
  INFO(file << ": y " << ey << ", dx " << ex << ", dw " << ew << ", db " << eb);
  CHECK(ey <= 1e-5);
  CHECK(ex <= 1e-5);
  CHECK(ew <= 1e-5);
  CHECK(eb <= 1e-5);
}

// Runs conv3d and its backward on double data and compares everything with the loops.
void check_against_loops(const Shape& xs, const Shape& ws, Dims s, Dims p, bool bias, uint64_t seed) {
  const auto x = Rng(seed).normal<double>(xs), w = Rng(seed + 1).normal<double>(ws);
  const T64 b = bias ? Rng(seed + 2).normal<double>({ws[0]}) : T64();
  const auto y = ops::conv3d(x, w, b, s, p);
  const auto dy = Rng(seed + 3).normal<double>(y.shape());
  const auto ref = conv_loops(x, w, b, s, p, dy);
  const auto g = ops::conv3d_backward(dy, x, w, s, p);
  CHECK(rel_error(y, ref.y) <= 1e-12);
  CHECK(rel_error(g.dx, ref.dx) <= 1e-12);
  CHECK(rel_error(g.dw, ref.dw) <= 1e-12);
  CHECK(rel_error(g.db, ref.db) <= 1e-12);
}
}  // namespace

TEST_CASE("conv3d matches torch.nn.functional.conv3d (stride 2x1x2, padding 1x0x1)", "[ops][conv3d]") {
  testing::Fixture f("ops/conv3d.safetensors");
  REQUIRE(f.meta("stride") == "[2, 1, 2]");
  REQUIRE(f.meta("padding") == "[1, 0, 1]");
  check_fixture("ops/conv3d.safetensors", {2, 1, 2}, {1, 0, 1});
}

TEST_CASE("conv3d with kernel = stride matches the PyTorch patch Conv3d", "[ops][conv3d]") {
  testing::Fixture f("ops/patch_conv3d.safetensors");
  REQUIRE(f.meta("stride") == "[4, 16, 16]");
  REQUIRE(f.meta("padding") == "[0, 0, 0]");
  check_fixture("ops/patch_conv3d.safetensors", {4, 16, 16}, {0, 0, 0});
}

TEST_CASE("conv3d matches loops on padding, gaps and unit kernels", "[ops][conv3d]") {
  // Stride 3 over a kernel of 1 leaves gaps; padding 2 exceeds the kernel half-width.
  check_against_loops({2, 3, 6, 7, 9}, {4, 3, 3, 1, 2}, {2, 3, 1}, {1, 0, 2}, true, 10);
  check_against_loops({1, 2, 5, 5, 5}, {3, 2, 3, 3, 3}, {1, 1, 1}, {1, 1, 1}, false, 20);
}

TEST_CASE("conv3d patch path matches loops and ignores the remainder", "[ops][conv3d]") {
  // kernel = stride = [2, 3, 3] over [9, 10, 7]: the last plane, row and column are never read.
  check_against_loops({2, 2, 9, 10, 7}, {5, 2, 2, 3, 3}, {2, 3, 3}, {0, 0, 0}, true, 30);
  check_against_loops({1, 3, 4, 6, 6}, {4, 3, 2, 3, 3}, {2, 3, 3}, {0, 0, 0}, false, 40);
}

TEST_CASE("conv3d splits long outputs into column chunks", "[ops][conv3d]") {
  // K = 54 taps by L = 48000 outputs exceeds the column budget: several chunks, rows split mid-way.
  REQUIRE(54 * 48000 > ops::impl::kConvColumnBudget);
  check_against_loops({1, 2, 40, 40, 30}, {3, 2, 3, 3, 3}, {1, 1, 1}, {1, 1, 1}, true, 50);
}

TEST_CASE("conv3d backward passes finite differences", "[ops][conv3d][gradcheck]") {
  const std::tuple<Shape, Shape, Dims, Dims> cases[] = {
      {{2, 2, 4, 3, 5}, {3, 2, 2, 2, 3}, {2, 1, 2}, {1, 1, 0}},  // general
      {{1, 2, 4, 5, 4}, {3, 2, 2, 2, 2}, {2, 2, 2}, {0, 0, 0}},  // patches (H remainder)
  };
  for (const auto& [xs, ws, s, p] : cases) {
    autograd::Variable<double> x(Rng(3).normal<double>(xs), true), w(Rng(4).normal<double>(ws), true),
        b(Rng(5).normal<double>({ws[0]}), true);
    CHECK(testing::gradcheck([&](const auto& in) { return autograd::conv3d(in[0], in[1], in[2], s, p); }, {x, w, b}) <= 1e-7);
    // No bias, and an input that needs no gradient (dx is skipped).
    autograd::Variable<double> pixels(Rng(6).normal<double>(xs), false);
    CHECK(testing::gradcheck([&](const auto& in) { return autograd::conv3d(in[0], in[1], {}, s, p); }, {pixels, w}) <= 1e-7);
  }
}

TEST_CASE("conv3d rejects bad arguments", "[ops][conv3d]") {
  const auto x = Rng(1).normal<float>({1, 2, 4, 4, 4});
  const auto w = Rng(2).normal<float>({3, 2, 2, 2, 2}), b = Rng(3).normal<float>({3});
  CHECK_THROWS_AS(ops::conv3d(Rng(1).normal<float>({2, 4, 4, 4}), w, b), ctmllm::Error);
  CHECK_THROWS_AS(ops::conv3d(x, Rng(2).normal<float>({3, 2, 2, 2}), b), ctmllm::Error);
  CHECK_THROWS_AS(ops::conv3d(x, Rng(2).normal<float>({3, 1, 2, 2, 2}), b), ctmllm::Error);  // channels
  CHECK_THROWS_AS(ops::conv3d(x, w, Rng(3).normal<float>({2})), ctmllm::Error);
  CHECK_THROWS_AS(ops::conv3d(x, w, b, {0, 1, 1}), ctmllm::Error);
  CHECK_THROWS_AS(ops::conv3d(x, w, b, {1, 1, 1}, {0, -1, 0}), ctmllm::Error);
  CHECK_THROWS_AS(ops::conv3d(x, Rng(2).normal<float>({3, 2, 2, 5, 2}), b), ctmllm::Error);  // kernel > input
  CHECK_THROWS_AS(ops::conv3d(x, Tensor<float, Cpu>(), b), ctmllm::Error);
  CHECK_THROWS_AS(ops::conv3d_backward(Rng(4).normal<float>({1, 3, 3, 3, 2}), x, w), ctmllm::Error);
  try {
    ops::conv3d(x, Rng(2).normal<float>({3, 1, 2, 2, 2}), b);
    FAIL("no error");
  } catch (const ctmllm::Error& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("conv3d") != std::string::npos);
    CHECK(m.find("float32[3, 1, 2, 2, 2] (cpu)") != std::string::npos);
    CHECK(m.find("float32[1, 2, 4, 4, 4] (cpu)") != std::string::npos);
  }
}

TEST_CASE("conv3d works on strided views", "[ops][conv3d]") {
  const auto x = Rng(2).normal<float>({1, 6, 5, 4, 2}).permute({0, 4, 2, 3, 1});  // [1, 2, 5, 4, 6], strided
  const auto w = Rng(3).normal<float>({3, 2, 2, 2, 3}).permute({0, 1, 2, 3, 4}), b = Rng(4).normal<float>({3});
  REQUIRE(!x.is_contiguous());
  for (auto [s, p] : {std::pair{Dims{1, 2, 1}, Dims{1, 0, 1}}, std::pair{Dims{2, 2, 3}, Dims{0, 0, 0}}}) {
    CHECK(rel_error(ops::conv3d(x, w, b, s, p), ops::conv3d(x.contiguous(), w, b, s, p)) == 0.0);
    const auto dy = Rng(5).normal<float>(ops::conv3d(x, w, b, s, p).shape());
    CHECK(rel_error(ops::conv3d_backward(dy, x, w, s, p).dx, ops::conv3d_backward(dy, x.contiguous(), w, s, p).dx) == 0.0);
  }
}

TEST_CASE("conv3d does not depend on the thread count", "[ops][conv3d]") {
  const auto x = Rng(5).normal<float>({2, 8, 12, 16, 16});
  const auto w = Rng(6).normal<float>({40, 8, 3, 3, 3}, 0.0, 0.1), b = Rng(7).normal<float>({40});
  const int threads = num_threads();
  set_num_threads(1);
  const auto y1 = ops::conv3d(x, w, b, {1, 2, 2}, {1, 1, 1});
  const auto g1 = ops::conv3d_backward(y1, x, w, {1, 2, 2}, {1, 1, 1});
  set_num_threads(2);
  const auto y2 = ops::conv3d(x, w, b, {1, 2, 2}, {1, 1, 1});
  const auto g2 = ops::conv3d_backward(y1, x, w, {1, 2, 2}, {1, 1, 1});
  set_num_threads(threads);
  CHECK(rel_error(y1, y2) == 0.0);
  CHECK(rel_error(g1.dx, g2.dx) == 0.0);
  CHECK(rel_error(g1.dw, g2.dw) == 0.0);
  CHECK(rel_error(g1.db, g2.db) == 0.0);
}
