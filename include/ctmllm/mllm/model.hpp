#pragma once
// mllm::Model: the 3D MLLM of the paper — vision::ViT3D → projector → llm::Decoder — assembled from
// one config (config.hpp), with the tokenizer when the folder has one.
//
//   auto model = mllm::Model<float>::from_pretrained("runs/demo/model");
//   auto out = model.forward({.input_ids = ids, .ct = ct, .labels = labels});   // logits, loss
//   model.save_pretrained("runs/demo/model-2");
//
// Visual tokens: the CT (and the segmentation mask, when the config uses it) go through the ViT and
// projector in one batch; each volume gives tokens_per_volume() tokens (AnyRes: the global view,
// then each crop), the CT's first. They replace the embeddings of the <im_patch> ids of each row
// (or the fixed positions after BOS, the published rule), and the LLM reads the result as
// inputs_embeds. Everything is autograd: the same forward trains (see train/finetune.hpp for the
// paper's fine-tuning modes) and, under autograd::NoGradGuard, runs inference.
//
// The projector is the config's built-in one, or a user module (projector::CustomProjector)
// attached with set_projector, for projector ablations; see docs/MLLM.md.
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/interpolate.hpp"
#include "ctmllm/autograd/shape_ops.hpp"
#include "ctmllm/io/safetensors.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/mllm/config.hpp"
#include "ctmllm/mllm/splice.hpp"
#include "ctmllm/projector/custom.hpp"
#include "ctmllm/projector/projector.hpp"
#include "ctmllm/text/tokenizer.hpp"
#include "ctmllm/vision/vit3d.hpp"

namespace ctmllm::mllm {

template <class T, class D = Cpu>
struct MllmInput {
  Tensor<int64_t, D> input_ids;       // [B, S]: visual_tokens() <im_patch> ids per row
  Tensor<T, D> ct;                    // [B, 1, D, H, W], preprocessed to config().input_size()
  Tensor<T, D> mask;                  // [B, 1, D, H, W]: the segmentation-mask volume, when the config uses it
  Tensor<int64_t, D> attention_mask;  // [B, S], 1 = real token; undefined = no padding
  Tensor<int64_t, D> labels;          // [B, S] with −100 outside the answer; undefined = no loss
};

template <class T, class D = Cpu>
struct MllmOutput {
  autograd::Variable<T, D> logits;  // [B, S, V]
  autograd::Variable<T, D> loss;    // [1], when labels were given
};

template <class T, class D = Cpu>
class Model {
 public:
  using Var = autograd::Variable<T, D>;
  using CustomProjectorPtr = std::shared_ptr<const projector::CustomProjector<T, D>>;

  // A model whose vision encoder and projector are zero-filled (init() or load them) around a
  // decoder that already has its weights.
  Model(const MllmConfig& config, llm::Decoder<T, D> decoder)
      : config_(config), vision_(config.vision), projector_(config.projector), llm_(std::move(decoder)) {
    CTMLLM_CHECK(config_.projector.out_dim == llm_.hidden_size(), "mllm::Model: the projector's out_dim ",
                 config_.projector.out_dim, " differs from the LLM's hidden_size ", llm_.hidden_size());
    CTMLLM_CHECK(config_.image_token_id < llm_.vocab_size(), "mllm::Model: image_token_id ", config_.image_token_id,
                 " is outside the LLM's vocabulary of ", llm_.vocab_size());
    register_parameters();
  }

  // A folder laid out as config.hpp describes (what save_pretrained writes). A folder saved with a
  // custom projector loads without its projector weights and encodes nothing until the module is
  // attached: use the overload below.
  static Model from_pretrained(const std::string& folder, const llm::DecoderOptions& options = {}) {
    const std::filesystem::path dir(folder);
    const MllmConfig config = MllmConfig::from_file((dir / "config.json").string());
    const std::string llm_dir = (dir / config.llm).string();
    llm::Decoder<T, D> decoder(io::load_llm_config(llm_dir), llm::CheckpointWeights(llm_dir), options);
    Model m(config, std::move(decoder));
    const std::string tok_path = (dir / (config.tokenizer.empty() ? config.llm : config.tokenizer)).string();
    if (has_tokenizer(tok_path)) m.set_tokenizer(text::Tokenizer::from_file(tok_path), tok_path);
    m.vision_.load_file((dir / config.vision_weights).string(), config.vision_weights_prefix);
    if (!config.custom_projector)
      m.projector_.load_file((dir / config.projector_weights).string(), config.projector_weights_prefix);
    return m;
  }
  // A folder saved with a custom projector: attaches `projector` (a module of the name and token
  // count the folder's config records, built by the caller as before saving) and loads its weights.
  static Model from_pretrained(const std::string& folder, CustomProjectorPtr projector,
                               const llm::DecoderOptions& options = {}) {
    Model m = from_pretrained(folder, options);
    const auto& saved = m.config_.custom_projector;
    CTMLLM_CHECK(saved, folder, ": the model was saved with the built-in projector, not a custom one (load it without one)");
    CTMLLM_CHECK(projector && projector->name() == saved->name && projector->num_tokens() == saved->num_tokens, folder,
                 ": the model was saved with the custom projector '", saved->name, "' making ", saved->num_tokens,
                 " tokens; the module given is ", projector ? "'" + projector->name() + "' making " +
                 std::to_string(projector->num_tokens()) + " tokens" : std::string("null"));
    m.set_projector(std::move(projector));
    const std::filesystem::path weights = std::filesystem::path(folder) / m.config_.projector_weights;
    nn::load_parameters(m.custom_->parameters(), io::CheckpointDir(weights.string()),
                        [&m](const std::string& n) { return m.config_.projector_weights_prefix + n; });
    return m;
  }

  const MllmConfig& config() const { return config_; }
  const vision::ViT3D<T, D>& vision() const { return vision_; }
  vision::ViT3D<T, D>& vision() { return vision_; }
  // The built-in projector; an Error when a custom one replaces it.
  const projector::Projector<T, D>& projector() const {
    check_builtin_projector();
    return projector_;
  }
  projector::Projector<T, D>& projector() {
    check_builtin_projector();
    return projector_;
  }
  bool uses_custom_projector() const { return config_.custom_projector.has_value(); }
  // The attached custom projector; an Error when there is none.
  const projector::CustomProjector<T, D>& custom_projector() const {
    CTMLLM_CHECK(custom_, "mllm::Model: no custom projector is attached",
                 uses_custom_projector() ? " (the config names '" + config_.custom_projector->name + "': set_projector)" : "");
    return *custom_;
  }
  // The parameters of the projector in use, built-in or custom.
  const autograd::Parameters<T, D>& projector_parameters() const {
    return uses_custom_projector() ? custom_projector().parameters() : projector_.parameters();
  }

  // Replaces the projector by a user module (a projector ablation): the config's token count
  // follows num_tokens() and records name(), parameters() lists the module's weights under
  // "projector.<name>", save_pretrained writes them to projector.safetensors. The built-in
  // projector stays in the config (and the folder's config.json) but is no longer used.
  void set_projector(CustomProjectorPtr projector) {
    CTMLLM_CHECK(projector, "mllm::Model::set_projector: the projector is null");
    CTMLLM_CHECK(!projector->name().empty() && projector->num_tokens() >= 1, "mllm::Model::set_projector: the projector '",
                 projector->name(), "' needs a non-empty name and num_tokens() >= 1, got ", projector->num_tokens());
    config_.custom_projector = CustomProjectorInfo{projector->name(), projector->num_tokens()};
    custom_ = std::move(projector);
    params_ = {};
    register_parameters();
  }
  const llm::Decoder<T, D>& llm() const { return llm_; }
  llm::Decoder<T, D>& llm() { return llm_; }
  bool has_tokenizer() const { return tokenizer_.has_value(); }
  const text::Tokenizer& tokenizer() const {
    CTMLLM_CHECK(tokenizer_, "mllm::Model: this model has no tokenizer (its folder holds no tokenizer.json or .model)");
    return *tokenizer_;
  }
  // Every parameter held in T under "vision.<name>", "projector.<name>", "llm.<Hugging Face name>".
  const autograd::Parameters<T, D>& parameters() const { return params_; }
  autograd::Parameters<T, D>& parameters() { return params_; }

  // Whether the segmentation mask goes in as a second volume (the config's segmentation_mask).
  void set_segmentation_mask(bool on) { config_.segmentation_mask = on; }

  // Fresh vision encoder and built-in projector weights (training from scratch); a custom
  // projector's weights are its own to initialise.
  void init(Rng& rng) {
    vision_.init(rng);
    if (!uses_custom_projector()) projector_.init(rng);
  }

  // Adds tokens to the tokenizer as special tokens (tokens it knows keep their ids); the LLM's vocabulary grows to hold them, the
  // new embedding and lm_head rows starting as the mean of the old ones. Returns their ids.
  std::vector<int32_t> add_special_tokens(const std::vector<std::string>& tokens) {
    CTMLLM_CHECK(tokenizer_, "mllm::Model::add_special_tokens: the model has no tokenizer");
    std::vector<int32_t> ids;
    for (const std::string& t : tokens) {
      const bool known = tokenizer_->token_to_id(t).has_value();
      ids.push_back(tokenizer_->add_special_tokens({t}).front());
      if (!known) config_.added_special_tokens.push_back(t);
    }
    const int64_t needed = int64_t(tokenizer_->vocab_size());
    if (needed > llm_.vocab_size()) llm_.resize_vocab(needed);
    return ids;
  }

  // volume [B, C, D, H, W] at config().input_size() -> [B, tokens_per_volume(), H]
  Var encode(const Var& volume) const { return encode_views(views_of(volume), volume.size(0)); }

  // The visual tokens of a batch: the CT's, then the mask's -> [B, visual_tokens(), H]. Both volumes
  // go through the encoder as one batch.
  Var visual_tokens(const Tensor<T, D>& ct, const Tensor<T, D>& mask = {}) const {
    check_volume(ct, "ct");
    CTMLLM_CHECK(mask.defined() == config_.segmentation_mask, "mllm::Model: this model ",
                 config_.segmentation_mask ? "takes a segmentation mask beside the CT" : "takes no segmentation mask");
    if (!mask.defined()) return encode(Var(ct));
    check_volume(mask, "mask");
    CTMLLM_CHECK(mask.shape() == ct.shape(), "mllm::Model: the mask ", mask.describe(), " differs from the CT ", ct.describe());
    const int64_t B = ct.size(0);
    const Var both = encode(autograd::concat(std::vector<Var>{Var(ct), Var(mask)}, 0));  // [2B, n, H]
    const int64_t n = both.size(1), H = both.size(2);
    // [2, B, n, H] -> [B, 2n, H]: each row's CT tokens, then its mask tokens.
    return autograd::reshape(autograd::permute(autograd::reshape(both, {2, B, n, H}), {1, 0, 2, 3}), {B, 2 * n, H});
  }

  // Token embeddings of ids with the visual tokens spliced in -> inputs_embeds [B, S, H].
  Var embed(const Tensor<int64_t, D>& ids, const Var& visual, const Tensor<int64_t, D>& attention_mask = {}) const {
    check_rank(ids, 2, "mllm::Model", "input_ids");
    CTMLLM_CHECK(visual.rank() == 3 && visual.size(0) == ids.size(0), "mllm::Model: visual tokens ",
                 visual.value().describe(), " do not match input_ids ", ids.describe());
    const Tensor<int64_t, Cpu> host = ids.template to_device<Cpu>();
    const VisualPositions positions =
        config_.placement == VisualPlacement::placeholders
            ? placeholder_positions(host, config_.image_token_id, visual.size(1))
            : positions_after_bos(ids.shape(), attention_mask.defined() ? attention_mask.template to_device<Cpu>()
                                                                        : Tensor<int64_t, Cpu>(),
                                  visual.size(1));
    return splice_visual_tokens(llm_.embed(ids), visual, positions);
  }

  MllmOutput<T, D> forward(const MllmInput<T, D>& in) const {
    const Var visual = visual_tokens(in.ct, in.mask);
    llm::DecoderInput<T, D> d;
    d.inputs_embeds = embed(in.input_ids, visual, in.attention_mask);
    d.attention_mask = in.attention_mask;
    MllmOutput<T, D> out{llm_.forward(d).logits, {}};
    if (in.labels.defined()) out.loss = llm::causal_lm_loss(out.logits, in.labels);
    return out;
  }

  // Writes the folder from_pretrained reads: config.json, vision.safetensors, projector.safetensors,
  // llm/ (config.json, model.safetensors, and the tokenizer files the model was loaded with).
  void save_pretrained(const std::string& folder) const {
    const std::filesystem::path dir(folder);
    std::filesystem::create_directories(dir / "llm");
    MllmConfig c = config_;
    c.llm = "llm";
    c.tokenizer = tokenizer_source_.empty() ? "" : "llm";
    c.vision_weights = "vision.safetensors";
    c.projector_weights = "projector.safetensors";
    c.vision_weights_prefix = "";
    c.projector_weights_prefix = "";
    write_parameters(vision_.parameters(), (dir / c.vision_weights).string());
    write_parameters(projector_parameters(), (dir / c.projector_weights).string());
    io::SafeTensorsWriter w;
    for (const auto& p : llm_.parameters().all()) w.add(p.name(), p.value().template to_device<Cpu>());
    llm_.for_each_dense([&w](const std::string& module, const llm::Dense<T, D>& d) {
      if (d.weight_bf16.defined()) w.add(module + ".weight", d.weight_bf16.template to_device<Cpu>());
    });
    if (llm_.embed_tokens().weight_bf16.defined())
      w.add("model.embed_tokens.weight", llm_.embed_tokens().weight_bf16.template to_device<Cpu>());
    w.set_metadata("format", "pt");
    w.write((dir / "llm" / "model.safetensors").string());
    write_json(io::llm_config_to_json(llm_.config()), (dir / "llm" / "config.json").string());
    for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"}) {
      const std::filesystem::path from = std::filesystem::path(tokenizer_source_) / name;
      if (!tokenizer_source_.empty() && std::filesystem::exists(from) &&
          !std::filesystem::equivalent(from.parent_path(), dir / "llm"))
        std::filesystem::copy_file(from, dir / "llm" / name, std::filesystem::copy_options::overwrite_existing);
    }
    write_json(c.to_json(), (dir / "config.json").string());
  }

  // The tokenizer, read from `source_folder` (whose tokenizer files save_pretrained copies); the
  // config's added special tokens are added again, so their ids are the ones the model was saved with.
  void set_tokenizer(text::Tokenizer tokenizer, const std::string& source_folder) {
    tokenizer_ = std::move(tokenizer);
    tokenizer_source_ = source_folder;
    tokenizer_->add_special_tokens(config_.added_special_tokens);
    CTMLLM_CHECK(int64_t(tokenizer_->vocab_size()) <= llm_.vocab_size(), "mllm::Model: the tokenizer in ", source_folder,
                 " has ", tokenizer_->vocab_size(), " tokens, more than the LLM's vocabulary of ", llm_.vocab_size(),
                 " (add tokens with add_special_tokens, which grows the LLM)");
  }

 private:
  static bool has_tokenizer(const std::string& path) {
    return std::filesystem::exists(std::filesystem::path(path) / "tokenizer.json") ||
           std::filesystem::exists(std::filesystem::path(path) / "tokenizer.model");
  }

  void register_parameters() {
    for (const auto& p : vision_.parameters().all()) params_.share("vision." + p.name(), p);
    // A loaded folder's custom projector has no parameters to list until it is attached.
    if (custom_ || !uses_custom_projector())
      for (const auto& p : projector_parameters().all()) params_.share("projector." + p.name(), p);
    for (const auto& p : llm_.parameters().all()) params_.share("llm." + p.name(), p);
  }

  void check_builtin_projector() const {
    CTMLLM_CHECK(!uses_custom_projector(), "mllm::Model: the projector is the custom '", config_.custom_projector->name,
                 "', not a built-in one (see custom_projector())");
  }

  void check_volume(const Tensor<T, D>& v, const char* what) const {
    CTMLLM_CHECK(v.defined(), "mllm::Model: the ", what, " volume is missing");
    const auto size = config_.input_size();
    CTMLLM_CHECK(v.rank() == 5 && v.size(1) == config_.vision.in_channels && v.size(2) == size[0] &&
                     v.size(3) == size[1] && v.size(4) == size[2],
                 "mllm::Model: the ", what, " must be [B, ", config_.vision.in_channels, ", ", size[0], ", ", size[1],
                 ", ", size[2], "] (preprocessed to the model's input size), got ", v.describe());
  }

  // The encoder's views of a volume: itself, or the AnyRes global view and crops.
  std::vector<Var> views_of(const Var& volume) const {
    if (!config_.anyres.enabled()) return {volume};
    const auto& img = config_.vision.img_size;
    std::vector<Var> views;
    if (config_.anyres.global_view) {
      ops::InterpolateOptions area;
      area.mode = ops::InterpolateMode::area;
      area.size = img;
      views.push_back(autograd::interpolate(volume, area));
    }
    const auto& n = config_.anyres.crops;
    for (int64_t i = 0; i < n[0]; ++i)
      for (int64_t j = 0; j < n[1]; ++j)
        for (int64_t k = 0; k < n[2]; ++k)
          views.push_back(autograd::slice(autograd::slice(autograd::slice(volume, 2, i * img[0], (i + 1) * img[0]), 3,
                                                          j * img[1], (j + 1) * img[1]),
                                          4, k * img[2], (k + 1) * img[2]));
    return views;
  }

  // V views of B volumes through the encoder as one batch of V·B -> [B, V·n, H]
  Var encode_views(const std::vector<Var>& views, int64_t B) const {
    const Var x = views.size() == 1 ? views[0] : autograd::concat(views, 0);
    const Var tokens = uses_custom_projector() ? project_custom(x) : project_builtin(x);  // [V·B, n, H]
    if (views.size() == 1) return tokens;
    const int64_t V = int64_t(views.size()), n = tokens.size(1), H = tokens.size(2);
    return autograd::reshape(autograd::permute(autograd::reshape(tokens, {V, B, n, H}), {1, 0, 2, 3}), {B, V * n, H});
  }

  Var project_builtin(const Var& x) const {
    const auto feats = vision_.forward(x, projector_.feature_layers());
    return projector_(feats.tokens, feats.hidden);
  }
  Var project_custom(const Var& x) const {
    const projector::CustomProjector<T, D>& p = custom_projector();
    const auto feats = vision_.forward(x, p.feature_layers());
    const Var tokens = p(feats.tokens, feats.hidden);
    CTMLLM_CHECK(tokens.defined() && tokens.rank() == 3 && tokens.size(0) == x.size(0) &&
                     tokens.size(1) == p.num_tokens() && tokens.size(2) == llm_.hidden_size(),
                 "mllm::Model: the custom projector '", p.name(), "' must give [", x.size(0), ", ", p.num_tokens(), ", ",
                 llm_.hidden_size(), "] for ", feats.tokens.value().describe(), ", got ",
                 tokens.defined() ? tokens.value().describe() : std::string("nothing"));
    return tokens;
  }

  static void write_parameters(const autograd::Parameters<T, D>& params, const std::string& file) {
    io::SafeTensorsWriter w;
    for (const auto& p : params.all()) w.add(p.name(), p.value().template to_device<Cpu>());
    w.write(file);
  }
  static void write_json(const nlohmann::json& j, const std::string& file) {
    std::ofstream out(file, std::ios::trunc);
    CTMLLM_CHECK(out.good(), file, ": cannot open for writing");
    out << j.dump(2) << "\n";
    CTMLLM_CHECK(out.good(), file, ": write failed");
  }

  MllmConfig config_;
  vision::ViT3D<T, D> vision_;
  projector::Projector<T, D> projector_;
  CustomProjectorPtr custom_;  // in place of projector_ when set
  llm::Decoder<T, D> llm_;
  std::optional<text::Tokenizer> tokenizer_;
  std::string tokenizer_source_;
  autograd::Parameters<T, D> params_;
};

}  // namespace ctmllm::mllm
