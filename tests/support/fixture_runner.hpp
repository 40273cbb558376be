#pragma once
// The fixture runner: runs ctmllm on the inputs of a reference fixture folder laid out like
// tests/fixtures/<kind>/<name> (any sizes, seeds or configs) and returns outputs named exactly like
// the reference's keys. `ctmllm_fixture KIND DIR OUT.safetensors` (ctmllm_fixture.cpp) writes them; the
// project's fixture tests (tests/fixture_runner/test_fixtures.cpp) compare them with the reference.
//
//   llm        config.json + weights: logits, padded_logits, greedy_output
//   vision     config.json + model.safetensors: output, cls, output_32x64x48_size,
//              output_32x64x48_scale, output_native_scale
//   projector  config.json + model.safetensors: output
//   mllm       config.json, llm/, vision.safetensors, projector.safetensors: {ct,ct_mask}.logits,
//              .loss, and in the frozen-LLM mode .grad.<vision.|projector.|llm.><name>
//   lora       base/ (or the fixture named by the reference's "base" metadata), adapter/ (peft):
//              logits, loss, merged_logits, grad.<peft name> of every adapter tensor
//   train      base/, hparams.json (lr, betas, eps, weight_decay, clip_grad_norm, steps): AdamW steps
//              on input_ids/labels: loss.<i>, grad_norm.<i>, grad0.<name>, final.<name>
// Only outputs whose inputs the reference holds are produced. run<D>() runs the models on device D
// (run<Cuda> from a .cu file: the GPU fixture tests); outputs always come back to the host.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/generate/generate.hpp"
#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/io/peft.hpp"
#include "ctmllm/io/safetensors.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/mllm/model.hpp"
#include "ctmllm/projector/projector.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/clip.hpp"
#include "ctmllm/train/finetune.hpp"
#include "ctmllm/vision/vit3d.hpp"

namespace ctmllm::fixture_runner {

struct Outputs {
  std::map<std::string, Tensor<float, Cpu>> floats;
  std::map<std::string, Tensor<int64_t, Cpu>> ints;

  void write(const std::string& path) const {
    io::SafeTensorsWriter w;
    for (const auto& [name, t] : floats) w.add(name, t);
    for (const auto& [name, t] : ints) w.add(name, t);
    w.write(path);
  }
};

namespace detail {

inline io::SafeTensorsFile reference(const std::string& dir) { return io::SafeTensorsFile(dir + "/reference.safetensors"); }

// A reference tensor on device D, and a result back on the host.
template <class D, class U>
Tensor<U, D> on(const io::SafeTensorsFile& ref, const std::string& name) {
  return ref.get<U>(name).template to_device<D>();
}
template <class U, class D>
Tensor<U, Cpu> host(const Tensor<U, D>& t) {
  return t.template to_device<Cpu>();
}
// A decoder input of token ids (and a padding mask).
template <class D>
llm::DecoderInput<float, D> tokens(const Tensor<int64_t, D>& ids, const Tensor<int64_t, D>& mask = {}) {
  llm::DecoderInput<float, D> in;
  in.input_ids = ids;
  in.attention_mask = mask;
  return in;
}

template <class D>
Outputs run_llm(const std::string& dir) {
  const io::SafeTensorsFile ref = reference(dir);
  const auto model = llm::Decoder<float, D>::from_pretrained(dir);
  autograd::NoGradGuard no_grad;
  Outputs out;
  if (ref.contains("input_ids"))
    out.floats["logits"] = host(model.forward(tokens(on<D, int64_t>(ref, "input_ids"))).logits.value());
  if (ref.contains("padded_input_ids") && ref.contains("padded_attention_mask")) {
    const Tensor<int64_t> mask = ref.get<int64_t>("padded_attention_mask");
    Tensor<float> logits =
        host(model.forward(tokens(on<D, int64_t>(ref, "padded_input_ids"), mask.template to_device<D>())).logits.value())
            .clone();
    // Positions the mask hides are undefined; the reference stores them as 0.
    const int64_t V = logits.size(2);
    for (int64_t b = 0; b < mask.size(0); ++b)
      for (int64_t s = 0; s < mask.size(1); ++s)
        if (mask.at(b, s) == 0) std::fill_n(logits.data() + (b * mask.size(1) + s) * V, V, 0.0f);
    out.floats["padded_logits"] = logits;
  }
  if (ref.contains("greedy_prompt") && ref.contains("greedy_output")) {
    // As the reference: greedy with the KV cache, no early stop, as many tokens as it generated.
    const Tensor<int64_t> prompt = ref.get<int64_t>("greedy_prompt");
    const int64_t S = prompt.size(1), total = ref.info("greedy_output").shape[1];
    generate::GenerationOptions o;
    o.max_new_tokens = total - S;
    const auto gen = generate::generate(model, generate::Prompt<float, D>{prompt.template to_device<D>(), {}, {}}, o);
    Tensor<int64_t> ids = Tensor<int64_t>::zeros({prompt.size(0), total});
    for (int64_t b = 0; b < prompt.size(0); ++b) {
      for (int64_t s = 0; s < S; ++s) ids.at(b, s) = prompt.at(b, s);
      const auto& t = gen[size_t(b)].tokens;
      for (size_t i = 0; i < t.size() && S + int64_t(i) < total; ++i) ids.at(b, S + int64_t(i)) = t[i];
    }
    out.ints["greedy_output"] = ids;
  }
  return out;
}

template <class D>
Outputs run_vision(const std::string& dir) {
  using Var = autograd::Variable<float, D>;
  const io::SafeTensorsFile ref = reference(dir);
  auto config = vision::ViT3DConfig::from_file(dir + "/config.json");
  auto make = [&](vision::PositionResample mode) {
    config.position_resample = mode;
    vision::ViT3D<float, D> vit(config);
    vit.load_file(dir + "/model.safetensors");
    return vit;
  };
  const auto by_size = make(vision::PositionResample::size), by_scale = make(vision::PositionResample::scale);
  autograd::NoGradGuard no_grad;
  Outputs out;
  if (ref.contains("input")) {
    const auto y = by_size.forward(Var(on<D, float>(ref, "input")));
    out.floats["output"] = host(y.tokens.value());
    if (y.cls.defined()) out.floats["cls"] = host(y.cls.value());
    out.floats["output_native_scale"] = host(by_scale.forward(Var(on<D, float>(ref, "input"))).tokens.value());
  }
  // Other volume sizes: every "input_<D>x<H>x<W>" in both position-table modes.
  for (const std::string& name : ref.names()) {
    if (!name.starts_with("input_")) continue;
    const std::string size = name.substr(6);
    out.floats["output_" + size + "_size"] = host(by_size.forward(Var(on<D, float>(ref, name))).tokens.value());
    out.floats["output_" + size + "_scale"] = host(by_scale.forward(Var(on<D, float>(ref, name))).tokens.value());
  }
  return out;
}

template <class D>
Outputs run_projector(const std::string& dir) {
  using Var = autograd::Variable<float, D>;
  const io::SafeTensorsFile ref = reference(dir);
  projector::Projector<float, D> p(projector::ProjectorConfig::from_file(dir + "/config.json"));
  p.load_file(dir + "/model.safetensors");
  autograd::NoGradGuard no_grad;
  std::vector<Var> taps;
  for (int l : p.feature_layers()) taps.emplace_back(on<D, float>(ref, "hidden." + std::to_string(l)));
  Outputs out;
  out.floats["output"] = host(p(Var(on<D, float>(ref, "input")), taps).value());
  return out;
}

// The paper's frozen-LLM mode on a loaded model: vision, projector, embed_tokens and lm_head train.
template <class D>
void freeze_llm_blocks(mllm::Model<float, D>& model) {
  for (const auto& p : model.llm().parameters().all()) {
    autograd::Variable<float, D> v = p;  // shares the parameter's state
    v.set_requires_grad(p.name() == "model.embed_tokens.weight" || p.name() == "lm_head.weight");
  }
}

template <class D>
Outputs run_mllm(const std::string& dir) {
  const io::SafeTensorsFile ref = reference(dir);
  auto model = mllm::Model<float, D>::from_pretrained(dir);
  freeze_llm_blocks(model);
  Outputs out;
  for (const std::string tag : {"ct", "ct_mask"}) {
    if (!ref.contains(tag + ".input_ids")) continue;
    const bool with_mask = tag == "ct_mask";
    model.set_segmentation_mask(with_mask);  // the same model, reading one volume or two
    mllm::MllmInput<float, D> in;
    in.input_ids = on<D, int64_t>(ref, tag + ".input_ids");
    in.ct = on<D, float>(ref, "ct");
    if (with_mask) in.mask = on<D, float>(ref, "mask");
    if (ref.contains(tag + ".labels")) in.labels = on<D, int64_t>(ref, tag + ".labels");
    model.parameters().zero_grad();
    const auto y = model.forward(in);
    out.floats[tag + ".logits"] = host(y.logits.value());
    if (y.loss.defined()) {
      out.floats[tag + ".loss"] = host(y.loss.value());
      y.loss.backward();
      const auto& params = model.parameters();
      for (size_t i = 0; i < params.size(); ++i)
        if (params.all()[i].requires_grad() && params.all()[i].grad().defined())
          out.floats[tag + ".grad." + params.name_of(i)] = host(params.all()[i].grad());
    }
  }
  return out;
}

// FineTune::adapters name -> peft's in-model name, as the reference stores its gradients:
// <module>.lora_A.weight -> base_model.model.<module>.lora_A.default.weight,
// <module>.lora_magnitude_vector -> base_model.model.<module>.lora_magnitude_vector.default.weight.
inline std::string peft_parameter_name(const std::string& adapter) {
  for (const std::string part : {".lora_A.weight", ".lora_B.weight"})
    if (adapter.ends_with(part))
      return io::detail::kPeftPrefix + adapter.substr(0, adapter.size() - 7) + ".default.weight";
  CTMLLM_CHECK(adapter.ends_with(".lora_magnitude_vector"), "fixture runner: unexpected adapter tensor '", adapter, "'");
  return io::detail::kPeftPrefix + adapter + ".default.weight";
}

// A fixture may share another's base model; its reference then names it in the "base" metadata,
// relative to the fixtures root (DIR/../..).
inline std::string lora_base_dir(const std::string& dir, const io::SafeTensorsFile& ref) {
  namespace fs = std::filesystem;
  if (fs::is_directory(dir + "/base")) return dir + "/base";
  const auto it = ref.metadata().find("base");
  CTMLLM_CHECK(it != ref.metadata().end(), dir, ": no base/ folder and no \"base\" in the reference's metadata");
  return (fs::path(dir) / ".." / ".." / it->second).lexically_normal().string();
}

template <class D>
Outputs run_lora(const std::string& dir) {
  const io::SafeTensorsFile ref = reference(dir);
  auto model = llm::Decoder<float, D>::from_pretrained(lora_base_dir(dir, ref));
  const auto ft = train::load_peft_adapter(model, dir + "/adapter", /*trainable=*/true);
  const Tensor<int64_t, D> ids = on<D, int64_t>(ref, "input_ids");
  Outputs out;
  const auto logits = model.forward(tokens(ids)).logits;
  out.floats["logits"] = host(logits.value());
  if (ref.contains("labels")) {
    const auto loss = llm::causal_lm_loss(logits, on<D, int64_t>(ref, "labels"));
    out.floats["loss"] = host(loss.value());
    loss.backward();
    for (const auto& p : ft.adapters.all())
      if (p.grad().defined()) out.floats["grad." + peft_parameter_name(p.name())] = host(p.grad());
  }
  autograd::NoGradGuard no_grad;
  train::merge_adapters(model);
  out.floats["merged_logits"] = host(model.forward(tokens(ids)).logits.value());
  return out;
}

// torch.optim.AdamW with clip_grad_norm_ before each step, over every parameter of the base.
template <class D>
Outputs run_train(const std::string& dir) {
  using Var = autograd::Variable<float, D>;
  const io::SafeTensorsFile ref = reference(dir);
  const std::string hp_path = dir + "/hparams.json";
  const nlohmann::json hp_json = io::read_json_file(hp_path);
  const io::JsonFields hp(hp_json, hp_path);
  const nlohmann::json& betas = hp.raw("betas");
  CTMLLM_CHECK(betas.is_array() && betas.size() == 2 && betas[0].is_number() && betas[1].is_number(), hp_path,
               ": 'betas' must be a list of two numbers, got ", betas.dump());
  const int64_t steps = hp.integer("steps");
  CTMLLM_CHECK(steps >= 1, hp_path, ": 'steps' must be >= 1, got ", steps);
  const double clip = hp.number("clip_grad_norm", 0.0);
  auto model = llm::Decoder<float, D>::from_pretrained(dir + "/base");
  const std::vector<Var> params = model.parameters().all();
  train::AdamW<float, D> opt(params, {.lr = hp.number("lr"), .beta1 = betas[0].get<double>(), .beta2 = betas[1].get<double>(),
                                   .eps = hp.number("eps"), .weight_decay = hp.number("weight_decay")});
  const Tensor<int64_t, D> ids = on<D, int64_t>(ref, "input_ids"), labels = on<D, int64_t>(ref, "labels");
  Outputs out;
  for (int64_t step = 0; step < steps; ++step) {
    opt.zero_grad();
    const Var loss = llm::causal_lm_loss(model.forward(tokens(ids)).logits, labels);
    loss.backward();
    const double norm = clip > 0 ? train::clip_grad_norm(params, clip) : train::grad_norm(params);
    out.floats["loss." + std::to_string(step)] = host(loss.value());
    out.floats["grad_norm." + std::to_string(step)] = Tensor<float>::full({1}, float(norm));
    // The reference stores grad0.* after clip_grad_norm_ (its metadata note says "unclipped", but
    // its values are the clipped ones): taken here after clipping too.
    if (step == 0)
      for (const Var& p : params) out.floats["grad0." + p.name()] = host(p.grad()).clone();
    opt.step();
  }
  for (const Var& p : params) out.floats["final." + p.name()] = host(p.value());
  return out;
}

}  // namespace detail

template <class D = Cpu>
Outputs run(const std::string& kind, const std::string& dir) {
  if (kind == "llm") return detail::run_llm<D>(dir);
  if (kind == "vision") return detail::run_vision<D>(dir);
  if (kind == "projector") return detail::run_projector<D>(dir);
  if (kind == "mllm") return detail::run_mllm<D>(dir);
  if (kind == "lora") return detail::run_lora<D>(dir);
  if (kind == "train") return detail::run_train<D>(dir);
  fail("ctmllm_fixture: unknown kind '", kind, "' (llm, vision, projector, mllm, lora, train)");
}

}  // namespace ctmllm::fixture_runner
