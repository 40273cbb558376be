#pragma once
// Parameters: trainable tensors registered under Hugging Face names ("model.layers.0.mlp.up_proj.weight"),
// in registration order, so that loading, saving, optimizers and gradient checks are name lookups.
#include <string>
#include <unordered_map>
#include <vector>

#include "ctmllm/autograd/variable.hpp"

namespace ctmllm::autograd {

template <class T, class D = Cpu>
class Parameters {
 public:
  // Registers a new parameter; the name must be unique.
  Variable<T, D> add(const std::string& name, Tensor<T, D> value, bool trainable = true) {
    CTMLLM_CHECK(!index_.count(name), "Parameters: '", name, "' is already registered");
    index_[name] = list_.size();
    list_.push_back(Variable<T, D>(std::move(value), trainable, name));
    names_.push_back(name);
    return list_.back();
  }
  // Registers, under `name`, a parameter another Parameters owns (a model assembled from parts):
  // both see the same value and gradient.
  void share(const std::string& name, const Variable<T, D>& v) {
    CTMLLM_CHECK(!index_.count(name), "Parameters: '", name, "' is already registered");
    index_[name] = list_.size();
    list_.push_back(v);
    names_.push_back(name);
  }
  // The name each parameter is registered under (its own name unless shared under another).
  const std::string& name_of(size_t i) const { return names_.at(i); }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const Variable<T, D>& get(const std::string& name) const {
    auto it = index_.find(name);
    CTMLLM_CHECK(it != index_.end(), "Parameters: no parameter named '", name, "'");
    return list_[it->second];
  }
  const std::vector<Variable<T, D>>& all() const { return list_; }
  std::vector<Variable<T, D>> trainable() const {
    std::vector<Variable<T, D>> out;
    for (const auto& p : list_)
      if (p.requires_grad()) out.push_back(p);
    return out;
  }
  size_t size() const { return list_.size(); }
  int64_t numel(bool trainable_only = false) const {
    int64_t n = 0;
    for (const auto& p : list_)
      if (!trainable_only || p.requires_grad()) n += p.value().numel();
    return n;
  }
  void zero_grad() {
    for (auto& p : list_) p.zero_grad();
  }

 private:
  std::vector<Variable<T, D>> list_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace ctmllm::autograd
