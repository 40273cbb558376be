// cross_entropy against the PyTorch fixture and a float64 loop, its backward by finite differences,
// ignore_index handling (including no kept target), bad targets and strided logits.
#include <algorithm>
#include <cmath>
#include <string>

#include "ctmllm/autograd/loss.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::message_of;
using testing::rel_error;

namespace {

// Float64 mean of -log softmax(x)[t] over rows whose target is not -100.
double cross_entropy_ref(const Tensor<float, Cpu>& logits, const Tensor<int64_t, Cpu>& targets) {
  const auto x = logits.contiguous();
  const auto t = targets.contiguous();
  const int64_t C = x.shape().back();
  double total = 0;
  int64_t kept = 0;
  for (int64_t r = 0; r < t.numel(); ++r) {
    if (t.data()[r] == -100) continue;
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < C; ++c) m = std::max(m, double(x.data()[r * C + c]));
    for (int64_t c = 0; c < C; ++c) s += std::exp(x.data()[r * C + c] - m);
    total += m + std::log(s) - x.data()[r * C + t.data()[r]];
    ++kept;
  }
  return total / double(kept);
}

}  // namespace

TEST_CASE("cross_entropy matches torch.nn.functional.cross_entropy", "[ops][loss]") {
  testing::Fixture f("ops/cross_entropy.safetensors");
  const auto logits = f.get("logits");
  const auto targets = f.get<int64_t>("target");
  const int64_t ignore = std::stoll(f.meta("ignore_index"));
  const auto r = ops::cross_entropy(logits, targets, ignore);
  CHECK(rel_error(r.loss, f.get("loss")) <= 1e-5);
  CHECK(std::abs(r.loss.item() - cross_entropy_ref(logits, targets)) <= 1e-6);
  const auto dlogits = ops::cross_entropy_backward(Tensor<float, Cpu>::ones({1}), logits, targets, r.lse, ignore);
  CHECK(rel_error(dlogits, f.get("dlogits")) <= 1e-5);

  autograd::Variable<float> x(logits, true);
  const auto loss = autograd::cross_entropy(x, targets, ignore);
  CHECK(loss.shape() == Shape{1});
  loss.backward();
  CHECK(rel_error(x.grad(), f.get("dlogits")) <= 1e-5);
  CHECK(autograd::cross_entropy(autograd::Variable<float>(logits), targets, ignore).is_leaf());  // nothing recorded

  // The upstream gradient scales dlogits.
  const auto d3 = ops::cross_entropy_backward(Tensor<float, Cpu>::full({1}, 3.f), logits, targets, r.lse, ignore);
  auto expected = f.get("dlogits");
  for (int64_t i = 0; i < expected.numel(); ++i) expected.data()[i] *= 3.f;
  CHECK(rel_error(d3, expected) <= 1e-5);
}

TEST_CASE("cross_entropy backward passes finite differences", "[ops][loss][gradcheck]") {
  autograd::Variable<double> x(Rng(12).normal<double>({3, 4, 9}, 0.0, 2.0), true);
  const auto t = Tensor<int64_t, Cpu>::from({0, 8, -100, 3, 5, 5, 1, -100, 2, 7, 4, 6}, {3, 4});
  CHECK(testing::gradcheck([&t](const auto& in) { return autograd::cross_entropy(in[0], t); }, {x}) <= 1e-7);
  const auto t7 = Tensor<int64_t, Cpu>::from({0, 8, 7, 3, 5, 5, 1, 7, 2, 7, 4, 6}, {3, 4});
  CHECK(testing::gradcheck([&t7](const auto& in) { return autograd::cross_entropy(in[0], t7, 7); }, {x}) <= 1e-7);
}

TEST_CASE("cross_entropy with no kept target is 0 with a zero gradient", "[ops][loss]") {
  const auto logits = Rng(1).normal<float>({2, 5});
  const auto targets = Tensor<int64_t, Cpu>::full({2}, -100);
  autograd::Variable<float> x(logits, true);
  const auto loss = autograd::cross_entropy(x, targets);
  CHECK(loss.value().item() == 0.f);
  loss.backward();
  CHECK(testing::max_abs_diff(x.grad(), Tensor<float, Cpu>::zeros({2, 5})) == 0.0);
}

TEST_CASE("cross_entropy is stable for large logits and wide vocabularies", "[ops][loss]") {
  Rng rng(3);
  auto logits = rng.normal<float>({4, 50000}, 0.0, 3.0);
  logits.at(1, 7) = 1e4f;
  const auto targets = Tensor<int64_t, Cpu>::from({17, 7, 49999, 0}, {4});
  const auto r = ops::cross_entropy(logits, targets);
  const double ref = cross_entropy_ref(logits, targets);
  REQUIRE(std::isfinite(r.loss.item()));
  CHECK(std::abs(r.loss.item() - ref) <= 1e-5 * ref);
}

TEST_CASE("cross_entropy rejects bad targets and shapes", "[ops][loss]") {
  const auto logits = Rng(2).normal<float>({2, 3, 5});
  const auto bad = Tensor<int64_t, Cpu>::from({0, 1, 2, 3, 5, -100}, {2, 3});
  const std::string msg = message_of([&] { ops::cross_entropy(logits, bad); });
  CHECK(msg.find("target 5 at index 4") != std::string::npos);
  CHECK(msg.find("[0, 5)") != std::string::npos);
  const auto negative = Tensor<int64_t, Cpu>::from({0, 1, -1, 3, 4, -100}, {2, 3});
  CHECK_THROWS_AS(ops::cross_entropy(logits, negative), ctmllm::Error);
  // With another ignore_index, -100 is an ordinary (out-of-range) target.
  CHECK(message_of([&] { ops::cross_entropy(logits, negative, -1); }).find("target -100 at index 5") != std::string::npos);
  CHECK_THROWS_AS(ops::cross_entropy(logits, Tensor<int64_t, Cpu>::zeros({3, 2})), ctmllm::Error);
  CHECK_THROWS_AS(ops::cross_entropy(logits, Tensor<int64_t, Cpu>::zeros({6})), ctmllm::Error);
  CHECK_THROWS_AS(ops::cross_entropy(Tensor<float, Cpu>::ones({2, 0}), Tensor<int64_t, Cpu>::zeros({2})), ctmllm::Error);
  const auto good = Tensor<int64_t, Cpu>::from({0, 1, 2, 3, 4, -100}, {2, 3});
  const auto r = ops::cross_entropy(logits, good);
  CHECK_THROWS_AS(ops::cross_entropy_backward(Tensor<float, Cpu>::ones({2}), logits, good, r.lse), ctmllm::Error);
  CHECK_THROWS_AS(ops::cross_entropy_backward(r.loss, logits, good, r.lse.reshape({3, 2})), ctmllm::Error);
  CHECK_THROWS_AS(ops::cross_entropy_backward(r.loss, logits, bad, r.lse), ctmllm::Error);
}

TEST_CASE("cross_entropy works on strided logits and targets", "[ops][loss]") {
  Rng rng(5);
  const auto logits = rng.normal<float>({7, 3, 4}).permute({1, 2, 0});  // [3, 4, 7], strided
  const auto targets = Tensor<int64_t, Cpu>::from({0, 6, 2, -100, 1, 1, 5, 3, 4, 0, -100, 2}, {4, 3}).transpose(0, 1);
  const auto a = ops::cross_entropy(logits, targets), b = ops::cross_entropy(logits.contiguous(), targets.contiguous());
  CHECK(rel_error(a.loss, b.loss) == 0.0);
  const auto one = Tensor<float, Cpu>::ones({1});
  CHECK(rel_error(ops::cross_entropy_backward(one, logits, targets, a.lse),
                  ops::cross_entropy_backward(one, logits.contiguous(), targets.contiguous(), b.lse)) == 0.0);
  CHECK(std::abs(a.loss.item() - cross_entropy_ref(logits, targets)) <= 1e-6);
}
