// Gradients through a frozen bf16 weight: dx = dy·W with float accumulation (and db for a trainable
// bias), against the float path over the same rounded weight, on shapes that cover one tile and
// several row, column and weight-row tiles of the kernel.
#include <tuple>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/llm/weights.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"

using namespace ctmllm;
using testing::rel_error;

TEST_CASE("a bf16 Dense passes dx = dy·W like the float path", "[llm][bf16]") {
  const auto [n, in, out] = GENERATE(std::make_tuple(3, 40, 24), std::make_tuple(300, 600, 300), std::make_tuple(17, 257, 129));
  INFO(n << " x " << in << " -> " << out);
  Rng rng(11);
  const Tensor<bf16> w = rng.normal<float>({out, in}, 0.0, 0.1).to<bf16>();
  autograd::Variable<float> bias(rng.normal<float>({out}), /*requires_grad=*/true);
  llm::Dense<float> b16{{}, w, bias, {}};
  llm::Dense<float> f32{autograd::Variable<float>(w.to<float>()), {}, bias, {}};
  const Tensor<float> x = rng.normal<float>({n, in}), r = rng.normal<float>({n, out});
  auto grads = [&](const llm::Dense<float>& d) {
    const autograd::Variable<float> xv(x.clone(), true);
    bias.zero_grad();
    autograd::sum(autograd::mul(d(xv), autograd::Variable<float>(r))).backward();
    return std::make_pair(xv.grad().clone(), bias.grad().clone());
  };
  const auto [dx16, db16] = grads(b16);
  const auto [dx32, db32] = grads(f32);
  CHECK(rel_error(dx16, dx32) <= 1e-6);
  CHECK(rel_error(db16, db32) <= 1e-6);
}

TEST_CASE("a bf16 Dense records nothing when nothing needs a gradient", "[llm][bf16]") {
  Rng rng(12);
  llm::Dense<float> d{{}, rng.normal<float>({8, 16}).to<bf16>(), {}, {}};
  const auto y = d(autograd::Variable<float>(rng.normal<float>({2, 16})));
  CHECK(y.is_leaf());
  CHECK_FALSE(y.requires_grad());
}
