#pragma once
// Data-parallel training: every rank (process, or GPU) holds the whole model, trains on its own share
// of the batch, and the ranks combine their gradients after backward and before clipping, so every
// rank takes the same optimizer step and the weights stay identical bit for bit.
//
// The causal-LM loss is a mean over kept labels, so the whole batch's gradient is
// Σ_r (n_r / N) · ∇loss_r where rank r keeps n_r labels (the accumulation rule, train/accumulate.hpp,
// across processes): each rank's gradient is weighted by its label count, and 2 ranks × batch b equal
// 1 process × batch 2b up to float summation order. Ranks with equal weights average.
//
//   train::MpiSession mpi(argc, argv);                 // train/mpi_communicator.hpp
//   train::MpiCommunicator comm;
//   train::DataParallel<float> dp(comm);
//   dp.broadcast_parameters(params);                   // every rank starts from rank 0's weights
//   trainer.set_gradient_reduction(dp.reduction());    // after backward, before clipping
//   // the batch source of rank r builds its own share, e.g. plan.batch(i * size + r);
//   // only rank 0 sets output_dir and progress (the ranks log and save the same state).
//
// Communicators: SingleProcess here (size 1), MpiCommunicator (CPU, train/mpi_communicator.hpp,
// needs ctmllm::mpi) and NcclCommunicator (GPU, train/nccl_communicator.hpp, needs ctmllm::nccl).
// Every collective must be called by every rank in the same order; errors that only one rank sees
// are turned into errors on every rank before a collective could hang (reduce() checks gradients
// collectively).
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/core/error.hpp"

namespace ctmllm::train {

// The collectives data parallelism needs, over host (CPU) or device (GPU) buffers.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // data ← Σ_r weight_r · data_r, the same on every rank.
  virtual void all_reduce_weighted_sum(std::span<float> data, double weight) = 0;
  virtual void all_reduce_weighted_sum(std::span<double> data, double weight) = 0;
  // data ← rank root's data.
  virtual void broadcast(std::span<float> data, int root) = 0;
  virtual void broadcast(std::span<double> data, int root) = 0;
  // Host scalars (counts, losses, flags) for bookkeeping: data ← Σ_r data_r.
  virtual void all_reduce_sum_host(std::span<double> data) = 0;

  void all_reduce_sum(std::span<float> data) { all_reduce_weighted_sum(data, 1.0); }
  void all_reduce_average(std::span<float> data) { all_reduce_weighted_sum(data, 1.0 / size()); }
};

// One process: every collective is the identity (what a data-parallel program runs without MPI).
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_weighted_sum(std::span<float> data, double weight) override { scale(data, weight); }
  void all_reduce_weighted_sum(std::span<double> data, double weight) override { scale(data, weight); }
  void broadcast(std::span<float>, int root) override { check_root(root); }
  void broadcast(std::span<double>, int root) override { check_root(root); }
  void all_reduce_sum_host(std::span<double>) override {}

 private:
  template <class T>
  static void scale(std::span<T> data, double weight) {
    if (weight != 1.0)
      for (T& x : data) x = T(double(x) * weight);
  }
  static void check_root(int root) { CTMLLM_CHECK(root == 0, "SingleProcess::broadcast: root ", root, " is not rank 0"); }
};

// What the ranks agree on after a step's backward.
struct StepReduction {
  double loss = 0;      // Σ_r w_r loss_r / Σ_r w_r: the whole batch's loss
  int64_t tokens = 0;   // Σ_r tokens_r
  double weight = 0;    // Σ_r w_r (the batch's kept labels when the weights are label counts)
};

template <class T, class D = Cpu>
class DataParallel {
 public:
  using Var = autograd::Variable<T, D>;
  using ReduceFn = std::function<StepReduction(const std::vector<Var>&, double, double, int64_t)>;

  explicit DataParallel(Communicator& comm) : comm_(&comm) {}

  int rank() const { return comm_->rank(); }
  int size() const { return comm_->size(); }
  Communicator& communicator() const { return *comm_; }

  // Every parameter's value ← rank 0's (call once before training, after loading or initializing).
  void broadcast_parameters(const std::vector<Var>& params) const {
    for (const Var& p : params) {
      const Tensor<T, D>& v = p.value();
      CTMLLM_CHECK(v.is_contiguous(), "DataParallel::broadcast_parameters: '", p.name(), "' is not contiguous: ", v.describe());
      comm_->broadcast(std::span<T>(v.data(), size_t(v.numel())), 0);
    }
  }

  // After this rank's backward: gradients ← Σ_r (w_r / Σ w) · grad_r on every rank, and the loss and
  // token count of the whole batch. weight is this rank's share: its kept-label count for a
  // token-mean loss (llm::causal_lm_target_count), or 1 when every rank's loss weighs the same.
  StepReduction reduce(const std::vector<Var>& params, double weight, double loss, int64_t tokens) const {
    CTMLLM_CHECK(weight >= 0 && std::isfinite(weight), "DataParallel::reduce: rank ", rank(), ": weight must be finite and >= 0, got ", weight);
    // One host all-reduce agrees on the totals and on which gradients exist, so a rank that lacks
    // a gradient makes every rank fail here instead of leaving the others waiting in a collective.
    std::vector<double> stats = {weight, weight * loss, double(tokens)};
    for (const Var& p : params) stats.push_back(p.grad().defined() ? 1.0 : 0.0);
    comm_->all_reduce_sum_host(stats);
    StepReduction r{stats[0] > 0 ? stats[1] / stats[0] : loss, int64_t(stats[2]), stats[0]};
    CTMLLM_CHECK(r.weight > 0, "DataParallel::reduce: the ranks' weights sum to 0 (no rank kept a label)");
    for (size_t i = 0; i < params.size(); ++i) {
      const double have = stats[3 + i];
      CTMLLM_CHECK(have == 0 || have == double(size()), "DataParallel::reduce: '", params[i].name(), "' has a gradient on ",
                   have, " of ", size(), " ranks; every rank must use every trainable parameter");
      if (have == 0) continue;
      const Tensor<T, D>& g = params[i].grad();
      CTMLLM_CHECK(g.is_contiguous(), "DataParallel::reduce: the gradient of '", params[i].name(), "' is not contiguous");
      comm_->all_reduce_weighted_sum(std::span<T>(g.data(), size_t(g.numel())), weight / r.weight);
    }
    return r;
  }

  // reduce() as the Trainer's gradient-reduction hook (Trainer::set_gradient_reduction).
  ReduceFn reduction() const {
    return [this](const std::vector<Var>& params, double weight, double loss, int64_t tokens) {
      return reduce(params, weight, loss, tokens);
    };
  }

 private:
  Communicator* comm_;
};

}  // namespace ctmllm::train
