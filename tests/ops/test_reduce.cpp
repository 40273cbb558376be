// Reductions against hand-computed values and plain loops written here, their backward by finite
// differences, strided inputs, thread-count independence and bad input.
#include <cmath>
#include <limits>
#include <vector>

#include "ctmllm/autograd/reduce.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {

// Σ over the dimensions in `mask` of a contiguous x, in double, by index arithmetic; the result
// has x's shape with those dimensions set to 1 (keepdim).
Tensor<double, Cpu> reference_sum(const Tensor<float, Cpu>& x, const std::vector<bool>& mask) {
  const auto xc = x.contiguous();
  Shape out = x.shape();
  for (int d = 0; d < x.rank(); ++d)
    if (mask[size_t(d)]) out[d] = 1;
  auto y = Tensor<double, Cpu>::zeros(out);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t rem = i, o = 0, stride = 1;
    for (int d = x.rank() - 1; d >= 0; --d) {
      const int64_t idx = rem % x.size(d);
      rem /= x.size(d);
      if (!mask[size_t(d)]) o += idx * stride;
      stride *= out[d];
    }
    y.data()[o] += double(xc.data()[i]);
  }
  return y;
}

}  // namespace

TEST_CASE("sum and mean on hand-computed values", "[ops][reduce]") {
  const auto x = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(ops::sum(x, {0}).to_vector() == std::vector<float>{5, 7, 9});
  CHECK(ops::sum(x, {1}).to_vector() == std::vector<float>{6, 15});
  CHECK(ops::sum(x, {-1}, true).shape() == Shape{2, 1});
  CHECK(ops::mean(x, {1}).to_vector() == std::vector<float>{2, 5});
  CHECK(ops::mean(x, {0, 1}, true).shape() == Shape{1, 1});
  CHECK(ops::sum(x).shape() == Shape{});
  CHECK(ops::sum(x).item() == 21.0f);
  CHECK(ops::mean(x).item() == 3.5f);
  CHECK(ops::sum(x.transpose(0, 1), {1}).to_vector() == std::vector<float>{5, 7, 9});
  // empty reductions: 0 for sum, NaN for mean, as in PyTorch
  const auto e = Tensor<float>::zeros({0, 3});
  CHECK(ops::sum(e, {0}).to_vector() == std::vector<float>{0, 0, 0});
  CHECK(std::isnan(ops::mean(e, {0}).to_vector()[0]));
}

TEST_CASE("sum and mean over dimension sets match loops", "[ops][reduce]") {
  Rng rng(31);
  const auto x = rng.normal<float>({3, 4, 5, 6});
  const std::vector<std::vector<int>> dim_sets = {{0}, {1}, {2}, {3}, {0, 2}, {1, 3}, {0, 1, 2}, {1, 2, 3}, {0, 1, 2, 3}, {-1, 0}};
  for (const auto& dims : dim_sets) {
    std::vector<bool> mask(4, false);
    int64_t count = 1;
    for (int d : dims) {
      const int n = d < 0 ? d + 4 : d;
      mask[size_t(n)] = true;
      count *= x.size(n);
    }
    const auto ref = reference_sum(x, mask);
    CHECK(rel_error(ops::sum(x, dims, true), ref) <= 1e-6);
    CHECK(rel_error(ops::sum(x, dims), ref.reshape(ops::sum(x, dims).shape())) <= 1e-6);
    auto ref_mean = ref.clone();
    for (int64_t i = 0; i < ref_mean.numel(); ++i) ref_mean.data()[i] /= double(count);
    CHECK(rel_error(ops::mean(x, dims, true), ref_mean) <= 1e-6);
    // the same reductions on a permuted (strided) view
    const auto xp = x.permute({2, 0, 3, 1}).contiguous().permute({1, 3, 0, 2});  // same values, new strides
    REQUIRE(!xp.is_contiguous());
    CHECK(rel_error(ops::sum(xp, dims, true), ref) <= 1e-6);
  }
}

TEST_CASE("large reductions: column sums, long rows and the total", "[ops][reduce]") {
  // Float rounding is bounded relative to Σ|x|, so the check is |ours − exact| ≤ 1e-6·Σ|x| per output.
  Rng rng(32);
  for (const Shape& s : {Shape{3000, 300}, Shape{7, 50000}, Shape{40000, 3}}) {
    const auto x = rng.normal<float>(s);
    auto ax = x.clone();
    for (int64_t i = 0; i < ax.numel(); ++i) ax.data()[i] = std::abs(ax.data()[i]);
    for (const std::vector<bool>& mask : {std::vector<bool>{true, false}, {false, true}, {true, true}}) {
      std::vector<int> dims;
      for (int d = 0; d < 2; ++d)
        if (mask[size_t(d)]) dims.push_back(d);
      const auto ours = ops::sum(x, dims, true);
      const auto exact = reference_sum(x, mask), scale = reference_sum(ax, mask);
      double worst = 0;
      for (int64_t i = 0; i < ours.numel(); ++i)
        worst = std::max(worst, std::abs(double(ours.data()[i]) - exact.data()[i]) / scale.data()[i]);
      CHECK(worst <= 1e-6);
    }
  }
}

TEST_CASE("reductions do not depend on the thread count", "[ops][reduce]") {
  const auto x = Rng(33).normal<float>({517, 300});
  const auto xt = x.transpose(0, 1);
  const int before = num_threads();
  set_num_threads(1);
  const auto a0 = ops::sum(x, {0}), a1 = ops::sum(x, {1}), a2 = ops::sum(x), a3 = ops::sum(xt, {0});
  set_num_threads(2);
  CHECK(rel_error(ops::sum(x, {0}), a0) == 0.0);
  CHECK(rel_error(ops::sum(x, {1}), a1) == 0.0);
  CHECK(rel_error(ops::sum(x), a2) == 0.0);
  CHECK(rel_error(ops::sum(xt, {0}), a3) == 0.0);
  set_num_threads(before);
}

TEST_CASE("sum_to_shape reduces broadcast dimensions", "[ops][reduce]") {
  Rng rng(34);
  const auto g = rng.normal<float>({2, 3, 4});
  CHECK(rel_error(ops::sum_to_shape(g, {3, 1}), reference_sum(g, {true, false, true}).reshape({3, 1})) <= 1e-6);
  CHECK(rel_error(ops::sum_to_shape(g, {4}), reference_sum(g, {true, true, false}).reshape({4})) <= 1e-6);
  CHECK(rel_error(ops::sum_to_shape(g, {2, 1, 1}), reference_sum(g, {false, true, true})) <= 1e-6);
  CHECK(rel_error(ops::sum_to_shape(g, {}), reference_sum(g, {true, true, true}).reshape(Shape{})) <= 1e-6);
  CHECK(ops::sum_to_shape(g, {2, 3, 4}).shares_storage_with(g));
  CHECK_THROWS_AS(ops::sum_to_shape(g, {3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::sum_to_shape(g, {1, 2, 3, 4}), ctmllm::Error);
}

TEST_CASE("max and argmax along a dimension", "[ops][reduce]") {
  const auto x = Tensor<float>::from({3, 1, 3, -1, 7, 2, 7, 0}, {2, 4});
  auto r = ops::max(x, 1);
  CHECK(r.values.to_vector() == std::vector<float>{3, 7});
  CHECK(r.indices.to_vector() == std::vector<int64_t>{0, 0});  // first of the ties
  r = ops::max(x, 0, true);
  CHECK(r.values.shape() == Shape{1, 4});
  CHECK(r.values.to_vector() == std::vector<float>{7, 2, 7, 0});
  CHECK(r.indices.to_vector() == std::vector<int64_t>{1, 1, 1, 1});
  CHECK(ops::argmax(x.transpose(0, 1), 0).to_vector() == std::vector<int64_t>{0, 0});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto withnan = Tensor<float>::from({1, nan, 5}, {3});
  CHECK(std::isnan(ops::max(withnan, 0).values.item()));
  CHECK(ops::argmax(withnan, 0).item() == 1);

  // a middle dimension against a loop
  const auto y = Rng(35).normal<float>({3, 5, 4});
  const auto m = ops::max(y, 1);
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 4; ++k) {
      int64_t best = 0;
      for (int j = 1; j < 5; ++j)
        if (y(i, j, k) > y(i, best, k)) best = j;
      CHECK(m.indices(i, k) == best);
      CHECK(m.values(i, k) == y(i, best, k));
    }
  const auto dx = ops::max_backward(Tensor<float>::ones({3, 4}), m.indices, y.shape(), 1);
  CHECK(ops::sum(dx).item() == 12.0f);
  CHECK(dx(1, m.indices(1, 2), 2) == 1.0f);
}

TEST_CASE("reduction backward passes finite differences", "[ops][reduce][gradcheck]") {
  Rng rng(36);
  autograd::Variable<double> x(rng.normal<double>({3, 4, 5}), true);
  for (const auto& dims : std::vector<std::vector<int>>{{0}, {1}, {2}, {0, 2}, {1, 2}})
    for (bool keep : {false, true}) {
      CHECK(testing::gradcheck([&](const auto& in) { return autograd::sum(in[0], dims, keep); }, {x}) <= 1e-7);
      CHECK(testing::gradcheck([&](const auto& in) { return autograd::mean(in[0], dims, keep); }, {x}) <= 1e-7);
    }
  CHECK(testing::gradcheck([](const auto& in) { return autograd::sum(in[0]); }, {x}) <= 1e-7);
  CHECK(testing::gradcheck([](const auto& in) { return autograd::mean(in[0]); }, {x}) <= 1e-7);
  for (int dim : {0, 1, 2})
    for (bool keep : {false, true})
      CHECK(testing::gradcheck([&](const auto& in) { return autograd::max(in[0], dim, keep).values; }, {x}) <= 1e-7);
}

TEST_CASE("reductions reject bad input", "[ops][reduce]") {
  const auto x = Tensor<float>::zeros({2, 3});
  CHECK_THROWS_AS(ops::sum(x, {2}), ctmllm::Error);
  CHECK_THROWS_AS(ops::sum(x, {-3}), ctmllm::Error);
  CHECK_THROWS_AS(ops::sum(x, {1, -1}), ctmllm::Error);
  CHECK_THROWS_AS(ops::mean(x, std::vector<int>{}), ctmllm::Error);
  CHECK_THROWS_AS(ops::max(x, 2), ctmllm::Error);
  CHECK_THROWS_AS(ops::max(Tensor<float>::zeros({2, 0}), 1), ctmllm::Error);
  CHECK_THROWS_AS(ops::sum_backward(Tensor<float>::zeros({3}), x.shape(), {1}), ctmllm::Error);
  CHECK_THROWS_AS(ops::mean_backward(Tensor<float>::zeros({2, 1}), x.shape(), {1}, false), ctmllm::Error);
  const auto bad = Tensor<int64_t>::from({0, 3}, {2});
  CHECK_THROWS_AS(ops::max_backward(Tensor<float>::ones({2}), bad, x.shape(), 1), ctmllm::Error);
  CHECK_THROWS_AS(ops::max_backward(Tensor<float>::ones({3}), bad, x.shape(), 1), ctmllm::Error);
}
