// softmax and log_softmax against the PyTorch fixture and float64 loops along every dimension,
// their backward by finite differences, stability, bad input and strided input.
#include <cmath>

#include "ctmllm/autograd/softmax.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {

// Float64 (log_)softmax of a contiguous rank-3 tensor along `dim`, one slice at a time with at().
Tensor<double, Cpu> softmax_ref(const Tensor<float, Cpu>& x, int dim, bool log) {
  Tensor<double, Cpu> y = x.to<double>();
  const Tensor<double, Cpu> xd = y.clone();
  int other[2], k = 0;
  for (int d = 0; d < 3; ++d)
    if (d != dim) other[k++] = d;
  for (int64_t a = 0; a < x.size(other[0]); ++a)
    for (int64_t b = 0; b < x.size(other[1]); ++b) {
      auto at = [&](const Tensor<double, Cpu>& t, int64_t i) -> double& {
        int64_t idx[3];
        idx[dim] = i;
        idx[other[0]] = a;
        idx[other[1]] = b;
        return t.at(idx[0], idx[1], idx[2]);
      };
      double m = -INFINITY, s = 0;
      for (int64_t i = 0; i < x.size(dim); ++i) m = std::max(m, at(xd, i));
      for (int64_t i = 0; i < x.size(dim); ++i) s += std::exp(at(xd, i) - m);
      for (int64_t i = 0; i < x.size(dim); ++i)
        at(y, i) = log ? at(xd, i) - m - std::log(s) : std::exp(at(xd, i) - m) / s;
    }
  return y;
}

}  // namespace

TEST_CASE("softmax matches torch.nn.functional.softmax", "[ops][softmax]") {
  testing::Fixture f("ops/softmax.safetensors");
  const int dim = std::stoi(f.meta("dim"));
  const auto x = f.get("x"), dy = f.get("dy");
  const auto y = ops::softmax(x, dim);
  CHECK(rel_error(y, f.get("y")) <= 1e-5);
  CHECK(rel_error(ops::softmax_backward(dy, y, dim), f.get("dx")) <= 1e-5);

  autograd::Variable<float> xv(x, true);
  autograd::softmax(xv, dim).backward(dy);
  CHECK(rel_error(xv.grad(), f.get("dx")) <= 1e-5);
  CHECK(autograd::log_softmax(autograd::Variable<float>(x), dim).is_leaf());  // nothing recorded
}

TEST_CASE("softmax and log_softmax along every dimension match float64 loops", "[ops][softmax]") {
  // 70 > one lane group along the last dimension, so dims 0 and 1 also cross a group boundary.
  const auto x = Rng(8).normal<float>({3, 4, 70}, 0.0, 3.0);
  for (int dim : {0, 1, 2, -1, -3}) {
    const int d = dim < 0 ? dim + 3 : dim;
    CHECK(rel_error(ops::softmax(x, dim), softmax_ref(x, d, false)) <= 1e-6);
    CHECK(rel_error(ops::log_softmax(x, dim), softmax_ref(x, d, true)) <= 1e-6);
  }
}

TEST_CASE("softmax and log_softmax backward pass finite differences", "[ops][softmax][gradcheck]") {
  autograd::Variable<double> x(Rng(9).normal<double>({3, 5, 66}, 0.0, 2.0), true);
  for (int dim : {0, 1, 2}) {
    CHECK(testing::gradcheck([dim](const auto& in) { return autograd::softmax(in[0], dim); }, {x}) <= 1e-7);
    CHECK(testing::gradcheck([dim](const auto& in) { return autograd::log_softmax(in[0], dim); }, {x}) <= 1e-7);
  }
}

TEST_CASE("softmax is stable for large logits", "[ops][softmax]") {
  const auto x = Tensor<float, Cpu>::from({1000.f, 1001.f, -1000.f, 999.f, 1000.f, 1e4f}, {2, 3});
  const auto y = ops::softmax(x, 0), ly = ops::log_softmax(x);
  CHECK(rel_error(y, softmax_ref(x.reshape({1, 2, 3}), 1, false).reshape({2, 3})) <= 1e-6);
  CHECK(rel_error(ly, softmax_ref(x.reshape({1, 2, 3}), 2, true).reshape({2, 3})) <= 1e-6);
}

TEST_CASE("softmax gives masked scores exactly 0 and keeps NaN", "[ops][softmax]") {
  // Rows of 40 (two 16-lane packets and a scalar tail): -inf (a masked score) and scores 100 below
  // the row's maximum (exp underflows) give exactly 0 wherever they sit; a NaN makes its row NaN.
  auto x = Rng(5).normal<float>({3, 40});
  for (int64_t j : {0, 17, 39}) x.at(0, j) = -INFINITY;
  for (int64_t j : {3, 33, 38}) x.at(1, j) = -100.0f;
  x.at(2, 20) = NAN;
  const auto y = ops::softmax(x), ly = ops::log_softmax(x);
  for (int64_t j : {0, 17, 39}) {
    CHECK(y.at(0, j) == 0.0f);
    CHECK(ly.at(0, j) == -INFINITY);
  }
  for (int64_t j : {3, 33, 38}) CHECK(y.at(1, j) == 0.0f);
  const auto finite = x.slice(0, 0, 2);
  CHECK(rel_error(y.slice(0, 0, 2), softmax_ref(finite.reshape({1, 2, 40}), 2, false).reshape({2, 40})) <= 1e-6);
  for (int64_t j = 0; j < 40; ++j) CHECK(std::isnan(y.at(2, j)));
}

TEST_CASE("softmax in bf16 follows the float rules for masked, underflowing and NaN scores", "[ops][softmax]") {
  // Rows of 300 (a 256-value widening chunk and a partial one): -inf gives 0 (log: -inf); in a row
  // whose one score dominates, scores 90 below it give exactly 0 rather than exp(-90) ~ 8e-40, a
  // subnormal that bf16 (float's exponent range) could hold; a NaN makes its row NaN. The rest is
  // within bf16 rounding of the float64 softmax.
  auto xf = Rng(6).normal<float>({3, 300});
  for (int64_t j : {0, 260, 299}) xf.at(0, j) = -INFINITY;
  for (int64_t j = 0; j < 300; ++j) xf.at(1, j) = -200.0f;
  xf.at(1, 10) = 0.0f;
  for (int64_t j : {3, 257, 298}) xf.at(1, j) = -90.0f;
  xf.at(2, 100) = NAN;
  const Tensor<bf16> x = xf.to<bf16>();
  const Tensor<bf16> y = ops::softmax(x), ly = ops::log_softmax(x);
  for (int64_t j : {0, 260, 299}) {
    CHECK(float(y.at(0, j)) == 0.0f);
    CHECK(float(ly.at(0, j)) == -INFINITY);
  }
  for (int64_t j : {3, 257, 298}) CHECK(float(y.at(1, j)) == 0.0f);
  const Tensor<float> finite = x.slice(0, 0, 2).to<float>();
  CHECK(rel_error(y.slice(0, 0, 2).to<float>(), softmax_ref(finite.reshape({1, 2, 300}), 2, false).reshape({2, 300})) <=
        1e-2);
  for (int64_t j = 0; j < 300; ++j) CHECK(std::isnan(float(y.at(2, j))));
}

TEST_CASE("softmax rejects bad input", "[ops][softmax]") {
  const auto x = Rng(1).normal<float>({2, 3});
  CHECK_THROWS_AS(ops::softmax(x, 2), ctmllm::Error);
  CHECK_THROWS_AS(ops::log_softmax(x, -3), ctmllm::Error);
  CHECK_THROWS_AS(ops::softmax(Tensor<float, Cpu>::ones({}), -1), ctmllm::Error);
  const auto y = ops::softmax(x);
  CHECK_THROWS_AS(ops::softmax_backward(Tensor<float, Cpu>::ones({3, 2}), y), ctmllm::Error);
  CHECK_THROWS_AS(ops::log_softmax_backward(y, y, 5), ctmllm::Error);
}

TEST_CASE("softmax works on strided views", "[ops][softmax]") {
  Rng rng(4);
  const auto x = rng.normal<float>({6, 5, 4}).permute({2, 0, 1}), dy = rng.normal<float>({4, 6, 5});
  for (int dim : {-1, 1}) {
    const auto y = ops::softmax(x, dim), ly = ops::log_softmax(x, dim);
    CHECK(rel_error(y, ops::softmax(x.contiguous(), dim)) == 0.0);
    CHECK(rel_error(ly, ops::log_softmax(x.contiguous(), dim)) == 0.0);
    const auto yt = y.transpose(0, 1).contiguous().transpose(0, 1);  // same values, strided
    CHECK(rel_error(ops::softmax_backward(dy, yt, dim), ops::softmax_backward(dy, y, dim)) == 0.0);
  }
}
