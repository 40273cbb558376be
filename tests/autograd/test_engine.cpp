// The backward engine: accumulation, shared inputs, grad mode, graph lifetime, parameters, and
// activation recomputation.
#include "ctmllm/autograd/activation.hpp"
#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/checkpoint.hpp"
#include "ctmllm/autograd/parameters.hpp"
#include "ctmllm/core/rng.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"

using namespace ctmllm;
using V = autograd::Variable<double>;
using T = Tensor<double>;

namespace {
// a + b for same-shaped inputs, written directly against record() so the engine is tested alone.
V add(const V& a, const V& b) {
  T out = T::empty(a.shape());
  for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] = a.value().data()[i] + b.value().data()[i];
  return autograd::record(out, "add", {a, b}, [](const T& g) { return std::vector<T>{g, g}; });
}
// Σ x·r as a one-element loss.
V dot(const V& x, const T& r) {
  double s = 0;
  for (int64_t i = 0; i < x.value().numel(); ++i) s += x.value().data()[i] * r.data()[i];
  return autograd::record(T::from({s}, {1}), "dot", {x}, [r](const T& g) {
    T d = T::empty(r.shape());
    for (int64_t i = 0; i < d.numel(); ++i) d.data()[i] = r.data()[i] * g.item();
    return std::vector<T>{d};
  });
}
double derivative_sum(ops::Activation kind, const T& x, const T& r) {
  const T d = ops::activation_backward(r, x, kind);
  return d.data()[0];
}
}  // namespace

TEST_CASE("leaf gradients accumulate across backward passes", "[autograd]") {
  V x(Rng(1).normal<double>({4}), true, "x");
  const T r = Rng(2).normal<double>({4});
  dot(autograd::gelu(x), r).backward();
  const T once = x.grad().clone();
  dot(autograd::gelu(x), r).backward();
  for (int i = 0; i < 4; ++i) CHECK(x.grad().at(i) == Catch::Approx(2 * once.at(i)));
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  CHECK(testing::rel_error(once, ops::activation_backward(r, x.value(), ops::Activation::gelu_erf)) < 1e-15);
}

TEST_CASE("an input used twice receives the sum of both paths", "[autograd]") {
  V x(Rng(3).normal<double>({1}), true);
  const T r = T::ones({1});
  dot(add(autograd::gelu(x), autograd::silu(x)), r).backward();
  const double expect = derivative_sum(ops::Activation::gelu_erf, x.value(), r) +
                        derivative_sum(ops::Activation::silu, x.value(), r);
  CHECK(x.grad().at(0) == Catch::Approx(expect).epsilon(1e-14));
}

TEST_CASE("nothing is recorded without a trainable input or in no-grad mode", "[autograd]") {
  V frozen(T::ones({3}), false);
  V y = autograd::gelu(frozen);
  CHECK(y.is_leaf());
  CHECK_FALSE(y.requires_grad());
  CHECK_THROWS_AS(y.backward(T::ones({3})), Error);
  V x(T::ones({3}), true);
  {
    autograd::NoGradGuard no_grad;
    CHECK(autograd::gelu(x).is_leaf());
  }
  CHECK_FALSE(autograd::gelu(x).is_leaf());
}

TEST_CASE("a graph is consumed by its backward pass", "[autograd]") {
  V x(T::ones({2}), true);
  V y = autograd::silu(x);
  V loss = dot(y, T::ones({2}));
  loss.backward();
  CHECK_THROWS_AS(loss.backward(), Error);
  CHECK_THROWS_AS(autograd::silu(x).backward(), Error);  // two elements: needs an explicit gradient
  CHECK_THROWS_AS(autograd::silu(x).backward(T::ones({3})), Error);
}

TEST_CASE("parameters are registered under their Hugging Face names", "[autograd]") {
  autograd::Parameters<float> params;
  params.add("model.embed_tokens.weight", Tensor<float>::zeros({10, 4}));
  params.add("model.norm.weight", Tensor<float>::ones({4}), false);
  CHECK(params.size() == 2);
  CHECK(params.contains("model.norm.weight"));
  CHECK(params.get("model.embed_tokens.weight").name() == "model.embed_tokens.weight");
  CHECK(params.numel() == 44);
  CHECK(params.numel(true) == 40);
  CHECK(params.trainable().size() == 1);
  CHECK_THROWS_AS(params.add("model.norm.weight", Tensor<float>::ones({4})), Error);
  CHECK_THROWS_AS(params.get("lm_head.weight"), Error);
  auto p = params.get("model.norm.weight");
  CHECK_THROWS_AS(p.set_value(Tensor<float>::ones({5})), Error);
}

TEST_CASE("checkpointed blocks give the same gradients and recompute in backward", "[autograd]") {
  V w(Rng(4).normal<double>({6}), true, "w");
  int calls = 0;
  auto block = [&](const std::vector<V>& in) {
    ++calls;
    return autograd::gelu(add(autograd::silu(in[0]), w));
  };
  const T xv = Rng(5).normal<double>({6}), r = Rng(6).normal<double>({6});

  V x1(xv.clone(), true);
  dot(block({x1}), r).backward();
  const T gx = x1.grad().clone(), gw = w.grad().clone();
  w.zero_grad();

  calls = 0;
  V x2(xv.clone(), true);
  V y = autograd::checkpoint<double, Cpu>(block, {x2});
  CHECK(calls == 1);
  dot(y, r).backward();
  CHECK(calls == 2);  // recomputed once, in backward
  CHECK(testing::rel_error(x2.grad(), gx) < 1e-15);
  CHECK(testing::rel_error(w.grad(), gw) < 1e-15);

  // Parameters inside the block still get gradients when the input needs none.
  w.zero_grad();
  V x3(xv.clone(), false);
  dot(autograd::checkpoint<double, Cpu>(block, {x3}), r).backward();
  CHECK(testing::rel_error(w.grad(), gw) < 1e-15);
}
