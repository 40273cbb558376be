// gelu (erf, tanh) and silu against PyTorch fixtures, and their backward by finite differences.
#include "ctmllm/autograd/activation.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {
void check_fixture(const char* file, ops::Activation kind) {
  testing::Fixture f(file);
  const auto x = f.get("x");
  CHECK(rel_error(ops::activation(x, kind), f.get("y")) <= 1e-5);
  CHECK(rel_error(ops::activation_backward(f.get("dy"), x, kind), f.get("dx")) <= 1e-5);
}
}  // namespace

TEST_CASE("gelu erf matches torch.nn.functional.gelu", "[ops][activation]") {
  check_fixture("ops/gelu_erf.safetensors", ops::Activation::gelu_erf);
}
TEST_CASE("gelu tanh matches approximate='tanh'", "[ops][activation]") {
  check_fixture("ops/gelu_tanh.safetensors", ops::Activation::gelu_tanh);
}
TEST_CASE("silu matches torch.nn.functional.silu", "[ops][activation]") {
  check_fixture("ops/silu.safetensors", ops::Activation::silu);
}

TEST_CASE("activation backward passes finite differences", "[ops][activation][gradcheck]") {
  for (auto kind : {ops::Activation::gelu_erf, ops::Activation::gelu_tanh, ops::Activation::silu}) {
    autograd::Variable<double> x(Rng(3).normal<double>({3, 5}, 0.0, 2.0), true);
    const double err = testing::gradcheck([kind](const auto& in) { return autograd::activation(in[0], kind); }, {x});
    CHECK(err <= 1e-7);
  }
}

TEST_CASE("activation works on strided views", "[ops][activation]") {
  const auto x = Rng(1).normal<float>({4, 6});
  const auto xt = x.transpose(0, 1);
  CHECK(rel_error(ops::gelu(xt), ops::gelu(xt.contiguous())) == 0.0);
}
