// Shape ops as graph nodes: gradients through chains of views by finite differences, views sharing
// storage in the forward pass, no graph when nothing needs a gradient, and gradients that meet.
#include <functional>
#include <vector>

#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/matmul.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/autograd/shape_ops.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using V = autograd::Variable<double>;
using testing::rel_error;

TEST_CASE("each view op passes finite differences", "[autograd][shape]") {
  Rng rng(61);
  V x(rng.normal<double>({2, 3, 4}), true);
  using F = std::function<V(const std::vector<V>&)>;
  const std::vector<F> ops = {
      [](const auto& in) { return autograd::reshape(in[0], {4, -1}); },
      [](const auto& in) { return autograd::permute(in[0], {2, 0, 1}); },
      [](const auto& in) { return autograd::transpose(in[0], 0, -1); },
      [](const auto& in) { return autograd::slice(in[0], 2, 1, 4, 2); },
      [](const auto& in) { return autograd::slice(in[0], 1, -2, 3); },
      [](const auto& in) { return autograd::select(in[0], 1, -1); },
      [](const auto& in) { return autograd::unsqueeze(in[0], -1); },
      [](const auto& in) { return autograd::squeeze(autograd::unsqueeze(in[0], 1), 1); },
      [](const auto& in) { return autograd::expand(autograd::unsqueeze(in[0], 0), {3, 2, 3, 4}); },
      [](const auto& in) { return autograd::expand(autograd::slice(in[0], 1, 0, 1), {2, 5, 4}); },
      [](const auto& in) { return autograd::contiguous(autograd::transpose(in[0], 1, 2)); },
  };
  for (const auto& f : ops) CHECK(testing::gradcheck(f, {x}) <= 1e-7);
}

TEST_CASE("gradients flow through chains of views", "[autograd][shape]") {
  Rng rng(62);
  V x(rng.normal<double>({4, 6}), true), w(rng.normal<double>({3, 5}), true);
  // view chain: reshape → permute → slice → select → unsqueeze → expand → contiguous → matmul
  auto chain = [](const std::vector<V>& in) {
    auto t = autograd::reshape(in[0], {2, 3, 4});          // [2, 3, 4]
    t = autograd::permute(t, {1, 2, 0});                   // [3, 4, 2]
    t = autograd::slice(t, 1, 1, 4);                       // [3, 3, 2]
    t = autograd::select(t, 2, 1);                         // [3, 3]
    t = autograd::unsqueeze(t, 0);                         // [1, 3, 3]
    t = autograd::expand(t, {2, 3, 3});                    // [2, 3, 3], stride 0
    t = autograd::contiguous(autograd::transpose(t, 1, 2));
    return autograd::matmul(t, in[1]);                     // [2, 3, 5]
  };
  CHECK(testing::gradcheck(chain, {x, w}) <= 1e-7);
  // a chain ending in a reduction and an elementwise op, where one view feeds two consumers
  auto branch = [](const std::vector<V>& in) {
    auto t = autograd::transpose(in[0], 0, 1);                                     // [6, 4]
    auto a = autograd::slice(t, 0, 0, 6, 2), b = autograd::slice(t, 0, 1, 6, 2);  // [3, 4] each
    return autograd::sum(autograd::mul(autograd::add(a, b), autograd::squeeze(autograd::unsqueeze(a, 2), 2)), {1});
  };
  CHECK(testing::gradcheck(branch, {x}) <= 1e-7);
  // split into pieces that are viewed again and concatenated back in a different order
  auto shuffle = [](const std::vector<V>& in) {
    auto p = autograd::split(in[0], {1, 2, 3}, 1);
    return autograd::concat(std::vector<V>{autograd::reshape(p[2], {12}), autograd::reshape(autograd::transpose(p[0], 0, 1), {4}),
                                           autograd::reshape(p[1], {-1})},
                            0);
  };
  CHECK(testing::gradcheck(shuffle, {x}) <= 1e-7);
}

TEST_CASE("view nodes share storage and record nothing without gradients", "[autograd][shape]") {
  V x(Rng(63).normal<double>({2, 3}), true), c(Rng(64).normal<double>({2, 3}), false);
  const auto y = autograd::transpose(x, 0, 1);
  CHECK(y.value().shares_storage_with(x.value()));
  CHECK(!y.is_leaf());
  CHECK(autograd::transpose(c, 0, 1).is_leaf());
  {
    autograd::NoGradGuard no_grad;
    CHECK(autograd::reshape(x, {6}).is_leaf());
  }
  // the gradient of a slice is dense and zero outside the window
  autograd::slice(x, 1, 1, 3).backward(Tensor<double>::ones({2, 2}));
  CHECK(x.grad().to_vector() == std::vector<double>{0, 1, 1, 0, 1, 1});
  // gradients from two views of one tensor add up
  x.zero_grad();
  auto both = autograd::add(autograd::select(x, 0, 0), autograd::select(x, 0, 1));
  both.backward(Tensor<double>::from({1, 2, 3}, {3}));
  CHECK(x.grad().to_vector() == std::vector<double>{1, 2, 3, 1, 2, 3});
}

TEST_CASE("view ops reject bad input", "[autograd][shape]") {
  V x(Tensor<double>::zeros({2, 3}), true);
  CHECK_THROWS_AS(autograd::reshape(x, {4, 2}), ctmllm::Error);
  CHECK_THROWS_AS(autograd::permute(x, {0, 0}), ctmllm::Error);
  CHECK_THROWS_AS(autograd::slice(x, 1, 2, 5), ctmllm::Error);
  CHECK_THROWS_AS(autograd::select(x, 2, 0), ctmllm::Error);
  CHECK_THROWS_AS(autograd::squeeze(x, 0), ctmllm::Error);
  CHECK_THROWS_AS(autograd::expand(x, {3, 3}), ctmllm::Error);
  CHECK_THROWS_AS(autograd::concat(std::vector<V>{x, V(Tensor<double>::zeros({3, 3}))}, 1), ctmllm::Error);
  CHECK_THROWS_AS(autograd::split(x, {2, 2}, 1), ctmllm::Error);
}
