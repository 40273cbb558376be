// concat, split, index_copy_ and the scatter-style backward of slice/select/split against
// hand-computed values, their gradients by finite differences, strided inputs and bad input.
#include <vector>

#include "ctmllm/autograd/shape_ops.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;
using TF = std::vector<Tensor<float>>;

TEST_CASE("concat on hand-computed values", "[ops][shape]") {
  const auto a = Tensor<float>::from({1, 2, 3, 4}, {2, 2});
  const auto b = Tensor<float>::from({5, 6}, {2, 1});
  const auto c = Tensor<float>::from({7, 8}, {1, 2});
  CHECK(ops::concat(TF{a, b}, 1).to_vector() == std::vector<float>{1, 2, 5, 3, 4, 6});
  CHECK(ops::concat(TF{a, b}, -1).shape() == Shape{2, 3});
  CHECK(ops::concat(TF{a, c}, 0).to_vector() == std::vector<float>{1, 2, 3, 4, 7, 8});
  CHECK(ops::concat(TF{a}, 0).to_vector() == a.to_vector());
  // strided inputs: a transposed view and a sliced one
  const auto at = a.transpose(0, 1);                                                  // [[1, 3], [2, 4]]
  const auto bs = Tensor<float>::from({9, 0, 10, 0}, {2, 2}).slice(1, 0, 1);  // [[9], [10]]
  CHECK(ops::concat(TF{at, bs, b}, 1).to_vector() == std::vector<float>{1, 3, 9, 5, 2, 4, 10, 6});
  CHECK(ops::concat(TF{Tensor<float>::zeros({2, 0}), b}, 1).to_vector() == std::vector<float>{5, 6});
}

TEST_CASE("concat of random blocks matches element access", "[ops][shape]") {
  Rng rng(51);
  const auto a = rng.normal<float>({3, 2, 5}), b = rng.normal<float>({3, 4, 5}).transpose(0, 2).contiguous().transpose(0, 2);
  const auto y = ops::concat(TF{a, b, a}, 1);
  REQUIRE(y.shape() == Shape{3, 8, 5});
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 8; ++j)
      for (int k = 0; k < 5; ++k) {
        const float want = j < 2 ? a(i, j, k) : j < 6 ? b(i, j - 2, k) : a(i, j - 6, k);
        CHECK(y(i, j, k) == want);
      }
}

TEST_CASE("split returns views, its backward fills the missing pieces with zeros", "[ops][shape]") {
  const auto x = Tensor<float>::from({1, 2, 3, 4, 5, 6}, {2, 3});
  const auto pieces = ops::split(x, {1, 2}, 1);
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0].to_vector() == std::vector<float>{1, 4});
  CHECK(pieces[1].to_vector() == std::vector<float>{2, 3, 5, 6});
  CHECK(pieces[1].shares_storage_with(x));
  const auto g1 = Tensor<float>::from({7, 8, 9, 10}, {2, 2});
  CHECK(ops::split_backward(TF{Tensor<float>(), g1}, x.shape(), {1, 2}, 1).to_vector() ==
        std::vector<float>{0, 7, 8, 0, 9, 10});
  const auto g0 = Tensor<float>::from({-1, -2}, {2, 1});
  CHECK(ops::split_backward(TF{g0, g1}, x.shape(), {1, 2}, -1).to_vector() == std::vector<float>{-1, 7, 8, -2, 9, 10});
  const auto cb = ops::concat_backward(x, {2, 1}, 1);
  CHECK(cb[0].to_vector() == std::vector<float>{1, 2, 4, 5});
  CHECK(cb[1].to_vector() == std::vector<float>{3, 6});
}

TEST_CASE("slice and select backward place dy into zeros", "[ops][shape]") {
  const auto dy = Tensor<float>::from({1, 2}, {2});
  CHECK(ops::slice_backward(dy, {5}, 0, 1, 5, 2).to_vector() == std::vector<float>{0, 1, 0, 2, 0});
  CHECK(ops::slice_backward(dy, {5}, 0, -2, 5).to_vector() == std::vector<float>{0, 0, 0, 1, 2});
  CHECK(ops::select_backward(dy, {3, 2}, 0, 1).to_vector() == std::vector<float>{0, 0, 1, 2, 0, 0});
  CHECK(ops::select_backward(dy, {2, 3}, 1, -1).to_vector() == std::vector<float>{0, 0, 1, 0, 0, 2});
}

TEST_CASE("concat and split backward pass finite differences", "[ops][shape][gradcheck]") {
  Rng rng(52);
  autograd::Variable<double> a(rng.normal<double>({2, 3, 4}), true), b(rng.normal<double>({2, 1, 4}), true),
      c(rng.normal<double>({2, 2, 4}), true);
  CHECK(testing::gradcheck([](const auto& in) { return autograd::concat(in, 1); }, {a, b, c}) <= 1e-7);
  autograd::Variable<double> x(rng.normal<double>({3, 6}), true);
  for (size_t piece = 0; piece < 3; ++piece)
    CHECK(testing::gradcheck([piece](const auto& in) { return autograd::split(in[0], {1, 3, 2}, 1)[piece]; }, {x}) <= 1e-7);
  // all pieces used: their gradients meet in x
  CHECK(testing::gradcheck([](const auto& in) {
          auto p = autograd::split(in[0], {2, 1}, 0);
          return autograd::concat(std::vector<autograd::Variable<double>>{p[1], p[0], p[1]}, 0);
        }, {x}) <= 1e-7);
}

TEST_CASE("index_copy_ writes rows at the indices a tensor holds", "[ops][shape]") {
  Rng rng(52);
  const auto dst = rng.normal<float>({2, 3, 6, 4});
  const auto before = dst.clone();
  // A strided source (a transposed view made contiguous by the op) along dim 2, rows 5 and 1.
  const auto src = rng.normal<float>({2, 4, 3, 2}).permute({0, 2, 3, 1});  // [2, 3, 2, 4]
  ops::index_copy_(dst, 2, Tensor<int64_t>::from({5, 1}, {2}), src);
  for (int a = 0; a < 2; ++a)
    for (int h = 0; h < 3; ++h)
      for (int r = 0; r < 6; ++r)
        for (int d = 0; d < 4; ++d) {
          const float want = r == 5 ? src(a, h, 0, d) : r == 1 ? src(a, h, 1, d) : before(a, h, r, d);
          CHECK(dst(a, h, r, d) == want);
        }
  // Negative dim, one row of a matrix; no indices leaves dst as it was.
  const auto m = Tensor<float>::zeros({2, 3});
  ops::index_copy_(m, -1, Tensor<int64_t>::from({2}, {1}), Tensor<float>::from({7, 8}, {2, 1}));
  CHECK(m.to_vector() == std::vector<float>{0, 0, 7, 0, 0, 8});
  ops::index_copy_(m, 0, Tensor<int64_t>::zeros({0}), Tensor<float>::zeros({0, 3}));
  CHECK(m.to_vector() == std::vector<float>{0, 0, 7, 0, 0, 8});
  // A source that is part of dst: read as it was before the copy.
  const auto own = Tensor<float>::from({0, 1, 2, 3}, {4, 1});
  ops::index_copy_(own, 0, Tensor<int64_t>::from({1, 2}, {2}), own.slice(0, 0, 2));
  CHECK(own.to_vector() == std::vector<float>{0, 0, 1, 3});
}

TEST_CASE("shape ops reject bad input", "[ops][shape]") {
  const auto a = Tensor<float>::zeros({2, 3}), b = Tensor<float>::zeros({3, 3});
  CHECK_THROWS_AS(ops::concat(TF{a, b}, 1), ctmllm::Error);
  CHECK_THROWS_AS(ops::concat(TF{a, Tensor<float>::zeros({2, 3, 1})}, 0), ctmllm::Error);
  CHECK_THROWS_AS(ops::concat(TF{a, b}, 2), ctmllm::Error);
  CHECK_THROWS_AS(ops::concat(TF{}, 0), ctmllm::Error);
  CHECK_THROWS_AS(ops::concat(TF{a, Tensor<float>()}, 0), ctmllm::Error);
  CHECK_THROWS_AS(ops::split(a, {1, 1}, 1), ctmllm::Error);
  CHECK_THROWS_AS(ops::split(a, {4, -1}, 1), ctmllm::Error);
  CHECK_THROWS_AS(ops::split(a, {1, 1}, 2), ctmllm::Error);
  CHECK_THROWS_AS(ops::concat_backward(a, {1, 1}, 1), ctmllm::Error);
  CHECK_THROWS_AS(ops::split_backward(TF{Tensor<float>::zeros({2, 2})}, a.shape(), {3}, 1), ctmllm::Error);
  CHECK_THROWS_AS(ops::split_backward(TF{Tensor<float>()}, a.shape(), {1, 2}, 1), ctmllm::Error);
  CHECK_THROWS_AS(ops::slice_backward(Tensor<float>::zeros({2}), {5}, 0, 0, 3), ctmllm::Error);
  CHECK_THROWS_AS(ops::slice_backward(Tensor<float>::zeros({2}), {5}, 0, 3, 9), ctmllm::Error);
  CHECK_THROWS_AS(ops::select_backward(Tensor<float>::zeros({2}), {3, 2}, 0, 3), ctmllm::Error);
  // index_copy_: an index out of range (named), a strided destination, shapes that do not match.
  const auto rows = Tensor<float>::zeros({4, 2}), two = Tensor<float>::zeros({2, 2});
  CHECK_THROWS_WITH(ops::index_copy_(rows, 0, Tensor<int64_t>::from({1, 4}, {2}), two),
                    Catch::Contains("index 4 at position 1 is outside [0, 4)"));
  CHECK_THROWS_AS(ops::index_copy_(rows, 0, Tensor<int64_t>::from({-1, 0}, {2}), two), ctmllm::Error);
  CHECK_THROWS_AS(ops::index_copy_(rows.transpose(0, 1), 1, Tensor<int64_t>::from({0, 1}, {2}), two), ctmllm::Error);
  CHECK_THROWS_AS(ops::index_copy_(rows, 0, Tensor<int64_t>::from({0}, {1}), two), ctmllm::Error);
  CHECK_THROWS_AS(ops::index_copy_(rows, 0, Tensor<int64_t>::from({0, 1}, {1, 2}), two), ctmllm::Error);
  CHECK_THROWS_AS(ops::index_copy_(rows, 2, Tensor<int64_t>::from({0, 1}, {2}), two), ctmllm::Error);
}
