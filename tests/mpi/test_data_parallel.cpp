// Data-parallel training over MPI (train/data_parallel.hpp, train/mpi_communicator.hpp), run by
// ctest as `mpirun -np 2`: a tiny Llama (tests/fixtures/train/llama_adamw/base) trained for a few
// clipped AdamW steps with each rank on half of the batch matches one process on the whole batch
// (measured: losses 7.6e-8, gradient norms 1.1e-7, final weights 2e-6 relative after 4 steps: AdamW's
// normalised update turns summation-order differences in near-zero gradient elements into lr-sized
// ones; tolerance 1e-5), and the ranks' weights are
// identical bit for bit after every step. The halves keep different numbers of labels, so plain
// averaging would not match: the ranks' gradients are weighted by their label counts.
#define CATCH_CONFIG_RUNNER
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/train/mpi_communicator.hpp"
#include "ctmllm/train/trainer.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "train/grad_source.hpp"

using namespace ctmllm;
using Var = autograd::Variable<float>;
using Model = llm::Decoder<float>;

namespace {
struct TokenBatch {
  Tensor<int64_t> ids, labels;  // [B, S]
};

constexpr int64_t kRows = 4, kSeq = 12, kSteps = 4;

// The whole batch (the same at every step, so the loss falls): random tokens; after the shift rows
// 0-1 keep 17 labels and rows 2-3 keep 22 (unequal halves).
TokenBatch whole_batch(int64_t) {
  TokenBatch b{Tensor<int64_t>::zeros({kRows, kSeq}), Tensor<int64_t>::zeros({kRows, kSeq})};
  const Tensor<float> u = Rng(100).uniform<float>(Shape{kRows, kSeq});
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t s = 0; s < kSeq; ++s) {
      b.ids.at(r, s) = std::min<int64_t>(383, int64_t(u.at(r, s) * 384));
      b.labels.at(r, s) = (r < 2 ? s < 4 - r * 1 : s == 0 && r == 2) ? -100 : b.ids.at(r, s);
    }
  return b;
}

TokenBatch rows(const TokenBatch& b, int64_t from, int64_t n) {
  return {b.ids.slice(0, from, from + n).contiguous(), b.labels.slice(0, from, from + n).contiguous()};
}

train::TrainerOptions options() {
  train::TrainerOptions o;
  o.max_steps = kSteps;
  o.clip_norm = 1.0;
  o.eval_every = 1;
  o.prefetch = 0;
  o.progress = false;
  return o;
}

train::AdamW<float> adamw(const Model& m) {
  return train::AdamW<float>(m.parameters().all(), {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
}

train::LossResult<float> lm_loss(const Model& m, const TokenBatch& b) {
  return {llm::causal_lm_loss(m.forward({.input_ids = b.ids}).logits, b.labels), llm::causal_lm_target_count(b.labels)};
}
}  // namespace

TEST_CASE("2 ranks x half a batch train like 1 process x the whole batch", "[mpi][train]") {
  train::MpiCommunicator comm;
  REQUIRE(comm.size() == 2);
  const int rank = comm.rank();
  const std::string base = testing::fixture_path("train/llama_adamw/base");

  // One process, whole batch (every rank computes it, as the reference).
  Model single = Model::from_pretrained(base);
  train::Trainer<TokenBatch> one(adamw(single), options(), whole_batch, [&](const TokenBatch& b) { return lm_loss(single, b); });
  one.run();

  // Data parallel: rank r trains on rows [2r, 2r + 2). Rank 1 starts from other weights, which the
  // broadcast replaces with rank 0's.
  Model model = Model::from_pretrained(base);
  const std::vector<Var> params = model.parameters().all();
  if (rank == 1)
    for (const Var& p : params) p.value().data()[0] += 1.0f;
  train::DataParallel<float> dp(comm);
  dp.broadcast_parameters(params);
  const Model fresh = Model::from_pretrained(base);
  for (size_t i = 0; i < params.size(); ++i) REQUIRE(testing::rel_error(params[i].value(), fresh.parameters().all()[i].value()) == 0);

  int64_t differing = 0;  // parameters whose bits differ from rank 0's, summed over the steps
  train::Trainer<TokenBatch> trainer(adamw(model), options(),
                                     [&](int64_t i) { return rows(whole_batch(i), 2 * rank, 2); },
                                     [&](const TokenBatch& b) { return lm_loss(model, b); });
  trainer.set_token_count([](const TokenBatch& b) { return llm::causal_lm_target_count(b.labels); });
  trainer.set_gradient_reduction(dp.reduction());
  trainer.set_eval([&](int64_t) {  // after every step: compare with rank 0's bits
    for (const Var& p : params) {
      Tensor<float> mine = p.value().clone(), theirs = p.value().clone();
      comm.broadcast(std::span<float>(theirs.data(), size_t(theirs.numel())), 0);
      differing += std::memcmp(mine.data(), theirs.data(), size_t(mine.numel()) * sizeof(float)) != 0;
    }
    return 0.0;
  });
  trainer.run();
  CHECK(differing == 0);

  double worst_loss = 0, worst_norm = 0, worst_weight = 0;
  for (int64_t s = 0; s < kSteps; ++s) {
    const auto &a = trainer.state().history[size_t(s)], &b = one.state().history[size_t(s)];
    worst_loss = std::max(worst_loss, std::abs(a.loss / b.loss - 1));
    worst_norm = std::max(worst_norm, std::abs(a.grad_norm / b.grad_norm - 1));
    CHECK(a.tokens == b.tokens);
  }
  for (size_t i = 0; i < params.size(); ++i)
    worst_weight = std::max(worst_weight, testing::rel_error(params[i].value(), single.parameters().all()[i].value()));
  std::printf("rank %d: %lld steps, 2 ranks vs 1 process: loss rel %.3g, grad norm rel %.3g, final weights rel %.3g\n",
              rank, (long long)kSteps, worst_loss, worst_norm, worst_weight);
  CHECK(worst_loss <= 1e-5);
  CHECK(worst_norm <= 1e-5);
  CHECK(worst_weight <= 1e-5);
  CHECK(one.state().history.back().loss < one.state().history.front().loss);  // it does train
}

TEST_CASE("a gradient that only one rank has fails on every rank", "[mpi][train][errors]") {
  train::MpiCommunicator comm;
  train::DataParallel<float> dp(comm);
  Var a(Tensor<float>::zeros({3}), true, "a");
  if (comm.rank() == 0) {
    Tensor<float> g = Tensor<float>::full({3}, 1.0f);
    testing::backward_with_grad(a, g);
  }
  CHECK_THROWS_WITH(dp.reduce({a}, 1.0, 0.5, 1), Catch::Contains("'a' has a gradient on 1 of 2 ranks"));
}

int main(int argc, char** argv) {
  train::MpiSession mpi(argc, argv);
  return Catch::Session().run(argc, argv);
}
