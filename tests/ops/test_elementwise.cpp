// Elementwise ops against hand-computed values and plain loops written here (broadcast by index
// arithmetic), their backward by finite differences, strided inputs and bad input.
#include <cmath>
#include <functional>
#include <vector>

#include "ctmllm/autograd/elementwise.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {

// Offset of output element `i` (row-major over out) in a contiguous operand of shape s, which
// broadcasts to out: leading dimensions missing, size-1 dimensions repeated.
int64_t broadcast_offset(int64_t i, const Shape& out, const Shape& s) {
  int64_t off = 0, stride = 1;
  for (int d = out.rank() - 1; d >= 0; --d) {
    const int64_t idx = i % out[d];
    i /= out[d];
    const int sd = d - (out.rank() - s.rank());
    if (sd >= 0) {
      if (s[sd] != 1) off += idx * stride;
      stride *= s[sd];
    }
  }
  return off;
}

template <class T>
Tensor<T, Cpu> reference_binary(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b, const Shape& out,
                                const std::function<double(double, double)>& f) {
  const auto ac = a.contiguous(), bc = b.contiguous();
  auto y = Tensor<T, Cpu>::empty(out);
  for (int64_t i = 0; i < out.numel(); ++i)
    y.data()[i] = T(f(double(ac.data()[broadcast_offset(i, out, a.shape())]), double(bc.data()[broadcast_offset(i, out, b.shape())])));
  return y;
}

const std::vector<std::pair<ops::Binary, std::function<double(double, double)>>> kBinary = {
    {ops::Binary::add, [](double x, double y) { return x + y; }},
    {ops::Binary::sub, [](double x, double y) { return x - y; }},
    {ops::Binary::mul, [](double x, double y) { return x * y; }},
    {ops::Binary::div, [](double x, double y) { return x / y; }},
};

}  // namespace

TEST_CASE("binary ops on hand-computed values", "[ops][elementwise]") {
  const auto a = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  const auto col = Tensor<float>::from({10, 20}, {2, 1});
  const auto row = Tensor<float>::from({1, 2, 4}, {3});
  CHECK(ops::add(a, col).to_vector() == std::vector<float>{11, 12, 13, 24, 25, 26});
  CHECK(ops::sub(a, row).to_vector() == std::vector<float>{0, 0, -1, 3, 3, 2});
  CHECK(ops::mul(col, row).to_vector() == std::vector<float>{10, 20, 40, 20, 40, 80});
  CHECK(ops::div(a, row).to_vector() == std::vector<float>{1, 1, 0.75f, 4, 2.5f, 1.5f});
  CHECK(ops::add(a, col).shape() == Shape{2, 3});
  CHECK(ops::mul(col, row).shape() == Shape{2, 3});
}

TEST_CASE("binary ops broadcast like NumPy", "[ops][elementwise]") {
  Rng rng(11);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{2, 1, 4}, {5, 1}},
      {{1}, {3, 2}},          {{4, 1, 3}, {1, 5, 1}}, {{}, {2, 2}},   {{6, 1}, {1, 7}}};
  for (const auto& [sa, sb] : cases) {
    const auto a = rng.normal<float>(sa), b = rng.uniform<float>(sb, 0.5, 2.0);  // b away from 0 for div
    const Shape out = broadcast_shapes(sa, sb, "test");
    for (const auto& [op, f] : kBinary) {
      const auto y = ops::binary(a, b, op);
      REQUIRE(y.shape() == out);
      CHECK(rel_error(y, reference_binary(a, b, out, f)) <= 1e-7);
    }
  }
}

TEST_CASE("binary ops on strided views match contiguous copies", "[ops][elementwise]") {
  Rng rng(12);
  const auto big = rng.normal<float>({6, 8});
  const auto at = big.transpose(0, 1);             // [8, 6], strides (1, 8)
  const auto bs = rng.normal<float>({8, 12}).slice(1, 0, 12, 2);  // [8, 6], strides (12, 2)
  const auto row = rng.normal<float>({4, 6}).select(0, 2);        // [6]
  for (const auto& [op, f] : kBinary) {
    CHECK(rel_error(ops::binary(at, bs, op), ops::binary(at.contiguous(), bs.contiguous(), op)) == 0.0);
    CHECK(rel_error(ops::binary(at, row, op), ops::binary(at.contiguous(), row.contiguous(), op)) == 0.0);
  }
}

TEST_CASE("unary ops match std functions", "[ops][elementwise]") {
  const auto x = Rng(13).uniform<float>({5, 7}, 0.1, 3.0);
  const auto xt = x.transpose(0, 1);
  struct Case {
    ops::Unary op;
    double s;
    std::function<double(double)> f;
  };
  const std::vector<Case> cases = {
      {ops::Unary::neg, 0, [](double v) { return -v; }},
      {ops::Unary::exp, 0, [](double v) { return std::exp(v); }},
      {ops::Unary::log, 0, [](double v) { return std::log(v); }},
      {ops::Unary::sqrt, 0, [](double v) { return std::sqrt(v); }},
      {ops::Unary::rsqrt, 0, [](double v) { return 1 / std::sqrt(v); }},
      {ops::Unary::square, 0, [](double v) { return v * v; }},
      {ops::Unary::tanh, 0, [](double v) { return std::tanh(v); }},
      {ops::Unary::sigmoid, 0, [](double v) { return 1 / (1 + std::exp(-v)); }},
      {ops::Unary::add_scalar, 2.5, [](double v) { return v + 2.5; }},
      {ops::Unary::mul_scalar, -3, [](double v) { return v * -3; }},
      {ops::Unary::pow_scalar, 1.5, [](double v) { return std::pow(v, 1.5); }},
  };
  for (const auto& c : cases) {
    auto ref = Tensor<float>::empty(xt.shape());
    for (int64_t i = 0; i < 7; ++i)
      for (int64_t j = 0; j < 5; ++j) ref(i, j) = float(c.f(double(x(j, i))));
    CHECK(rel_error(ops::unary(xt, c.op, c.s), ref) <= 1e-6);
  }
  CHECK(ops::exp(Tensor<float>::from({0.0f}, {1})).item() == 1.0f);
  CHECK(ops::sqrt(Tensor<float>::from({9.0f}, {1})).item() == 3.0f);
  CHECK(ops::pow_scalar(Tensor<float>::from({2.0f}, {1}), 3.0).item() == 8.0f);
}

TEST_CASE("masked_fill with a broadcast mask", "[ops][elementwise]") {
  const auto x = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  const auto mask = Tensor<uint8_t>::from({0, 1, 1}, {3});
  CHECK(ops::masked_fill(x, mask, -9.0).to_vector() == std::vector<float>{1, -9, -9, 4, -9, -9});
  const auto rows = Tensor<uint8_t>::from({1, 0}, {2, 1});
  CHECK(ops::masked_fill(x, rows, 0.5).to_vector() == std::vector<float>{0.5f, 0.5f, 0.5f, 4, 5, 6});
  const auto inf = ops::masked_fill(x, mask, -INFINITY);
  CHECK(std::isinf(inf(0, 1)));
  CHECK(inf(0, 1) < 0);
  CHECK(ops::masked_fill_backward(Tensor<float>::ones({2, 3}), mask).to_vector() == std::vector<float>{1, 0, 0, 1, 0, 0});
  // strided x
  const auto xt = x.transpose(0, 1);  // [3, 2]
  const auto m2 = Tensor<uint8_t>::from({1, 0}, {2});
  CHECK(ops::masked_fill(xt, m2, 7.0).to_vector() == std::vector<float>{7, 4, 7, 5, 7, 6});
}

TEST_CASE("add_ accumulates in place with broadcasting", "[ops][elementwise]") {
  const auto dst = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  ops::add_(dst, Tensor<float>::from({10, 20, 30}, {3}));
  CHECK(dst.to_vector() == std::vector<float>{11, 22, 33, 14, 25, 36});
  CHECK_THROWS_AS(ops::add_(dst, Tensor<float>::zeros({2, 2})), ctmllm::Error);
  CHECK_THROWS_AS(ops::add_(Tensor<float>::zeros({3}), Tensor<float>::zeros({2, 3})), ctmllm::Error);
}

TEST_CASE("add_ reads a src overlapping dst as it was and rejects an expanded dst", "[ops][elementwise]") {
  const auto x = Tensor<float>::from({1, 2, 3, 4, 5}, {5});
  ops::add_(x.slice(0, 1, 5), x.slice(0, 0, 4));
  CHECK(x.to_vector() == std::vector<float>{1, 3, 5, 7, 9});
  const auto m = Tensor<float>::from({1, 2, 3, 4}, {2, 2});
  ops::add_(m, m.transpose(0, 1));
  CHECK(m.to_vector() == std::vector<float>{2, 5, 5, 8});
  ops::add_(m, m.select(0, 0));  // a row of dst broadcast over dst
  CHECK(m.to_vector() == std::vector<float>{4, 10, 7, 13});
  const auto row = Tensor<float>::zeros({3});
  CHECK_THROWS_WITH(ops::add_(row.expand({2, 3}), Tensor<float>::ones({2, 3})),
                    Catch::Contains("repeats its elements along dimension 0"));
  CHECK(row.to_vector() == std::vector<float>{0, 0, 0});
}

TEST_CASE("binary_backward sums gradients back to operand shapes", "[ops][elementwise]") {
  const auto a = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  const auto b = Tensor<float>::from({2, 4}, {2, 1});
  const auto dy = Tensor<float>::from({1, 1, 1, 2, 2, 2}, {2, 3});
  auto g = ops::binary_backward(dy, a, b, ops::Binary::mul);
  CHECK(g.da.to_vector() == std::vector<float>{2, 2, 2, 8, 8, 8});
  CHECK(g.db.to_vector() == std::vector<float>{6, 30});  // Σ_j dy·a
  g = ops::binary_backward(dy, a, b, ops::Binary::sub);
  CHECK(g.da.to_vector() == dy.to_vector());
  CHECK(g.db.to_vector() == std::vector<float>{-3, -6});
  g = ops::binary_backward(dy, a, b, ops::Binary::div, false, true);
  CHECK(!g.da.defined());
  CHECK(g.db.to_vector() == std::vector<float>{-6.0f / 4, -2.0f * 15 / 16});  // Σ_j −dy·a/b²
}

TEST_CASE("elementwise backward passes finite differences", "[ops][elementwise][gradcheck]") {
  Rng rng(21);
  const std::vector<std::pair<Shape, Shape>> shapes = {{{3, 4}, {3, 4}}, {{2, 3, 4}, {3, 1}}, {{4}, {2, 1, 4}}, {{}, {2, 3}}};
  for (const auto& [sa, sb] : shapes)
    for (const auto& [op, f] : kBinary) {
      autograd::Variable<double> a(rng.normal<double>(sa), true), b(rng.uniform<double>(sb, 0.5, 2.0), true);
      const double err = testing::gradcheck([op = op](const auto& in) { return autograd::binary(in[0], in[1], op); }, {a, b});
      CHECK(err <= 1e-7);
    }
  const auto positive = rng.uniform<double>({3, 5}, 0.2, 2.0);
  for (auto op : {ops::Unary::neg, ops::Unary::exp, ops::Unary::log, ops::Unary::sqrt, ops::Unary::rsqrt, ops::Unary::square,
                  ops::Unary::tanh, ops::Unary::sigmoid, ops::Unary::add_scalar, ops::Unary::mul_scalar, ops::Unary::pow_scalar}) {
    autograd::Variable<double> x(positive.clone(), true);
    const double err = testing::gradcheck([op](const auto& in) { return autograd::unary(in[0], op, 1.7); }, {x});
    CHECK(err <= 1e-7);
  }
  autograd::Variable<double> x(rng.normal<double>({3, 4}), true);
  const auto mask = Tensor<uint8_t>::from({1, 0, 0, 1}, {4});
  CHECK(testing::gradcheck([&](const auto& in) { return autograd::masked_fill(in[0], mask, 3.0); }, {x}) <= 1e-7);
}

TEST_CASE("pow_scalar with exponent 0 has a zero gradient at 0", "[ops][elementwise]") {
  const auto x = Tensor<double>::from({0.0, 2.0}, {2});
  const auto dx = ops::unary_backward(Tensor<double>::ones({2}), x, Tensor<double>(), ops::Unary::pow_scalar, 0.0);
  CHECK(dx.to_vector() == std::vector<double>{0.0, 0.0});
}

TEST_CASE("elementwise ops reject bad input", "[ops][elementwise]") {
  const auto a = Tensor<float>::zeros({2, 3}), b = Tensor<float>::zeros({4});
  CHECK_THROWS_AS(ops::add(a, b), ctmllm::Error);
  CHECK_THROWS_AS(ops::div(a, Tensor<float>::zeros({3, 1, 2})), ctmllm::Error);
  CHECK_THROWS_AS(ops::add(a, Tensor<float>()), ctmllm::Error);
  CHECK_THROWS_AS(ops::masked_fill(a, Tensor<uint8_t>::zeros({2}), 0.0), ctmllm::Error);
  CHECK_THROWS_AS(ops::masked_fill(a, Tensor<uint8_t>::zeros({1, 2, 3}), 0.0), ctmllm::Error);
  CHECK_THROWS_AS(ops::binary_backward(Tensor<float>::zeros({3, 2}), a, Tensor<float>::zeros({3}), ops::Binary::mul),
                  ctmllm::Error);
  CHECK_THROWS_AS(ops::unary_backward(Tensor<float>::zeros({2, 3}), a, Tensor<float>(), ops::Unary::exp), ctmllm::Error);
  CHECK_THROWS_AS(ops::unary_backward(Tensor<float>::zeros({2, 2}), a, Tensor<float>(), ops::Unary::log), ctmllm::Error);
}
