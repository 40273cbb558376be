// clip_grad_norm with torch.nn.utils.clip_grad_norm_'s semantics, and scale_grads.
#include <cmath>
#include <limits>

#include "ctmllm/train/clip.hpp"
#include "support/catch.hpp"
#include "train/grad_source.hpp"

using namespace ctmllm;
using testing::backward_with_grad;
using testing::vec;
using DVar = autograd::Variable<double>;

TEST_CASE("clip_grad_norm returns the pre-clip norm and scales by max_norm / (norm + 1e-6)", "[train][clip]") {
  DVar a(vec({0, 0}), true, "a"), b(vec({0}), true, "b"), none(vec({5}), true, "none");
  backward_with_grad(a, vec({3, 0}));
  backward_with_grad(b, vec({4}));
  CHECK(train::grad_norm<double>({a, b, none}) == 5.0);
  CHECK(train::clip_grad_norm<double>({a, b, none}, 1.0) == 5.0);
  const double coef = 1.0 / (5.0 + 1e-6);
  CHECK(a.grad().data()[0] == Approx(3 * coef).epsilon(1e-15));
  CHECK(b.grad().data()[0] == Approx(4 * coef).epsilon(1e-15));
  CHECK(!none.grad().defined());
  // Below max_norm nothing changes.
  CHECK(train::clip_grad_norm<double>({a, b}, 10.0) == Approx(5 * coef).epsilon(1e-15));
  CHECK(a.grad().data()[0] == Approx(3 * coef).epsilon(1e-15));
  train::scale_grads<double>({a, b}, 2.0);
  CHECK(b.grad().data()[0] == Approx(8 * coef).epsilon(1e-15));
  CHECK_THROWS_AS(train::clip_grad_norm<double>({a}, 0.0), Error);
}

TEST_CASE("a non-finite gradient norm is returned and nothing is scaled", "[train][clip]") {
  DVar a(vec({0, 0}), true, "a"), b(vec({0}), true, "b");
  backward_with_grad(a, vec({3, std::numeric_limits<double>::infinity()}));
  backward_with_grad(b, vec({4}));
  CHECK(std::isinf(train::clip_grad_norm<double>({a, b}, 1.0)));
  CHECK(b.grad().data()[0] == 4.0);
  backward_with_grad(b, vec({std::nan("")}));
  CHECK(std::isnan(train::grad_norm<double>({b})));
}
