// avg_pool3d against the PyTorch fixture and plain loops, and its backward by finite differences.
#include "ctmllm/autograd/pool3d.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {
using Dims = std::array<int64_t, 3>;

// Window means and their gradient (each window spreads dy/k³ over its voxels), written as loops.
Tensor<double, Cpu> pool_loops(const Tensor<double, Cpu>& x, Dims k, Dims s) {
  const Shape& xs = x.shape();
  Tensor<double, Cpu> y = Tensor<double, Cpu>::zeros({xs[0], xs[1], (xs[2] - k[0]) / s[0] + 1, (xs[3] - k[1]) / s[1] + 1,
                                                      (xs[4] - k[2]) / s[2] + 1});
  for (int64_t b = 0; b < xs[0]; ++b)
    for (int64_t c = 0; c < xs[1]; ++c)
      for (int64_t d = 0; d < y.size(2); ++d)
        for (int64_t h = 0; h < y.size(3); ++h)
          for (int64_t w = 0; w < y.size(4); ++w) {
            double sum = 0;
            for (int64_t i = 0; i < k[0]; ++i)
              for (int64_t j = 0; j < k[1]; ++j)
                for (int64_t l = 0; l < k[2]; ++l) sum += x(b, c, d * s[0] + i, h * s[1] + j, w * s[2] + l);
            y(b, c, d, h, w) = sum / double(k[0] * k[1] * k[2]);
          }
  return y;
}
Tensor<double, Cpu> pool_grad_loops(const Tensor<double, Cpu>& dy, const Shape& xs, Dims k, Dims s) {
  Tensor<double, Cpu> dx = Tensor<double, Cpu>::zeros(xs);
  for (int64_t b = 0; b < dy.size(0); ++b)
    for (int64_t c = 0; c < dy.size(1); ++c)
      for (int64_t d = 0; d < dy.size(2); ++d)
        for (int64_t h = 0; h < dy.size(3); ++h)
          for (int64_t w = 0; w < dy.size(4); ++w)
            for (int64_t i = 0; i < k[0]; ++i)
              for (int64_t j = 0; j < k[1]; ++j)
                for (int64_t l = 0; l < k[2]; ++l)
                  dx(b, c, d * s[0] + i, h * s[1] + j, w * s[2] + l) += dy(b, c, d, h, w) / double(k[0] * k[1] * k[2]);
  return dx;
}
}  // namespace

TEST_CASE("avg_pool3d matches torch.nn.functional.avg_pool3d", "[ops][pool3d]") {
  testing::Fixture f("ops/avg_pool3d.safetensors");
  REQUIRE(f.meta("kernel") == "2");
  REQUIRE(f.meta("stride") == "2");
  const auto x = f.get("x");
  const double ey = rel_error(ops::avg_pool3d(x, {2, 2, 2}, {2, 2, 2}), f.get("y"));
  const double ex = rel_error(ops::avg_pool3d_backward(f.get("dy"), x.shape(), {2, 2, 2}, {2, 2, 2}), f.get("dx"));
  INFO("y " << ey << ", dx " << ex);
  CHECK(ey <= 1e-5);
  CHECK(ex <= 1e-5);
}

TEST_CASE("avg_pool3d with overlapping windows and a floored output matches loops", "[ops][pool3d]") {
  const Dims k{3, 2, 3}, s{2, 1, 2};
  const auto x = Rng(5).normal<double>({2, 3, 8, 5, 10});  // 8 and 10 leave a remainder
  const auto y = ops::avg_pool3d(x, k, s);
  CHECK(y.shape() == Shape{2, 3, 3, 4, 4});
  CHECK(rel_error(y, pool_loops(x, k, s)) <= 1e-14);
  const auto dy = Rng(6).normal<double>(y.shape());
  CHECK(rel_error(ops::avg_pool3d_backward(dy, x.shape(), k, s), pool_grad_loops(dy, x.shape(), k, s)) <= 1e-14);
}

TEST_CASE("avg_pool3d backward passes finite differences", "[ops][pool3d][gradcheck]") {
  for (auto [k, s] : {std::pair{Dims{2, 2, 2}, Dims{2, 2, 2}}, std::pair{Dims{3, 2, 2}, Dims{1, 2, 1}}}) {
    autograd::Variable<double> x(Rng(3).normal<double>({2, 2, 5, 4, 5}), true);
    const double err = testing::gradcheck([k, s](const auto& in) { return autograd::avg_pool3d(in[0], k, s); }, {x});
    CHECK(err <= 1e-7);
  }
}

TEST_CASE("avg_pool3d rejects bad arguments", "[ops][pool3d]") {
  const auto x = Rng(1).normal<float>({1, 2, 4, 4, 4});
  CHECK_THROWS_AS(ops::avg_pool3d(Rng(1).normal<float>({2, 4, 4, 4}), {2, 2, 2}, {2, 2, 2}), ctmllm::Error);
  CHECK_THROWS_AS(ops::avg_pool3d(x, {0, 2, 2}, {2, 2, 2}), ctmllm::Error);
  CHECK_THROWS_AS(ops::avg_pool3d(x, {2, 2, 2}, {2, -1, 2}), ctmllm::Error);
  CHECK_THROWS_AS(ops::avg_pool3d(x, {2, 5, 2}, {2, 2, 2}), ctmllm::Error);
  CHECK_THROWS_AS(ops::avg_pool3d(Tensor<float, Cpu>(), {2, 2, 2}, {2, 2, 2}), ctmllm::Error);
  CHECK_THROWS_AS(ops::avg_pool3d_backward(Rng(1).normal<float>({1, 2, 2, 2, 3}), x.shape(), {2, 2, 2}, {2, 2, 2}),
                  ctmllm::Error);
  CHECK_THROWS_AS(ops::avg_pool3d_backward(Rng(1).normal<float>({1, 2, 2, 2, 2}), Shape{1, 2, 4, 4}, {2, 2, 2}, {2, 2, 2}),
                  ctmllm::Error);
  try {
    ops::avg_pool3d(x, {2, 5, 2}, {2, 2, 2});
  } catch (const ctmllm::Error& e) {
    CHECK(std::string(e.what()).find("avg_pool3d") != std::string::npos);
    CHECK(std::string(e.what()).find("[1, 2, 4, 4, 4]") != std::string::npos);
  }
}

TEST_CASE("avg_pool3d works on strided views", "[ops][pool3d]") {
  const auto x = Rng(2).normal<float>({2, 6, 5, 4, 3}).permute({0, 4, 2, 3, 1});  // [2, 3, 5, 4, 6], strided
  REQUIRE(!x.is_contiguous());
  CHECK(rel_error(ops::avg_pool3d(x, {2, 2, 3}, {1, 2, 3}), ops::avg_pool3d(x.contiguous(), {2, 2, 3}, {1, 2, 3})) == 0.0);
}

TEST_CASE("avg_pool3d reads a channels-last input in place with the contiguous result", "[ops][pool3d]") {
  // The SPP projector's grid: tokens [B, N, C] seen as [B, C, D, H, W] (N = D·H·W), C innermost.
  const auto tokens = Rng(7).normal<float>({2, 4 * 6 * 8, 40});
  const auto grid = tokens.transpose(1, 2).reshape({2, 40, 4, 6, 8});
  REQUIRE(ops::impl::is_channels_last_3d(grid));
  REQUIRE_FALSE(ops::impl::is_channels_last_3d(grid.contiguous()));
  for (auto [k, s] : {std::pair{Dims{2, 2, 2}, Dims{2, 2, 2}}, std::pair{Dims{3, 2, 3}, Dims{1, 2, 2}}}) {
    const auto y = ops::avg_pool3d(grid, k, s);
    CHECK(y.is_contiguous());
    CHECK(rel_error(y, ops::avg_pool3d(grid.contiguous(), k, s)) == 0.0);
  }
  const auto grid16 = tokens.to<bf16>().transpose(1, 2).reshape({2, 40, 4, 6, 8});
  CHECK(rel_error(ops::avg_pool3d(grid16, {2, 2, 2}, {2, 2, 2}), ops::avg_pool3d(grid16.contiguous(), {2, 2, 2}, {2, 2, 2})) ==
        0.0);
}
