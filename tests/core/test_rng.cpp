// Counter-based RNG: reproducible across runs, thread counts and draw splits; sane distributions.
#include <cmath>

#include "ctmllm/core.hpp"
#include "support/catch.hpp"

using namespace ctmllm;

TEST_CASE("same seed gives the same numbers, a different seed different ones", "[core][rng]") {
  const auto a = Rng(42).normal<float>({1000});
  const auto b = Rng(42).normal<float>({1000});
  const auto c = Rng(43).normal<float>({1000});
  CHECK(a.to_vector() == b.to_vector());
  CHECK(a.to_vector() != c.to_vector());
}

TEST_CASE("results do not depend on the thread count", "[core][rng]") {
  const int before = num_threads();
  set_num_threads(1);
  const auto one = Rng(7).uniform<double>({100000});
  set_num_threads(2);
  const auto two = Rng(7).uniform<double>({100000});
  set_num_threads(before);
  CHECK(one.to_vector() == two.to_vector());
}

TEST_CASE("a stream split into draws equals one draw", "[core][rng]") {
  Rng split(5);
  const auto first = split.uniform<float>({10});
  const auto second = split.uniform<float>({10});
  const auto whole = Rng(5).uniform<float>({20});
  for (int i = 0; i < 10; ++i) {
    CHECK(first.at(i) == whole.at(i));
    CHECK(second.at(i) == whole.at(10 + i));
  }
  CHECK(split.offset() == 20);
  Rng resumed(5, 10);  // seed + offset restore a stream exactly
  CHECK(resumed.uniform<float>({10}).to_vector() == second.to_vector());
}

TEST_CASE("uniform and normal have the right moments", "[core][rng]") {
  const auto u = Rng(1).uniform<double>({200000}, -1.0, 3.0);
  const auto n = Rng(2).normal<double>({200000}, 0.5, 2.0);
  double su = 0, lo = 1e9, hi = -1e9, sn = 0, sn2 = 0;
  for (int64_t i = 0; i < u.numel(); ++i) {
    su += u.data()[i];
    lo = std::min(lo, u.data()[i]);
    hi = std::max(hi, u.data()[i]);
    sn += n.data()[i];
    sn2 += n.data()[i] * n.data()[i];
  }
  const double mean_n = sn / n.numel(), var_n = sn2 / n.numel() - mean_n * mean_n;
  CHECK(std::abs(su / u.numel() - 1.0) < 0.01);
  CHECK(lo >= -1.0);
  CHECK(hi < 3.0);
  CHECK(std::abs(mean_n - 0.5) < 0.02);
  CHECK(std::abs(std::sqrt(var_n) - 2.0) < 0.02);
}

TEST_CASE("filling a strided view writes only its elements", "[core][rng]") {
  auto t = Tensor<float>::zeros({4, 4});
  Rng(3).uniform(t.slice(1, 0, 4, 2), 1.0, 2.0);
  for (int i = 0; i < 4; ++i) {
    CHECK(t.at(i, 0) >= 1.f);
    CHECK(t.at(i, 1) == 0.f);
  }
}
