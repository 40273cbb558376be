// The bf16-weight kernels against ops::linear on the same weights converted to float and against
// the plain reference loops: row counts of the register tiles (1-4, 5, 7, 16, 17, 40: groups of 4
// rows and their remainders) and of the packed GEMM (48, 61: from kPackedGemmRows on), output counts
// that are not a multiple of the tile (and below it), lengths with and without a vector tail, with
// and without bias; results independent of the thread count; the input gradient (Eigen blocks and
// packed GEMM), the embedding rows, and a Dense with no input features.
#include <vector>

#include "ctmllm/core/rng.hpp"
#include "ctmllm/llm/bf16_linear.hpp"
#include "ctmllm/llm/weights.hpp"
#include "ctmllm/ops/elementwise.hpp"
#include "ctmllm/ops/embedding.hpp"
#include "ctmllm/ops/matmul.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/files_and_errors.hpp"

using namespace ctmllm;
using testing::max_abs_diff;
using testing::rel_error;

namespace {
Tensor<float> run(const Tensor<float>& x, const Tensor<bf16>& w, const Tensor<float>& b, bool reference = false) {
  if (!reference) return llm::kernels::linear_bf16(x, w, b);
  Tensor<float> y = Tensor<float>::empty({x.size(0), w.size(0)});
  llm::kernels::linear_bf16_reference(x.data(), x.size(0), x.size(1), llm::kernels::bf16_bits(w), w.size(0),
                                      b.defined() ? b.data() : nullptr, y.data());
  return y;
}
}  // namespace

TEST_CASE("linear over bf16 weights equals the float linear on the converted weights", "[llm][bf16]") {
  Rng rng(11);
  for (const int64_t in : {67, 96, 301}) {
    for (const int64_t out : {2, 3, 301}) {  // 301: not a multiple of the tile (4 or 3 rows); 2, 3: at or below it
      const Tensor<bf16> w = rng.normal<float>({out, in}).to<bf16>();
      const Tensor<float> wf = w.to<float>(), bias = rng.normal<float>({out});
      for (const int64_t n : {1, 2, 3, 4, 5, 7, 16, 17, 40, 48, 61}) {
        const Tensor<float> x = rng.normal<float>({n, in});
        for (const bool with_bias : {false, true}) {
          INFO("in " << in << ", out " << out << ", n " << n << ", bias " << with_bias);
          const Tensor<float> b = with_bias ? bias : Tensor<float>();
          const Tensor<float> y = run(x, w, b);
          CHECK(rel_error(y, ops::linear(x, wf, b)) <= 1e-6);
          CHECK(rel_error(y, run(x, w, b, true)) <= 1e-6);
        }
      }
    }
  }
}

TEST_CASE("bf16 linear results do not depend on the thread count", "[llm][bf16]") {
  Rng rng(12);
  const Tensor<bf16> w = rng.normal<float>({1000, 200}).to<bf16>();
  const int saved = num_threads();
  for (const int64_t n : {3, 33, 70}) {
    const Tensor<float> x = rng.normal<float>({n, 200});
    set_num_threads(1);
    const Tensor<float> one = run(x, w, {});
    set_num_threads(2);
    const Tensor<float> two = run(x, w, {});
    CHECK(max_abs_diff(one, two) == 0.0);
  }
  set_num_threads(saved);
}

TEST_CASE("bf16 embedding rows convert exactly", "[llm][bf16]") {
  Rng rng(13);
  const Tensor<bf16> table = rng.normal<float>({10, 7}).to<bf16>();
  const std::vector<int64_t> ids = {3, 9, 3, 0};
  const Tensor<float> y = llm::kernels::embedding_bf16(table, Tensor<int64_t>::from(ids, {2, 2}));
  REQUIRE(y.shape() == Shape{2, 2, 7});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t h = 0; h < 7; ++h) CHECK(y.at(i / 2, i % 2, h) == float(table.at(ids[size_t(i)], h)));
  // The same message as the float table's (ops::embedding), which the GPU's bf16 path raises too.
  const auto bad = Tensor<int64_t>::from({2, 10}, {2});
  const std::string float_message = testing::message_of([&] { (void)ops::embedding(table.to<float>(), bad); });
  CHECK_THAT(float_message, Catch::Contains("embedding: id 10 at index 1"));
  CHECK_THROWS_WITH(llm::kernels::embedding_bf16(table, bad), float_message);
}

TEST_CASE("the input gradient through bf16 weights equals dy times the converted weights", "[llm][bf16]") {
  Rng rng(14);
  for (const int64_t n : {1, 5, 300}) {  // 300: the packed GEMM where in allows (and more than one Eigen tile)
    for (const int64_t in : {7, 301}) {
      INFO("n " << n << ", in " << in);
      const Tensor<bf16> w = rng.normal<float>({130, in}).to<bf16>();  // 130: more than one block of weight rows
      const Tensor<float> dy = rng.normal<float>({n, 130});
      CHECK(rel_error(llm::kernels::linear_bf16_backward_input(dy, w), ops::matmul(dy, w.to<float>())) <= 1e-6);
    }
  }
}

TEST_CASE("a bf16-stored Dense over zero input features gives its bias", "[llm][bf16]") {
  for (const int64_t out : {3, 40}) {  // 40 outputs: the packed GEMM from kPackedGemmRows rows on
    llm::Dense<float> d;
    d.weight_bf16 = Tensor<bf16>::zeros({out, 0});
    const Tensor<float> bias = Rng(15).normal<float>({out});
    d.bias = autograd::Variable<float>(bias);
    for (const int64_t n : {2, 50}) {
      const auto y = d(autograd::Variable<float>(Tensor<float>::zeros({n, 0}))).value();
      REQUIRE(y.shape() == Shape{n, out});
      CHECK(max_abs_diff(y, ops::add(Tensor<float>::zeros({n, out}), bias)) == 0.0);
    }
  }
}
