#pragma once
// Where a decoder's weights come from and how they are stored.
//
// Storage: every tensor is either held in the compute type T — a trainable autograd::Variable
// registered under its Hugging Face name, the path training uses — or, for the large matrices
// (projections, embeddings, lm_head), frozen in bf16 for inference: half the memory, zero-copy from
// a bf16 checkpoint, and half the bytes per decoded token. Norm weights and biases stay in T.
//
// Sources: anything with `template <class U> Tensor<U, Cpu> get(name, shape, role, writable)`.
// CheckpointWeights reads a Hugging Face folder (io::CheckpointDir); RandomWeights draws seeded
// weights of the right scale for benchmarks and tests.
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>

#include "ctmllm/autograd/embedding.hpp"
#include "ctmllm/autograd/matmul.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/io/checkpoint.hpp"
#include "ctmllm/llm/bf16_linear.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/llm/cuda/bf16_linear.cuh"
#endif
#include "ctmllm/nn/lora.hpp"
#include "ctmllm/ops/reduce.hpp"

namespace ctmllm::llm {

enum class Storage { compute, bf16 };  // matrices in T (trainable) or in bf16 (frozen, inference)

enum class Role { matrix, embedding, norm, bias };  // what a tensor is, for RandomWeights' scale

namespace detail {
// The bf16 kernels run on float activations: on the CPU, and on the GPU where its kernels are
// reachable (CUDA C++ compiled by nvcc, llm/cuda/bf16_linear.cuh).
template <class T, class D>
constexpr bool bf16_supported = std::is_same_v<T, float> && ops::has_kernels_v<D>;

template <class T, class D>
void check_bf16_supported() {
  CTMLLM_CHECK((bf16_supported<T, D>), "bf16 weight storage needs float activations (on the GPU from a .cu file), not ",
               dtype_name(dtype_v<T>), " on ", D::name);
}
}  // namespace detail

// A Linear layer y = x·Wᵀ + b over a weight stored in T or in bf16, with an optional LoRA/DoRA
// adapter applied in the same call (nn/lora.hpp). A bf16 weight is frozen, but gradients flow through
// it to x (dx = dy·W, float accumulation): LoRA on a bf16 base, and training what feeds a frozen LLM.
template <class T, class D = Cpu>
struct Dense {
  autograd::Variable<T, D> weight;  // [out, in] in T; undefined when stored in bf16
  Tensor<bf16, D> weight_bf16;      // [out, in]; undefined when stored in T
  autograd::Variable<T, D> bias;    // [out], or undefined
  std::optional<nn::LoraAdapter<T, D>> adapter;  // skipped while merged into the weight

  int64_t out_features() const { return weight.defined() ? weight.size(0) : weight_bf16.size(0); }
  int64_t in_features() const { return weight.defined() ? weight.size(1) : weight_bf16.size(1); }

  // x [..., in] -> [..., out]
  autograd::Variable<T, D> operator()(const autograd::Variable<T, D>& x) const {
    if (!adapter || adapter->merged) return base(x, true);
    return (*adapter)(x, [this](const autograd::Variable<T, D>& v, bool with_bias) { return base(v, with_bias); },
                      [this] { return weight_value(); }, bias);
  }

  // x·Wᵀ (+ b) without the adapter.
  autograd::Variable<T, D> base(const autograd::Variable<T, D>& x, bool with_bias) const {
    const autograd::Variable<T, D> b = with_bias ? bias : autograd::Variable<T, D>();
    if (weight.defined()) return autograd::linear(x, weight, b);
    const int64_t in = in_features(), out = out_features();
    CTMLLM_CHECK(x.rank() >= 1 && x.size(-1) == in, "Dense: x ", x.value().describe(), " does not match the bf16 weight ",
                 weight_bf16.describe());
    if constexpr (detail::bf16_supported<T, D>) {
      int64_t rows = 1;  // x's leading dimensions, as one
      for (int64_t i = 0; i + 1 < x.rank(); ++i) rows *= x.size(i);
      const Tensor<T, D> bv = b.defined() ? b.value().contiguous() : Tensor<T, D>();
      Shape shape = x.shape();
      shape[shape.rank() - 1] = out;
      Tensor<T, D> y = kernels::linear_bf16(x.value().contiguous().reshape({rows, in}), weight_bf16, bv).reshape(shape);
      // Only x (and a trainable bias) get gradients; the node keeps the weight alive by handle.
      const Tensor<bf16, D> wt = weight_bf16;
      const Shape x_shape = x.shape();
      const bool need_x = x.requires_grad(), need_b = b.requires_grad();
      return autograd::record(std::move(y), "linear_bf16", {x, b}, [wt, x_shape, out, need_x, need_b](const Tensor<T, D>& dy) {
        const Tensor<T, D> g = dy.contiguous().reshape({dy.numel() / std::max<int64_t>(out, 1), out});
        Tensor<T, D> dx, db;
        if (need_x) dx = kernels::linear_bf16_backward_input(g, wt).reshape(x_shape);
        if (need_b) db = ops::sum(g, {0});
        return std::vector<Tensor<T, D>>{dx, db};
      });
    } else {
      detail::check_bf16_supported<T, D>();
      return {};
    }
  }

  // W [out, in] in T (a bf16 weight converted).
  Tensor<T, D> weight_value() const {
    if (weight.defined()) return weight.value();
    if constexpr (detail::bf16_supported<T, D>) return kernels::widen_bf16(weight_bf16);
    detail::check_bf16_supported<T, D>();
    return {};
  }
  // Replaces W's values (merging adapters): in place in T, or as a new bf16 tensor, rounded (a bf16
  // weight may be a read-only view of the checkpoint).
  void set_weight_value(const Tensor<T, D>& w) {
    if (weight.defined()) return weight.set_value(w);
    check_shape(w, weight_bf16.shape(), "Dense::set_weight_value", "weight");
    if constexpr (detail::bf16_supported<T, D>) weight_bf16 = kernels::round_to_bf16(w);
    else detail::check_bf16_supported<T, D>();
  }
};

// Token embedding rows [vocab, hidden] stored in T or in bf16.
template <class T, class D = Cpu>
struct TokenEmbedding {
  autograd::Variable<T, D> weight;  // [vocab, hidden] in T; undefined when stored in bf16
  Tensor<bf16, D> weight_bf16;

  int64_t vocab() const { return weight.defined() ? weight.size(0) : weight_bf16.size(0); }
  int64_t hidden() const { return weight.defined() ? weight.size(1) : weight_bf16.size(1); }

  // ids [...] -> [..., hidden]; an id outside [0, vocab) is an Error.
  autograd::Variable<T, D> operator()(const Tensor<int64_t, D>& ids) const {
    if (weight.defined()) return autograd::embedding(weight, ids);
    if constexpr (detail::bf16_supported<T, D>) {
      return autograd::Variable<T, D>(kernels::embedding_bf16(weight_bf16, ids));
    } else {
      detail::check_bf16_supported<T, D>();
      return {};
    }
  }
  // lm_head tied to these rows (Qwen2, Gemma): the same Variable, so both uses accumulate one gradient.
  Dense<T, D> tied_head() const { return Dense<T, D>{weight, weight_bf16, {}, {}}; }
};

// A Hugging Face model folder as a weight source: a missing tensor or a wrong shape is an Error
// naming the tensor and the folder.
class CheckpointWeights {
 public:
  explicit CheckpointWeights(const std::string& path) : dir_(path) {}

  // `writable`: the caller will update the tensor (a trainable parameter), so a zero-copy view of the
  // read-only mapping is copied; frozen bf16 weights stay views.
  template <class U>
  Tensor<U, Cpu> get(const std::string& name, const Shape& shape, Role, bool writable) const {
    CTMLLM_CHECK(dir_.contains(name), dir_.path(), ": missing weight '", name, "'");
    const Shape stored = dir_.shape(name);
    CTMLLM_CHECK(stored == shape, dir_.path(), ": weight '", name, "' has shape ", stored, ", the config implies ",
                 shape);
    Tensor<U, Cpu> t = dir_.get<U>(name);
    return writable && dir_.dtype(name) == dtype_v<U> ? t.clone() : t;
  }

 private:
  io::CheckpointDir dir_;
};

// Seeded random weights with realistic scales: matrices and embeddings U(−a, a) with a = √(3 / in)
// (unit-variance outputs for unit-variance inputs), norm weights 1 ± 0.1, biases ± 0.05. Uniform
// draws are cheap, so a 0.5 B-parameter model fills in seconds.
class RandomWeights {
 public:
  explicit RandomWeights(uint64_t seed) : rng_(seed) {}

  template <class U>
  Tensor<U, Cpu> get(const std::string&, const Shape& shape, Role role, bool) const {
    switch (role) {
      case Role::matrix:
      case Role::embedding: {
        const double a = std::sqrt(3.0 / double(shape[shape.rank() - 1]));
        return rng_.template uniform<U>(shape, -a, a);
      }
      case Role::norm:
        return rng_.template uniform<U>(shape, 0.9, 1.1);
      case Role::bias:
        return rng_.template uniform<U>(shape, -0.05, 0.05);
    }
    return {};
  }

 private:
  mutable Rng rng_;  // draws advance the stream: tensors are filled in the order they are requested
};

}  // namespace ctmllm::llm
