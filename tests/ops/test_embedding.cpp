// embedding against an index loop, its backward (scatter-add with repeated ids) against a loop and
// by finite differences, thread-count independence, bad ids and strided input.
#include <string>

#include "ctmllm/autograd/embedding.hpp"
#include "ctmllm/ops/caller_checked_indices.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::message_of;
using testing::rel_error;

namespace {
}  // namespace

TEST_CASE("embedding gathers rows and scatter-adds gradients", "[ops][embedding]") {
  const auto w = Rng(1).normal<float>({10, 6});
  const auto ids = Tensor<int64_t, Cpu>::from({3, 0, 9, 3, 3, 7}, {2, 3});
  const auto y = ops::embedding(w, ids);
  REQUIRE(y.shape() == Shape{2, 3, 6});
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t h = 0; h < 6; ++h) CHECK(y.at(a, b, h) == w.at(ids.at(a, b), h));

  const auto dy = Rng(2).normal<float>({2, 3, 6});
  auto ref = Tensor<double, Cpu>::zeros({10, 6});
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t h = 0; h < 6; ++h) ref.at(ids.at(a, b), h) += dy.at(a, b, h);
  CHECK(rel_error(ops::embedding_backward(dy, ids, 10), ref) <= 1e-6);

  autograd::Variable<float> wv(w, true);
  autograd::embedding(wv, ids).backward(dy);
  CHECK(rel_error(wv.grad(), ref) <= 1e-6);
  CHECK(autograd::embedding(autograd::Variable<float>(w), ids).is_leaf());  // nothing recorded
}

TEST_CASE("embedding backward passes finite differences", "[ops][embedding][gradcheck]") {
  autograd::Variable<double> w(Rng(3).normal<double>({7, 5}), true);
  const auto ids = Tensor<int64_t, Cpu>::from({6, 1, 1, 0, 6, 6, 2, 1}, {2, 2, 2});
  CHECK(testing::gradcheck([&ids](const auto& in) { return autograd::embedding(in[0], ids); }, {w}) <= 1e-7);
}

TEST_CASE("embedding backward does not depend on the thread count", "[ops][embedding]") {
  Rng rng(4);
  const int64_t V = 50, H = 300, N = 4000;  // many repeats of every id
  auto ids = Tensor<int64_t, Cpu>::empty({N});
  for (int64_t i = 0; i < N; ++i) ids.data()[i] = int64_t(rng.uniform_at(i) * V);
  const auto dy = rng.normal<float>({N, H});
  const int threads = num_threads();
  set_num_threads(1);
  const auto g1 = ops::embedding_backward(dy, ids, V);
  set_num_threads(2);
  const auto g2 = ops::embedding_backward(dy, ids, V);
  set_num_threads(threads);
  CHECK(testing::max_abs_diff(g1, g2) == 0.0);
  auto ref = Tensor<double, Cpu>::zeros({V, H});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) ref.data()[ids.data()[n] * H + h] += dy.data()[n * H + h];
  CHECK(rel_error(g1, ref) <= 1e-6);
}

TEST_CASE("embedding rejects bad ids and shapes", "[ops][embedding]") {
  const auto w = Rng(5).normal<float>({8, 4});
  const std::string msg = message_of([&] { ops::embedding(w, Tensor<int64_t, Cpu>::from({1, 8, 2}, {3})); });
  CHECK(msg.find("id 8 at index 1") != std::string::npos);
  CHECK(msg.find("[0, 8)") != std::string::npos);
  CHECK_THROWS_AS(ops::embedding(w, Tensor<int64_t, Cpu>::from({-1}, {1})), ctmllm::Error);
  CHECK_THROWS_AS(ops::embedding(Tensor<float, Cpu>::ones({8}), Tensor<int64_t, Cpu>::zeros({2})), ctmllm::Error);
  CHECK_THROWS_AS(ops::embedding(w, Tensor<int64_t, Cpu>::zeros({1, 1, 1, 1, 1, 1, 1, 1})), ctmllm::Error);
  const auto ids = Tensor<int64_t, Cpu>::from({1, 2, 3}, {3});
  CHECK_THROWS_AS(ops::embedding_backward(Tensor<float, Cpu>::ones({3}), ids, 8), ctmllm::Error);
  CHECK_THROWS_AS(ops::embedding_backward(Tensor<float, Cpu>::ones({2, 4}), ids, 8), ctmllm::Error);
  CHECK_THROWS_AS(ops::embedding_backward(Tensor<float, Cpu>::ones({3, 4}), ids, 3), ctmllm::Error);
}

TEST_CASE("a caller-checked scope leaves the CPU's id checks on and nests", "[ops][embedding]") {
  const auto w = Rng(5).normal<float>({8, 4});
  CHECK_FALSE(ops::indices_checked_by_caller());
  {
    const ops::IndicesCheckedByCaller outer;
    {
      const ops::IndicesCheckedByCaller inner;
      CHECK(ops::indices_checked_by_caller());
    }
    CHECK(ops::indices_checked_by_caller());
    CHECK(message_of([&] { ops::embedding(w, Tensor<int64_t, Cpu>::from({8}, {1})); }).find("id 8") != std::string::npos);
  }
  CHECK_FALSE(ops::indices_checked_by_caller());
}

TEST_CASE("embedding works on strided weight and ids", "[ops][embedding]") {
  const auto w = Rng(6).normal<float>({4, 9}).transpose(0, 1);  // [9, 4], strided
  const auto ids = Tensor<int64_t, Cpu>::from({0, 8, 4, 4, 2, 7}, {3, 2}).transpose(0, 1);
  CHECK(rel_error(ops::embedding(w, ids), ops::embedding(w.contiguous(), ids.contiguous())) == 0.0);
  const auto dy = Rng(7).normal<float>({2, 4, 3}).transpose(1, 2);  // [2, 3, 4], strided
  CHECK(rel_error(ops::embedding_backward(dy, ids, 9), ops::embedding_backward(dy.contiguous(), ids.contiguous(), 9)) == 0.0);
}
