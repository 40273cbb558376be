#pragma once
// train::AdamW: torch.optim.AdamW semantics (decoupled weight decay), with parameter groups.
//
//   w ← w − lr·wd·w
//   m ← β1·m + (1 − β1)·g            v ← β2·v + (1 − β2)·g²
//   w ← w − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
//
// Each group has its own base learning rate and weight decay; a schedule scales every group's base
// rate by one factor (set_lr_factor), as torch's LambdaLR does. Parameters without a gradient in a
// step are skipped (their moments and step count stay), as torch does. The moments are kept in
// float whatever T is (the master precision of mixed-precision training), on the parameters' device;
// the update of each element is computed in float (double for a double model), as torch's float32
// AdamW: a float model follows a float64 reference to ~1e-6. The update is ops::adamw_update over every parameter with a gradient: on the GPU one fused
// kernel per 32 parameters (from .cu files).
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/optim.hpp"

namespace ctmllm::train {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

template <class T, class D = Cpu>
class AdamW {
 public:
  using Var = autograd::Variable<T, D>;

  struct Group {
    std::vector<Var> params;
    double lr;
    double weight_decay;
  };

  explicit AdamW(AdamWOptions options = {}) : options_(options) { check_options(options, "AdamW"); }
  // One group with the options' lr and weight decay.
  AdamW(const std::vector<Var>& params, AdamWOptions options) : AdamW(options) { add_group(params); }

  // A group with its own base lr and weight decay (defaults: the options'). Every parameter must be
  // a trainable leaf and may appear once.
  void add_group(const std::vector<Var>& params, std::optional<double> lr = std::nullopt,
                 std::optional<double> weight_decay = std::nullopt) {
    Group g{{}, lr.value_or(options_.lr), weight_decay.value_or(options_.weight_decay)};
    CTMLLM_CHECK(g.lr >= 0 && g.weight_decay >= 0, "AdamW: a group's lr and weight_decay must be >= 0");
    for (const Var& p : params) {
      CTMLLM_CHECK(p.defined() && p.is_leaf() && p.requires_grad(), "AdamW: '", p.defined() ? p.name() : "?",
                   "' is not a trainable parameter");
      for (const State& s : state_)
        CTMLLM_CHECK(s.param.state() != p.state(), "AdamW: parameter '", p.name(), "' is in two groups");
      state_.push_back(State{p, Tensor<float, D>::zeros(p.shape()), Tensor<float, D>::zeros(p.shape()), 0,
                             groups_.size()});
      g.params.push_back(p);
    }
    groups_.push_back(std::move(g));
  }

  const std::vector<Group>& groups() const { return groups_; }
  const AdamWOptions& options() const { return options_; }
  // The schedule's multiplier of every group's base lr (1 at construction).
  void set_lr_factor(double f) {
    CTMLLM_CHECK(std::isfinite(f) && f >= 0, "AdamW: lr factor must be finite and >= 0, got ", f);
    lr_factor_ = f;
  }
  double lr_factor() const { return lr_factor_; }
  double lr(size_t group = 0) const {
    CTMLLM_CHECK(group < groups_.size(), "AdamW::lr: no group ", group, " (", groups_.size(), " groups)");
    return groups_[group].lr * lr_factor_;
  }

  // One update of every parameter that has a gradient. In place: views of a parameter elsewhere
  // see the new value (a strided value is updated as a contiguous copy and written back).
  void step() {
    std::vector<Tensor<T, D>> values, grads;
    std::vector<Tensor<float, D>> exp_avg, exp_avg_sq;
    std::vector<ops::AdamWCoefficients> coefficients;
    std::vector<const Var*> params;
    const double b1 = options_.beta1, b2 = options_.beta2;
    for (State& s : state_) {
      const Tensor<T, D>& grad = s.param.grad();
      if (!grad.defined()) continue;
      const Group& g = groups_[s.group];
      ++s.step;
      params.push_back(&s.param);
      values.push_back(s.param.value().contiguous());
      grads.push_back(grad);
      exp_avg.push_back(s.exp_avg);
      exp_avg_sq.push_back(s.exp_avg_sq);
      coefficients.push_back({g.lr * lr_factor_, g.weight_decay, b1, b2, options_.eps, 1 - std::pow(b1, double(s.step)),
                              std::sqrt(1 - std::pow(b2, double(s.step)))});
    }
    if (values.empty()) return;
    ops::adamw_update(values, grads, exp_avg, exp_avg_sq, coefficients);
    for (size_t i = 0; i < params.size(); ++i)
      if (values[i].data() != params[i]->value().data()) params[i]->value().copy_from(values[i]);
  }

  void zero_grad() {
    for (State& s : state_) s.param.zero_grad();
  }

  // Moments and step counts under "<param name>.exp_avg", ".exp_avg_sq", ".step" (a [1] float, exact
  // up to 2^24 steps), for checkpoints; load_state() restores them into an optimizer over the same
  // parameters, and the continuation is bit-identical.
  std::vector<std::pair<std::string, Tensor<float, Cpu>>> state() const {
    std::vector<std::pair<std::string, Tensor<float, Cpu>>> out;
    for (const State& s : state_) {
      out.emplace_back(s.param.name() + ".exp_avg", s.exp_avg.template to_device<Cpu>());
      out.emplace_back(s.param.name() + ".exp_avg_sq", s.exp_avg_sq.template to_device<Cpu>());
      out.emplace_back(s.param.name() + ".step", Tensor<float, Cpu>::full({1}, float(s.step)));
    }
    return out;
  }
  template <class Lookup>  // Lookup(name) -> Tensor<float, Cpu> (an Error when missing)
  void load_state(Lookup&& lookup) {
    for (State& s : state_) {
      Tensor<float, Cpu> m = lookup(s.param.name() + ".exp_avg"), v = lookup(s.param.name() + ".exp_avg_sq");
      check_shape(m, s.param.shape(), "AdamW::load_state", (s.param.name() + ".exp_avg").c_str());
      check_shape(v, s.param.shape(), "AdamW::load_state", (s.param.name() + ".exp_avg_sq").c_str());
      s.exp_avg = m.contiguous().clone().template to_device<D>();
      s.exp_avg_sq = v.contiguous().clone().template to_device<D>();
      const Tensor<float, Cpu> step = lookup(s.param.name() + ".step");
      check_shape(step, Shape{1}, "AdamW::load_state", (s.param.name() + ".step").c_str());
      const float n = step.item();
      CTMLLM_CHECK(n >= 0 && n == std::floor(n), "AdamW::load_state: ", s.param.name(), ".step must be a count, got ", n);
      s.step = int64_t(n);
    }
  }

 private:
  struct State {
    Var param;
    Tensor<float, D> exp_avg, exp_avg_sq;
    int64_t step = 0;
    size_t group = 0;
  };

  static void check_options(const AdamWOptions& o, const char* who) {
    CTMLLM_CHECK(o.lr >= 0 && o.eps > 0 && o.weight_decay >= 0, who, ": lr and weight_decay must be >= 0, eps > 0");
    CTMLLM_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, who, ": betas must be in [0, 1)");
  }

  AdamWOptions options_;
  std::vector<Group> groups_;
  std::vector<State> state_;
  double lr_factor_ = 1.0;
};

}  // namespace ctmllm::train
