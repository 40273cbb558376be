#pragma once
// The paper's fine-tuning modes for an llm::Decoder (PAPER.md item 8), and its LoRA/DoRA adapters
// in peft's layout (io/peft.hpp):
//   frozen      the decoder blocks are frozen; embed_tokens and lm_head train (the submission)
//   lora, dora  the whole decoder is frozen; adapters on the target modules train, and embed_tokens /
//               lm_head too when train_embeddings (peft's modules_to_save)
//   full        every parameter trains
// Adapters live in FineTune::adapters under "<module>.lora_A.weight", "<module>.lora_B.weight" and
// "<module>.lora_magnitude_vector" (peft's file names without the base_model.model. prefix), apart
// from the decoder's own Parameters, so that the decoder still saves as a plain Hugging Face model.
// The base may be stored in bf16: gradients reach the adapters through the frozen bf16 weights.
#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ctmllm/autograd/parameters.hpp"
#include "ctmllm/io/peft.hpp"
#include "ctmllm/llm/decoder.hpp"

namespace ctmllm::train {

enum class FineTuneMode { frozen, lora, dora, full };

inline const char* mode_name(FineTuneMode m) {
  switch (m) {
    case FineTuneMode::frozen: return "frozen";
    case FineTuneMode::lora: return "lora";
    case FineTuneMode::dora: return "dora";
    case FineTuneMode::full: return "full";
  }
  return "?";
}

// The paper's LoRA run: r 16, alpha 32, dropout 0.05 on every Linear of the decoder blocks (no
// target_modules and no target_regex means exactly that, peft's "all-linear").
inline io::LoraConfig paper_lora_config() {
  io::LoraConfig c;
  c.r = 16;
  c.lora_alpha = 32;
  c.lora_dropout = 0.05;
  c.task_type = "CAUSAL_LM";
  return c;
}

struct FineTuneOptions {
  FineTuneMode mode = FineTuneMode::frozen;
  io::LoraConfig lora = paper_lora_config();  // lora, dora: rank, alpha, dropout, targets, patterns, rsLoRA
  bool train_embeddings = true;               // lora, dora: embed_tokens and lm_head train too
  uint64_t seed = 0;                          // the adapters' A initialisation and the dropout stream
};

template <class T, class D = Cpu>
struct FineTune {
  FineTuneMode mode = FineTuneMode::frozen;
  io::LoraConfig lora;                  // lora, dora: the adapters' config, as exported
  autograd::Parameters<T, D> adapters;  // lora, dora: the adapter tensors, in module order
  std::shared_ptr<Rng> dropout_rng;     // shared by every adapter of the model
};

namespace detail {
template <class T, class D>
void freeze_all(llm::Decoder<T, D>& model) {
  for (autograd::Variable<T, D> p : model.parameters().all()) p.set_requires_grad(false);
}

// embed_tokens and (an untied) lm_head train; they must be held in T.
template <class T, class D>
void train_embeddings(llm::Decoder<T, D>& model, FineTuneMode mode) {
  CTMLLM_CHECK(model.storage() == llm::Storage::compute, "FineTune: mode '", mode_name(mode),
               "' trains model.embed_tokens and lm_head, which are stored in bf16; load the decoder with "
               "Storage::compute, or train only adapters (train_embeddings = false)");
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"})
    if (model.parameters().contains(name)) {
      autograd::Variable<T, D> p = model.parameters().get(name);
      p.set_requires_grad(true);
    }
}

// The Dense layers of `model` that the config puts adapters on.
template <class T, class D>
std::vector<std::pair<std::string, llm::Dense<T, D>*>> targeted(llm::Decoder<T, D>& model, const io::LoraConfig& c) {
  std::vector<std::pair<std::string, llm::Dense<T, D>*>> out;
  model.for_each_dense([&](const std::string& name, llm::Dense<T, D>& d) {
    if (c.targets(name)) out.emplace_back(name, &d);
  });
  return out;
}

template <class T, class D>
Tensor<T, D> to_compute(const Tensor<float, Cpu>& t) {
  return t.template to<T>().template to_device<D>();
}

// Registers a module's adapter tensors in ft.adapters and attaches them to `dense`.
template <class T, class D>
void attach(FineTune<T, D>& ft, const std::string& module, llm::Dense<T, D>& dense, Tensor<T, D> A, Tensor<T, D> B,
            Tensor<T, D> magnitude, double scaling, bool trainable) {
  CTMLLM_CHECK(!dense.adapter, "FineTune: module '", module, "' already has an adapter");
  CTMLLM_CHECK(A.rank() == 2 && B.rank() == 2 && A.size(1) == dense.in_features() && B.size(0) == dense.out_features() &&
                   B.size(1) == A.size(0),
               "FineTune: module '", module, "' [", dense.out_features(), ", ", dense.in_features(), "] cannot take lora_A ",
               A.shape(), " and lora_B ", B.shape());
  nn::LoraAdapter<T, D> a;
  a.A = ft.adapters.add(module + ".lora_A.weight", std::move(A), trainable);
  a.B = ft.adapters.add(module + ".lora_B.weight", std::move(B), trainable);
  if (magnitude.defined()) a.magnitude = ft.adapters.add(module + ".lora_magnitude_vector", std::move(magnitude), trainable);
  a.scaling = scaling;
  a.dropout = ft.lora.lora_dropout;
  a.rng = ft.dropout_rng;
  dense.adapter = std::move(a);
}

inline void check_creatable(const io::LoraConfig& c) {
  CTMLLM_CHECK(c.r > 0, "FineTune: LoRA r must be positive, got ", c.r);
  CTMLLM_CHECK(c.lora_dropout >= 0 && c.lora_dropout < 1, "FineTune: lora_dropout must be in [0, 1), got ", c.lora_dropout);
  CTMLLM_CHECK(!c.fan_in_fan_out, "FineTune: fan_in_fan_out is for GPT-2 style Conv1D weights, which a decoder does not have");
  CTMLLM_CHECK(c.bias == "none", "FineTune: new adapters train no biases (bias must be 'none', got '", c.bias, "')");
  CTMLLM_CHECK(c.modules_to_save.empty(), "FineTune: set train_embeddings instead of modules_to_save");
}
}  // namespace detail

// Sets up `mode` on `model`: which decoder parameters train, and new adapters for lora / dora (peft's
// initialisation: A ~ U(−1/√in, 1/√in), B = 0, DoRA's m = ‖W‖ per row, so the model is unchanged).
template <class T, class D>
FineTune<T, D> prepare_finetune(llm::Decoder<T, D>& model, const FineTuneOptions& o) {
  FineTune<T, D> ft;
  ft.mode = o.mode;
  if (o.mode == FineTuneMode::full) {
    CTMLLM_CHECK(model.storage() == llm::Storage::compute,
                 "FineTune: mode 'full' trains every weight; load the decoder with Storage::compute, not bf16");
    for (autograd::Variable<T, D> p : model.parameters().all()) p.set_requires_grad(true);
    return ft;
  }
  detail::freeze_all(model);
  if (o.mode == FineTuneMode::frozen) {
    detail::train_embeddings(model, o.mode);
    return ft;
  }
  ft.lora = o.lora;
  CTMLLM_CHECK(o.mode == FineTuneMode::dora || !o.lora.use_dora, "FineTune: use_dora is set; choose mode 'dora'");
  ft.lora.use_dora = o.mode == FineTuneMode::dora;
  detail::check_creatable(ft.lora);
  if (ft.lora.target_modules.empty() && ft.lora.target_regex.empty()) {
    // Every Linear of the blocks, written back as the module suffixes peft would resolve.
    std::set<std::string> suffixes;
    model.for_each_dense([&](const std::string& name, const llm::Dense<T, D>&) {
      if (name.rfind("model.layers.", 0) == 0) suffixes.insert(name.substr(name.rfind('.') + 1));
    });
    ft.lora.target_modules.assign(suffixes.begin(), suffixes.end());
  }
  const auto targets = detail::targeted(model, ft.lora);
  CTMLLM_CHECK(!targets.empty(), "FineTune: the LoRA targets match no Linear of the decoder");
  ft.dropout_rng = std::make_shared<Rng>(o.seed, uint64_t(1) << 62);  // apart from the initialisation's counters
  Rng init(o.seed);
  for (const auto& [name, dense] : targets) {
    const int64_t r = ft.lora.rank_for(name), in = dense->in_features(), out = dense->out_features();
    const double bound = 1.0 / std::sqrt(double(in));
    const Tensor<float, Cpu> A = init.template uniform<float>({r, in}, -bound, bound);
    detail::attach(ft, name, *dense, detail::to_compute<T, D>(A), Tensor<T, D>::zeros({out, r}), Tensor<T, D>(),
                   ft.lora.scaling_for(name), true);
    if (ft.lora.use_dora) {
      nn::LoraAdapter<T, D>& a = *dense->adapter;
      a.magnitude = ft.adapters.add(name + ".lora_magnitude_vector", a.weight_norm(dense->weight_value()), true);
    }
  }
  if (o.train_embeddings) {
    detail::train_embeddings(model, o.mode);
    ft.lora.modules_to_save = {"embed_tokens"};
    if (model.parameters().contains("lm_head.weight")) ft.lora.modules_to_save.push_back("lm_head");
  }
  return ft;
}

// Loads a peft adapter folder into `model`: adapters on the modules it names (each must be a Linear
// of the decoder with matching shapes) and the base parameters it replaces (modules_to_save). The
// decoder's own parameters are frozen; the adapter's tensors train when `trainable` (peft's
// is_trainable).
template <class T, class D>
FineTune<T, D> load_peft_adapter(llm::Decoder<T, D>& model, const std::string& dir, bool trainable = false) {
  const io::Adapter a = io::load_adapter(dir);
  CTMLLM_CHECK(!a.config.fan_in_fan_out, dir, ": fan_in_fan_out adapters are for Conv1D weights, not a decoder's Linear");
  FineTune<T, D> ft;
  ft.mode = a.config.use_dora ? FineTuneMode::dora : FineTuneMode::lora;
  ft.lora = a.config;
  ft.dropout_rng = std::make_shared<Rng>(0, uint64_t(1) << 62);
  detail::freeze_all(model);
  std::set<std::string> found;
  model.for_each_dense([&](const std::string& name, llm::Dense<T, D>& dense) {
    const auto it = a.modules.find(name);
    if (it == a.modules.end()) return;
    const io::LoraWeights& w = it->second;
    detail::attach(ft, name, dense, detail::to_compute<T, D>(w.A), detail::to_compute<T, D>(w.B),
                   w.magnitude.defined() ? detail::to_compute<T, D>(w.magnitude) : Tensor<T, D>(), w.scaling, trainable);
    found.insert(name);
  });
  for (const auto& [module, _] : a.modules)
    CTMLLM_CHECK(found.count(module), dir, ": adapter module '", module, "' is not a Linear layer of this decoder");
  for (const auto& [name, t] : a.overrides) {
    CTMLLM_CHECK(model.parameters().contains(name), dir, ": the adapter replaces '", name,
                 "', which this decoder does not hold in its compute type (missing, or stored in bf16)");
    autograd::Variable<T, D> p = model.parameters().get(name);
    p.set_value(detail::to_compute<T, D>(t));
    p.set_requires_grad(trainable);
  }
  return ft;
}

// Writes the adapters of `model` (and the base parameters that train beside them) as peft's
// adapter_config.json + adapter_model.safetensors, loadable with PeftModel.from_pretrained.
template <class T, class D>
void save_peft_adapter(const llm::Decoder<T, D>& model, const FineTune<T, D>& ft, const std::string& dir) {
  CTMLLM_CHECK(ft.mode == FineTuneMode::lora || ft.mode == FineTuneMode::dora, "save_peft_adapter: mode '",
               mode_name(ft.mode), "' has no adapter; save the decoder's parameters instead");
  io::Adapter out;
  out.config = ft.lora;
  auto host = [](const autograd::Variable<T, D>& v) { return v.value().template to_device<Cpu>().template to<float>(); };
  model.for_each_dense([&](const std::string& name, const llm::Dense<T, D>& dense) {
    if (!dense.adapter) return;
    const nn::LoraAdapter<T, D>& a = *dense.adapter;
    io::LoraWeights w;
    w.A = host(a.A);
    w.B = host(a.B);
    if (a.dora()) w.magnitude = host(a.magnitude);
    w.scaling = a.scaling;
    out.modules[name] = w;
  });
  for (const auto& p : model.parameters().all())
    if (p.requires_grad()) out.overrides[p.name()] = host(p);
  io::save_adapter(out, dir);
}

// Folds every adapter into its base weight (peft's merge; merge_and_unload's weights): inference
// then runs the plain layers. A bf16 base is rounded back to bf16.
template <class T, class D>
void merge_adapters(llm::Decoder<T, D>& model) {
  model.for_each_dense([](const std::string&, llm::Dense<T, D>& dense) {
    if (dense.adapter && !dense.adapter->merged) dense.set_weight_value(dense.adapter->merge(dense.weight_value()));
  });
}

// Takes merged adapters back out of the base weights.
template <class T, class D>
void unmerge_adapters(llm::Decoder<T, D>& model) {
  model.for_each_dense([](const std::string&, llm::Dense<T, D>& dense) {
    if (dense.adapter && dense.adapter->merged) dense.set_weight_value(dense.adapter->unmerge(dense.weight_value()));
  });
}

// Adapter dropout on (training) or off (evaluation); it never runs without a graph being recorded.
template <class T, class D>
void set_adapter_training(llm::Decoder<T, D>& model, bool training) {
  model.for_each_dense([training](const std::string&, llm::Dense<T, D>& dense) {
    if (dense.adapter) dense.adapter->training = training;
  });
}

// What the optimizer updates: the decoder's trainable parameters, then the trainable adapters.
template <class T, class D>
std::vector<autograd::Variable<T, D>> trainable_parameters(const llm::Decoder<T, D>& model, const FineTune<T, D>& ft) {
  std::vector<autograd::Variable<T, D>> out = model.parameters().trainable();
  for (const auto& p : ft.adapters.trainable()) out.push_back(p);
  return out;
}

}  // namespace ctmllm::train
