#pragma once
// train::SGD: torch.optim.SGD semantics (coupled weight decay, momentum with dampening, Nesterov),
// with parameter groups like AdamW.
//
//   d ← g + wd·w
//   b ← d at a parameter's first update, then b ← μ·b + (1 − dampening)·d
//   d ← d + μ·b (Nesterov) or d ← b
//   w ← w − lr·d
//
// Parameters without a gradient in a step are skipped. Momentum buffers are kept in float; each
// element's update is computed in double.
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/core/parallel.hpp"

namespace ctmllm::train {

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

template <class T>
class SGD {
 public:
  using Var = autograd::Variable<T, Cpu>;

  explicit SGD(SGDOptions options = {}) : options_(options) {
    CTMLLM_CHECK(options.lr >= 0 && options.momentum >= 0 && options.weight_decay >= 0,
                 "SGD: lr, momentum and weight_decay must be >= 0");
    CTMLLM_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
                 "SGD: nesterov needs momentum > 0 and dampening 0 (as torch)");
  }
  SGD(const std::vector<Var>& params, SGDOptions options) : SGD(options) { add_group(params); }

  // A group with its own base lr and weight decay (defaults: the options').
  void add_group(const std::vector<Var>& params, std::optional<double> lr = std::nullopt,
                 std::optional<double> weight_decay = std::nullopt) {
    const double glr = lr.value_or(options_.lr), gwd = weight_decay.value_or(options_.weight_decay);
    CTMLLM_CHECK(glr >= 0 && gwd >= 0, "SGD: a group's lr and weight_decay must be >= 0");
    for (const Var& p : params) {
      CTMLLM_CHECK(p.defined() && p.is_leaf() && p.requires_grad(), "SGD: '", p.defined() ? p.name() : "?",
                   "' is not a trainable parameter");
      for (const State& s : state_)
        CTMLLM_CHECK(s.param.state() != p.state(), "SGD: parameter '", p.name(), "' is in two groups");
      state_.push_back(State{p, Tensor<float, Cpu>::zeros(p.shape()), 0, glr, gwd});
    }
  }

  void set_lr_factor(double f) {
    CTMLLM_CHECK(std::isfinite(f) && f >= 0, "SGD: lr factor must be finite and >= 0, got ", f);
    lr_factor_ = f;
  }

  void step() {
    for (State& s : state_) {
      const Tensor<T, Cpu>& grad = s.param.grad();
      if (!grad.defined()) continue;
      update(s, grad.contiguous());
      ++s.step;
    }
  }

  void zero_grad() {
    for (State& s : state_) s.param.zero_grad();
  }

  // "<name>.momentum_buffer" and "<name>.step" (updates so far: 0 = no buffer yet, as torch's None).
  std::vector<std::pair<std::string, Tensor<float, Cpu>>> state() const {
    std::vector<std::pair<std::string, Tensor<float, Cpu>>> out;
    for (const State& s : state_) {
      out.emplace_back(s.param.name() + ".momentum_buffer", s.buffer);
      out.emplace_back(s.param.name() + ".step", Tensor<float, Cpu>::full({1}, float(s.step)));
    }
    return out;
  }
  template <class Lookup>  // Lookup(name) -> Tensor<float, Cpu> (an Error when missing)
  void load_state(Lookup&& lookup) {
    for (State& s : state_) {
      const std::string b = s.param.name() + ".momentum_buffer", n = s.param.name() + ".step";
      Tensor<float, Cpu> buf = lookup(b), step = lookup(n);
      check_shape(buf, s.param.shape(), "SGD::load_state", b.c_str());
      check_shape(step, Shape{1}, "SGD::load_state", n.c_str());
      CTMLLM_CHECK(step.item() >= 0 && step.item() == std::floor(step.item()), "SGD::load_state: ", n,
                   " must be a count, got ", step.item());
      s.buffer = buf.contiguous().clone();
      s.step = int64_t(step.item());
    }
  }

 private:
  struct State {
    Var param;
    Tensor<float, Cpu> buffer;
    int64_t step = 0;
    double lr, weight_decay;
  };

  void update(State& s, const Tensor<T, Cpu>& grad) const {
    const Tensor<T, Cpu> w = s.param.value();
    CTMLLM_CHECK(w.is_contiguous(), "SGD: parameter '", s.param.name(), "' is not contiguous: ", w.describe());
    const double lr = s.lr * lr_factor_, wd = s.weight_decay, mu = options_.momentum, damp = options_.dampening;
    const bool first = s.step == 0, nesterov = options_.nesterov;
    T* pw = w.data();
    const T* pg = grad.data();
    float* pb = s.buffer.data();
    parallel_for(0, w.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const double x = double(pw[i]);
        double d = double(pg[i]) + wd * x;
        if (mu != 0) {
          const double b = first ? d : mu * double(pb[i]) + (1 - damp) * d;
          pb[i] = float(b);
          d = nesterov ? d + mu * b : b;
        }
        pw[i] = cast<T>(x - lr * d);
      }
    });
  }

  SGDOptions options_;
  std::vector<State> state_;
  double lr_factor_ = 1.0;
};

}  // namespace ctmllm::train
