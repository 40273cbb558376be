// dropout: the mask against the counter-based rule, kept fraction, scaling, thread-count
// independence, backward (same mask) by finite differences, the autograd wrapper's use of the Rng,
// bad p and strided input.
#include <cmath>

#include "ctmllm/autograd/dropout.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

TEST_CASE("dropout keeps element i iff uniform_at(offset + i) >= p, scaled by 1/(1-p)", "[ops][dropout]") {
  const auto x = Rng(1).normal<float>({37, 29});
  const double p = 0.3;
  const uint64_t seed = 42, offset = 1000;
  const auto y = ops::dropout(x, p, seed, offset);
  const Rng rng(seed);
  auto expected = Tensor<float, Cpu>::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i)
    expected.data()[i] = rng.uniform_at(offset + uint64_t(i)) >= p ? float(x.data()[i] / (1.0 - p)) : 0.f;
  CHECK(testing::max_abs_diff(y, expected) <= 1e-6);
  // The backward applies the same mask and scale to dy.
  const auto dy = Rng(2).normal<float>({37, 29});
  for (int64_t i = 0; i < x.numel(); ++i)
    expected.data()[i] = rng.uniform_at(offset + uint64_t(i)) >= p ? float(dy.data()[i] / (1.0 - p)) : 0.f;
  CHECK(testing::max_abs_diff(ops::dropout_backward(dy, p, seed, offset), expected) <= 1e-6);
}

TEST_CASE("dropout keeps about 1 - p of a large tensor, the same with 1 or 2 threads", "[ops][dropout]") {
  const auto x = Tensor<float, Cpu>::ones({1000, 1000});
  for (double p : {0.1, 0.5, 0.9}) {
    const int threads = num_threads();
    set_num_threads(1);
    const auto y1 = ops::dropout(x, p, 7, 0);
    set_num_threads(2);
    const auto y2 = ops::dropout(x, p, 7, 0);
    set_num_threads(threads);
    CHECK(testing::max_abs_diff(y1, y2) == 0.0);
    int64_t kept = 0, other = 0;  // values that are neither 0 nor the scale
    for (int64_t i = 0; i < y1.numel(); ++i) {
      const float v = y1.data()[i];
      kept += v != 0.f;
      other += v != 0.f && v != float(1.0 / (1.0 - p));
    }
    CHECK(other == 0);
    // 1e6 Bernoulli draws: the standard deviation of the fraction is at most 5e-4.
    CHECK(std::abs(double(kept) / 1e6 - (1 - p)) < 3e-3);
  }
}

TEST_CASE("dropout with p = 0 is the identity, p outside 0 <= p < 1 is an error", "[ops][dropout]") {
  const auto x = Rng(3).normal<float>({4, 5});
  CHECK(testing::max_abs_diff(ops::dropout(x, 0.0, 1, 0), x) == 0.0);
  CHECK(testing::max_abs_diff(ops::dropout_backward(x, 0.0, 1, 0), x) == 0.0);
  CHECK_THROWS_AS(ops::dropout(x, 1.0, 1, 0), ctmllm::Error);
  CHECK_THROWS_AS(ops::dropout(x, -0.1, 1, 0), ctmllm::Error);
  CHECK_THROWS_AS(ops::dropout(x, std::nan(""), 1, 0), ctmllm::Error);
  CHECK_THROWS_AS(ops::dropout_backward(x, 1.5, 1, 0), ctmllm::Error);
  Rng rng(1);
  autograd::Variable<float> xv(x, true);
  CHECK_THROWS_AS(autograd::dropout(xv, 1.0, rng, true), ctmllm::Error);
}

TEST_CASE("dropout backward passes finite differences", "[ops][dropout][gradcheck]") {
  autograd::Variable<double> x(Rng(4).normal<double>({6, 7}), true);
  const double err = testing::gradcheck(
      [](const auto& in) {
        Rng rng(5, 100);  // a fresh stream per call: every evaluation draws the same mask
        return autograd::dropout(in[0], 0.4, rng, true);
      },
      {x});
  CHECK(err <= 1e-7);
}

TEST_CASE("autograd dropout draws fresh masks per call and reproduces a run", "[ops][dropout][autograd]") {
  const auto x = Tensor<float, Cpu>::ones({8, 16});
  autograd::Variable<float> xv(x, true);
  Rng a(9), b(9);
  const auto a1 = autograd::dropout(xv, 0.5, a, true), a2 = autograd::dropout(xv, 0.5, a, true);
  CHECK(a.offset() == 2 * 128);
  CHECK(testing::max_abs_diff(a1.value(), a2.value()) > 0.0);
  const auto b1 = autograd::dropout(xv, 0.5, b, true);
  CHECK(testing::max_abs_diff(a1.value(), b1.value()) == 0.0);
  CHECK(testing::max_abs_diff(a1.value(), ops::dropout(x, 0.5, 9, 0)) == 0.0);
  CHECK(testing::max_abs_diff(a2.value(), ops::dropout(x, 0.5, 9, 128)) == 0.0);

  // The gradient uses the forward's mask.
  a1.backward(Tensor<float, Cpu>::ones({8, 16}));
  CHECK(testing::max_abs_diff(xv.grad(), a1.value()) == 0.0);

  // Evaluation mode returns x and consumes no counters.
  const auto e = autograd::dropout(xv, 0.5, a, false);
  CHECK(e.value().shares_storage_with(x));
  CHECK(a.offset() == 2 * 128);
  autograd::Variable<float> frozen(x);
  CHECK(autograd::dropout(frozen, 0.5, a, true).is_leaf());
}

TEST_CASE("dropout masks by logical row-major index on strided input", "[ops][dropout]") {
  const auto x = Rng(6).normal<float>({9, 11}).transpose(0, 1);
  CHECK(rel_error(ops::dropout(x, 0.25, 3, 17), ops::dropout(x.contiguous(), 0.25, 3, 17)) == 0.0);
  CHECK(rel_error(ops::dropout_backward(x, 0.25, 3, 17), ops::dropout_backward(x.contiguous(), 0.25, 3, 17)) == 0.0);
}
