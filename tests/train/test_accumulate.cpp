// Gradient accumulation: two micro-batches of a tiny Llama, each weighted by its share of the kept
// labels, give the full batch's gradient; equal weights do not (their label counts differ).
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/train/accumulate.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;

TEST_CASE("token-weighted micro-batches accumulate the full batch's gradient", "[train][accumulate]") {
  auto model = llm::Decoder<float>::from_pretrained(testing::fixture_path("train/llama_adamw/base"));
  const testing::Fixture ref("train/llama_adamw/reference.safetensors");
  const auto ids = ref.get<int64_t>("input_ids"), labels = ref.get<int64_t>("labels");  // row 0: 6 labels -100
  auto loss_of = [&](const Tensor<int64_t>& i, const Tensor<int64_t>& l) {
    return llm::causal_lm_loss(model.forward({.input_ids = i}).logits, l);
  };
  model.parameters().zero_grad();
  loss_of(ids, labels).backward();
  std::vector<Tensor<float>> full;
  for (const auto& p : model.parameters().all()) full.push_back(p.grad().clone());

  std::vector<Tensor<int64_t>> mi, ml;
  std::vector<int64_t> counts;
  for (int64_t r = 0; r < 2; ++r) {
    mi.push_back(ids.slice(0, r, r + 1).contiguous());
    ml.push_back(labels.slice(0, r, r + 1).contiguous());
    counts.push_back(llm::causal_lm_target_count(ml.back()));
  }
  CHECK(counts == std::vector<int64_t>{9, 14});
  CHECK(llm::causal_lm_target_count(labels) == 23);
  auto accumulated_error = [&](const std::vector<double>& w) {
    model.parameters().zero_grad();
    for (size_t k = 0; k < 2; ++k) loss_of(mi[k], ml[k]).backward(Tensor<float>::full({1}, float(w[k])));
    double worst = 0;
    for (size_t i = 0; i < full.size(); ++i)
      worst = std::max(worst, testing::rel_error(model.parameters().all()[i].grad(), full[i]));
    return worst;
  };
  const double weighted = accumulated_error(train::token_weights(counts));
  const double uniform = accumulated_error(train::uniform_weights(2));
  INFO("token-weighted rel err " << weighted << ", uniform " << uniform);
  CHECK(weighted <= 1e-5);
  CHECK(uniform > 1e-2);
  CHECK_THROWS_AS(train::token_weights({0, 0}), Error);
}
