#pragma once
// Reverse-mode autograd over coarse ops.
//
// A Variable is a tensor value plus, when it was computed from something that needs a gradient, the
// Node that made it. Ops in autograd/ call the plain tensor ops of ops/ and record a Node only when
// grad mode is on and an input requires a gradient; otherwise they cost exactly the tensor op.
//
// The gradient contract (the same everywhere):
//  - a Node's backward receives the gradient of its output and returns one gradient per input
//    (an undefined tensor for inputs that need none); it never writes into its inputs;
//  - the engine accumulates: a leaf's grad (a parameter's) is added to, never overwritten, so
//    several backward passes (gradient accumulation) sum; zero_grad() resets it;
//  - intermediate gradients live only while the backward pass needs them.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ctmllm/core/tensor.hpp"

namespace ctmllm::autograd {

// Grad mode is per thread, on by default; NoGradGuard turns it off in a scope (inference).
inline bool& grad_mode() {
  thread_local bool enabled = true;
  return enabled;
}
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_mode()) { grad_mode() = false; }
  ~NoGradGuard() { grad_mode() = prev_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(grad_mode()) { grad_mode() = true; }
  ~EnableGradGuard() { grad_mode() = prev_; }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

template <class T, class D>
struct VariableState;

template <class T, class D>
struct Node {
  using Grads = std::vector<Tensor<T, D>>;
  std::string op;                                         // for error messages and debugging
  std::vector<std::shared_ptr<VariableState<T, D>>> inputs;  // the Variables this op read
  std::function<Grads(const Tensor<T, D>& grad_output)> backward;
};

template <class T, class D>
struct VariableState {
  Tensor<T, D> value;
  Tensor<T, D> grad;  // accumulated gradient (leaves) or pending gradient (during backward)
  bool requires_grad = false;
  std::shared_ptr<Node<T, D>> grad_fn;  // null for leaves
  std::string name;                     // Hugging Face name for parameters
};

template <class T, class D = Cpu>
class Variable {
 public:
  using State = VariableState<T, D>;

  Variable() = default;
  // A leaf. requires_grad marks a trainable parameter or an input whose gradient is wanted.
  explicit Variable(Tensor<T, D> value, bool requires_grad = false, std::string name = {})
      : state_(std::make_shared<State>()) {
    state_->value = std::move(value);
    state_->requires_grad = requires_grad;
    state_->name = std::move(name);
  }

  bool defined() const { return state_ != nullptr; }
  const Tensor<T, D>& value() const { return checked().value; }
  const Tensor<T, D>& grad() const { return checked().grad; }
  bool requires_grad() const { return state_ && state_->requires_grad; }
  bool is_leaf() const { return !checked().grad_fn; }
  const std::string& name() const { return checked().name; }
  const Shape& shape() const { return checked().value.shape(); }
  int64_t size(int dim) const { return checked().value.size(dim); }
  int rank() const { return checked().value.rank(); }
  const std::shared_ptr<State>& state() const { return state_; }

  void set_requires_grad(bool r) {
    CTMLLM_CHECK(is_leaf(), "Variable::set_requires_grad: only leaves can change requires_grad");
    state_->requires_grad = r;
  }
  void zero_grad() { state_->grad = Tensor<T, D>(); }
  // Replaces the value in place (optimizer steps, loading weights); the shape must not change.
  void set_value(const Tensor<T, D>& v) {
    check_shape(v, shape(), "Variable::set_value", state_->name.c_str());
    state_->value = v;
  }
  // Gives a leaf a value of another shape (growing a vocabulary); the gradient is dropped. Every
  // holder of this Variable (Parameters, layers, optimizers) sees the new value.
  void resize_leaf(Tensor<T, D> v) {
    CTMLLM_CHECK(is_leaf(), "Variable::resize_leaf: '", state_->name, "' is not a leaf");
    state_->value = std::move(v);
    state_->grad = Tensor<T, D>();
  }
  // A new leaf sharing this value, cut from the graph.
  Variable detach() const { return Variable(state_->value, false, state_->name); }

  // Runs the backward pass from this variable. With no argument it must hold one element (a loss)
  // and is seeded with 1; otherwise `grad_output` (same shape) seeds it. Defined in backward.hpp.
  void backward(const Tensor<T, D>& grad_output = Tensor<T, D>()) const;

  // A non-leaf produced by `node` (used by record() and checkpoint()).
  static Variable from_node(Tensor<T, D> value, std::shared_ptr<Node<T, D>> node) {
    Variable v(std::move(value));
    v.state_->requires_grad = true;
    v.state_->grad_fn = std::move(node);
    return v;
  }

 private:
  State& checked() const {
    CTMLLM_CHECK(state_, "Variable: use of an undefined variable");
    return *state_;
  }

  std::shared_ptr<State> state_;
};

// True when an op over these inputs must record a node.
template <class T, class D>
bool needs_grad(const std::vector<Variable<T, D>>& inputs) {
  if (!grad_mode()) return false;
  for (const auto& v : inputs)
    if (v.requires_grad()) return true;
  return false;
}

// Wraps an op's output: records a node with `backward` when an input requires a gradient, or
// returns a plain leaf (zero overhead beyond the shared_ptr) when none does. `backward` maps the
// output gradient to one gradient per input, in order; it is only called for recorded nodes.
template <class T, class D, class F>
Variable<T, D> record(Tensor<T, D> value, const char* op, const std::vector<Variable<T, D>>& inputs, F&& backward) {
  if (!needs_grad(inputs)) return Variable<T, D>(std::move(value));
  auto node = std::make_shared<Node<T, D>>();
  node->op = op;
  for (const auto& v : inputs) node->inputs.push_back(v.state());
  node->backward = std::forward<F>(backward);
  return Variable<T, D>::from_node(std::move(value), std::move(node));
}
template <class T, class D, class F>
Variable<T, D> record(Tensor<T, D> value, const char* op, std::initializer_list<Variable<T, D>> inputs, F&& backward) {
  return record(std::move(value), op, std::vector<Variable<T, D>>(inputs), std::forward<F>(backward));
}

}  // namespace ctmllm::autograd
