#pragma once
// llm::Decoder: a decoder-only causal LM (Llama, Mistral, Phi-3, Qwen2, Gemma) configured at run
// time from a Hugging Face config.json, with one block implementation for every family
// (families.hpp holds the per-family switches).
//
//   h = embed(ids) or inputs_embeds                               [B, S, H]  (× √H for Gemma)
//   each layer:  h += o_proj(attention(rope(q), rope(k), v))      pre-norm, causal, GQA/MQA
//                h += down(act(gate(x)) · up(x)),  x = rms_norm(h)
//   logits = lm_head(rms_norm(h))                                 [B, S, V]
//
// One code path over autograd::Variable: training records the graph, inference runs the same calls
// under autograd::NoGradGuard (nothing is recorded) and may use a KvCache and bf16 weights.
// Padding: attention_mask [B, S] (1 = real token) hides pad keys from every query; position_ids
// default to cumsum(mask) − 1 continuing from the cache, so a left-padded row computes exactly what
// it computes alone. Queries at pad positions see nothing and output undefined values (zeros here).
#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ctmllm/autograd/activation.hpp"
#include "ctmllm/autograd/attention.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/parameters.hpp"
#include "ctmllm/autograd/rope.hpp"
#include "ctmllm/autograd/shape_ops.hpp"
#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/llm/families.hpp"
#include "ctmllm/llm/kv_cache.hpp"
#include "ctmllm/llm/weights.hpp"
#include "ctmllm/nn/norm.hpp"

namespace ctmllm::llm {

struct DecoderOptions {
  Storage storage = Storage::compute;  // Storage::bf16: frozen bf16 matrices for inference
};

template <class T, class D = Cpu>
struct DecoderInput {
  Tensor<int64_t, D> input_ids;            // [B, S], or
  autograd::Variable<T, D> inputs_embeds;  // [B, S, H]: token embeddings with injected visual tokens
  Tensor<int64_t, D> attention_mask;       // [B, S]: 1 = real token, 0 = pad; undefined = all real
  Tensor<int64_t, D> position_ids;         // [B, S]; undefined = cumsum(mask) − 1 after the cache's tokens
  KvCache<T, D>* cache = nullptr;          // keys/values are appended to it and earlier ones attended to
  int64_t logits_to_keep = 0;              // logits of the last n positions only; 0 = all
  bool output_hidden_states = false;
};

template <class T, class D = Cpu>
struct DecoderOutput {
  autograd::Variable<T, D> logits;  // [B, S (or logits_to_keep), V]
  // When asked: L + 1 tensors [B, S, H] as Hugging Face returns them: the (scaled) embeddings, then
  // each layer's output, the last one after the final norm.
  std::vector<autograd::Variable<T, D>> hidden_states;
};

template <class T, class D = Cpu>
struct DecoderLayer {
  nn::RMSNorm<T, D> input_norm, post_attention_norm;
  Dense<T, D> q_proj, k_proj, v_proj, qkv_proj, o_proj;     // qkv_proj when the family fuses them
  Dense<T, D> gate_proj, up_proj, gate_up_proj, down_proj;  // gate_up_proj likewise
  // q, k, v's (gate, up's) weights and biases as one frozen matrix, whose row blocks they are views
  // of (Loader::packed), for inference's one GEMM (Decoder::project); undefined where not packed.
  Dense<T, D> qkv_packed, gate_up_packed;
};

template <class T, class D = Cpu>
class Decoder {
 public:
  using Var = autograd::Variable<T, D>;

  // config.json and the weights (model.safetensors, a sharded index, or pytorch_model.bin) of a
  // Hugging Face folder.
  static Decoder from_pretrained(const std::string& folder, const DecoderOptions& options = {}) {
    return Decoder(io::load_llm_config(folder), CheckpointWeights(folder), options);
  }

  // Builds the network of `config` and takes every weight, by Hugging Face name, from `source`
  // (CheckpointWeights, RandomWeights).
  template <class Source>
  Decoder(const io::LlmConfig& config, const Source& source, const DecoderOptions& options = {})
      : config_(config), family_(family_of(config)), options_(options) {
    if (options.storage == Storage::bf16) detail::check_bf16_supported<T, D>();
    const int64_t H = config.hidden_size, I = config.intermediate_size, hd = config.head_dim;
    const int64_t q_out = config.num_attention_heads * hd, kv_out = config.num_key_value_heads * hd;
    Loader<Source> load{source, options.storage, params_};
    embed_ = load.embedding("model.embed_tokens", config.vocab_size, H);
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      DecoderLayer<T, D> L;
      L.input_norm = load.norm(p + "input_layernorm", H, config.rms_norm_eps, family_.norm_weight_offset);
      if (family_.fused_qkv) {
        L.qkv_proj = load.dense(p + "self_attn.qkv_proj", q_out + 2 * kv_out, H, family_.qkv_bias);
      } else {
        L.qkv_packed = load.packed({{p + "self_attn.q_proj", q_out}, {p + "self_attn.k_proj", kv_out},
                                    {p + "self_attn.v_proj", kv_out}},
                                   H, family_.qkv_bias, {&L.q_proj, &L.k_proj, &L.v_proj});
      }
      L.o_proj = load.dense(p + "self_attn.o_proj", H, q_out, family_.o_bias);
      L.post_attention_norm =
          load.norm(p + "post_attention_layernorm", H, config.rms_norm_eps, family_.norm_weight_offset);
      if (family_.fused_gate_up) {
        L.gate_up_proj = load.dense(p + "mlp.gate_up_proj", 2 * I, H, family_.mlp_bias);
      } else {
        L.gate_up_packed = load.packed({{p + "mlp.gate_proj", I}, {p + "mlp.up_proj", I}}, H, family_.mlp_bias,
                                       {&L.gate_proj, &L.up_proj});
      }
      L.down_proj = load.dense(p + "mlp.down_proj", H, I, family_.mlp_bias);
      layers_.push_back(std::move(L));
    }
    norm_ = load.norm("model.norm", H, config.rms_norm_eps, family_.norm_weight_offset);
    lm_head_ = family_.tied_embeddings ? embed_.tied_head() : load.dense("lm_head", config.vocab_size, H, false);

    rope_.theta = config.rope.theta;
    rope_.rotary_dim = config.rotary_dim();
    rope_.scaling = config.rope.type == io::RopeType::Llama3   ? ops::RopeScaling::llama3
                    : config.rope.type == io::RopeType::Linear ? ops::RopeScaling::linear
                                                               : ops::RopeScaling::none;
    rope_.factor = config.rope.factor;
    rope_.low_freq_factor = config.rope.low_freq_factor;
    rope_.high_freq_factor = config.rope.high_freq_factor;
    rope_.original_max_position_embeddings = config.rope.original_max_position_embeddings;
    // Gemma: normalizer = torch.tensor(√H, dtype=hidden.dtype), i.e. rounded to the weights' dtype.
    const double s = std::sqrt(double(H));
    embed_scale_ = options.storage == Storage::bf16 ? double(float(bf16(float(s)))) : double(cast<T>(s));
  }

  const io::LlmConfig& config() const { return config_; }
  const Family& family() const { return family_; }
  Storage storage() const { return options_.storage; }
  // The tensors held in T, under their Hugging Face names (bf16-stored matrices are not here).
  autograd::Parameters<T, D>& parameters() { return params_; }
  const autograd::Parameters<T, D>& parameters() const { return params_; }
  const TokenEmbedding<T, D>& embed_tokens() const { return embed_; }
  const Dense<T, D>& lm_head() const { return lm_head_; }
  int64_t vocab_size() const { return config_.vocab_size; }
  int64_t hidden_size() const { return config_.hidden_size; }

  // Every Dense layer with its Hugging Face module name ("model.layers.0.self_attn.q_proj", ...,
  // "lm_head"), in checkpoint order: for adapters, saving and weight surgery. A tied lm_head is the
  // embedding, not visited.
  template <class F>
  void for_each_dense(F&& f) {
    visit_dense(*this, f);
  }
  template <class F>
  void for_each_dense(F&& f) const {
    visit_dense(*this, f);
  }

  // Grows the vocabulary to `vocab` rows (tokens added to the tokenizer): the new rows of
  // embed_tokens and of an untied lm_head start as the mean of the old rows (PAPER.md step 4).
  void resize_vocab(int64_t vocab) {
    CTMLLM_CHECK(vocab >= config_.vocab_size, "Decoder::resize_vocab: the vocabulary can only grow (", config_.vocab_size,
                 " -> ", vocab, ")");
    if (vocab == config_.vocab_size) return;
    grow_rows(embed_.weight, embed_.weight_bf16, vocab);
    if (family_.tied_embeddings) lm_head_ = embed_.tied_head();
    else grow_rows(lm_head_.weight, lm_head_.weight_bf16, vocab);
    config_.vocab_size = vocab;
  }

  // Token embeddings [B, S, H] as embed_tokens gives them (unscaled): the MLLM splices visual tokens
  // into these and passes the result as inputs_embeds.
  Var embed(const Tensor<int64_t, D>& ids) const { return embed_(ids); }

  // A cache for `batch` rows of up to `max_length` tokens.
  KvCache<T, D> make_cache(int64_t batch, int64_t max_length) const {
    return KvCache<T, D>(config_.num_hidden_layers, batch, config_.num_key_value_heads, config_.head_dim, max_length);
  }

  DecoderOutput<T, D> forward(const DecoderInput<T, D>& in) const {
    CTMLLM_CHECK(in.logits_to_keep >= 0, "Decoder::forward: logits_to_keep must be >= 0, got ", in.logits_to_keep);
    Var h = input_embeddings(in);
    const int64_t B = h.size(0), S = h.size(1);
    KvCache<T, D>* cache = in.cache;
    const int64_t past = cache ? cache->length() : 0;
    if (cache) check_cache(*cache, B, "Decoder::forward");
    check_context(past + S);
    const std::vector<uint8_t> keep = keep_flags(in.attention_mask, B, S);
    const Tensor<int64_t, D> positions = position_ids(in, keep, B, S);
    Tensor<uint8_t, D> key_mask;  // [B, past + S], undefined when every key is real
    if (cache) {
      cache->reserve(S, keep);
      key_mask = cache->keep_mask(past + S);
    } else if (std::find(keep.begin(), keep.end(), uint8_t(0)) != keep.end()) {
      key_mask = Tensor<uint8_t, Cpu>::from(std::span<const uint8_t>(keep), {B, S}).template to_device<D>();
    }

    DecoderOutput<T, D> out;
    if (in.output_hidden_states) out.hidden_states.push_back(h);
    h = layers_forward(h, positions, key_mask, CacheUse{cache, nullptr},
                       in.output_hidden_states ? &out.hidden_states : nullptr);
    if (cache) cache->advance(S);
    if (in.logits_to_keep > 0 && in.logits_to_keep < S) h = autograd::slice(h, 1, S - in.logits_to_keep, S);
    out.logits = lm_head_(h);
    return out;
  }

  // One decode step on fixed device buffers, for StaticDecodeStep: ids and positions [B, 1], slot [1]
  // (the cache slot every row's new key and value go to), keep [B, max_length] (1 = a slot the new
  // token attends to; 0 for the others, every slot not written yet among them). Attention runs over
  // all max_length slots under keep. It leaves the cache's host bookkeeping alone (the caller reserves
  // the slot before and advances after) and copies nothing between host and device, so a CUDA graph
  // can capture it. Returns the logits [B, 1, V].
  Var decode_fixed(const Tensor<int64_t, D>& ids, const Tensor<int64_t, D>& positions, const Tensor<int64_t, D>& slot,
                   const Tensor<uint8_t, D>& keep, KvCache<T, D>& cache) const {
    check_rank(ids, 2, "Decoder::decode_fixed", "ids");
    const int64_t B = ids.size(0);
    check_shape(ids, Shape{B, 1}, "Decoder::decode_fixed", "ids");
    check_shape(positions, Shape{B, 1}, "Decoder::decode_fixed", "positions");
    check_shape(slot, Shape{1}, "Decoder::decode_fixed", "slot");
    check_shape(keep, Shape{B, cache.max_length()}, "Decoder::decode_fixed", "keep");
    check_cache(cache, B, "Decoder::decode_fixed");
    DecoderInput<T, D> in;
    in.input_ids = ids;
    return lm_head_(layers_forward(input_embeddings(in), positions, keep, CacheUse{&cache, &slot}, nullptr));
  }

  // An Error unless a sequence of `tokens` (cached and new) fits: sliding-window attention is not
  // implemented, so a model that has one takes at most its window.
  void check_context(int64_t tokens) const {
    if (config_.sliding_window)
      CTMLLM_CHECK(tokens <= *config_.sliding_window, "Decoder::forward: ", tokens, " tokens exceed the sliding window of ",
                   *config_.sliding_window, ", which this decoder does not implement");
  }

 private:
  // Where a layer's new keys and values go: nowhere (no cache), the cache's next slots (attention over
  // slots [0, length + S)), or the device-held slot of a fixed-shape step (attention over every slot).
  struct CacheUse {
    KvCache<T, D>* cache = nullptr;
    const Tensor<int64_t, D>* slot = nullptr;
  };

  void check_cache(const KvCache<T, D>& cache, int64_t B, const char* op) const {
    CTMLLM_CHECK(!autograd::grad_mode(), op, ": a KV cache is for inference; run under autograd::NoGradGuard");
    CTMLLM_CHECK(cache.batch() == B && cache.layers() == int64_t(layers_.size()) &&
                     cache.kv_heads() == config_.num_key_value_heads && cache.head_dim() == config_.head_dim,
                 op, ": the cache (batch ", cache.batch(), ", ", cache.layers(), " layers, ", cache.kv_heads(),
                 " kv heads of ", cache.head_dim(), ") does not fit this model and batch ", B);
  }

  // The layers and the final norm over h [B, S, H]; appends each layer's output to *hidden when given
  // (the last one after the norm).
  Var layers_forward(Var h, const Tensor<int64_t, D>& positions, const Tensor<uint8_t, D>& key_mask,
                     const CacheUse& use, std::vector<Var>* hidden) const {
    Var x = layers_.front().input_norm(h);  // the input of the next attention or MLP
    for (size_t l = 0; l < layers_.size(); ++l) {
      const DecoderLayer<T, D>& L = layers_[l];
      std::tie(h, x) = add_norm(h, attention(L, int64_t(l), x, positions, key_mask, use), L.post_attention_norm);
      std::tie(h, x) = add_norm(h, mlp(L, x), l + 1 < layers_.size() ? layers_[l + 1].input_norm : norm_);
      if (hidden) hidden->push_back(l + 1 < layers_.size() ? h : x);
    }
    return x;
  }

  // h + r and norm(h + r): in one pass where no graph is recorded (ops::add_rms_norm, equal bit for
  // bit), else the two recorded ops.
  std::pair<Var, Var> add_norm(const Var& h, const Var& r, const nn::RMSNorm<T, D>& norm) const {
    if (autograd::needs_grad<T, D>({h, r, norm.weight})) {
      const Var sum = autograd::add(h, r);
      return {sum, norm(sum)};
    }
    const auto f = ops::add_rms_norm(h.value(), r.value(), norm.weight.value(), norm.eps, norm.weight_offset);
    return {Var(f.sum), Var(f.y)};
  }

  // Fills each part of the network from a source, registering T tensors in Parameters.
  template <class Source>
  struct Loader {
    const Source& source;
    Storage storage;
    autograd::Parameters<T, D>& params;

    Var param(const std::string& name, const Shape& shape, Role role) {
      const Tensor<T, Cpu> t = source.template get<T>(name, shape, role, true);
      return params.add(name, t.template to_device<D>(), storage == Storage::compute);  // bf16 models are frozen
    }
    Tensor<bf16, D> frozen(const std::string& name, const Shape& shape, Role role) {
      return source.template get<bf16>(name, shape, role, false).template to_device<D>();
    }
    Dense<T, D> dense(const std::string& prefix, int64_t out, int64_t in, bool with_bias) {
      Dense<T, D> d;
      if (storage == Storage::bf16)
        d.weight_bf16 = frozen(prefix + ".weight", {out, in}, Role::matrix);
      else
        d.weight = param(prefix + ".weight", {out, in}, Role::matrix);
      if (with_bias) d.bias = param(prefix + ".bias", {out}, Role::bias);
      return d;
    }
    // Linear layers over one input (q, k, v; gate, up) loaded as consecutive row blocks of one matrix
    // (and bias), each registered under its own name as a view of it, written to *parts; returns the
    // whole as a frozen Dense (Decoder::project). Tensors are requested in dense()'s order. A bf16
    // weight on the CPU stays a zero-copy view of the checkpoint instead (packing would copy it): the
    // parts are then loaded one by one and the whole is left undefined.
    Dense<T, D> packed(const std::vector<std::pair<std::string, int64_t>>& layers, int64_t in, bool with_bias,
                       const std::vector<Dense<T, D>*>& parts) {
      if (storage == Storage::bf16 && std::is_same_v<D, Cpu>) {
        for (size_t i = 0; i < layers.size(); ++i) *parts[i] = dense(layers[i].first, layers[i].second, in, with_bias);
        return {};
      }
      return storage == Storage::bf16 ? packed_as<bf16>(layers, in, with_bias, parts)
                                      : packed_as<T>(layers, in, with_bias, parts);
    }
    template <class U>  // the weights' element type: T, or bf16 for frozen storage
    Dense<T, D> packed_as(const std::vector<std::pair<std::string, int64_t>>& layers, int64_t in, bool with_bias,
                          const std::vector<Dense<T, D>*>& parts) {
      int64_t total = 0;
      for (const auto& [name, out] : layers) total += out;
      const Tensor<U, Cpu> w = Tensor<U, Cpu>::empty({total, in});
      const Tensor<T, Cpu> b = with_bias ? Tensor<T, Cpu>::empty({total}) : Tensor<T, Cpu>();
      int64_t row = 0;
      for (const auto& [name, out] : layers) {
        w.slice(0, row, row + out).copy_from(source.template get<U>(name + ".weight", {out, in}, Role::matrix, false));
        if (with_bias) b.slice(0, row, row + out).copy_from(source.template get<T>(name + ".bias", {out}, Role::bias, false));
        row += out;
      }
      Dense<T, D> whole;
      const Tensor<U, D> wd = w.template to_device<D>();
      if (with_bias) whole.bias = Var(b.template to_device<D>(), false);
      if constexpr (std::is_same_v<U, T>) whole.weight = Var(wd, false);
      else whole.weight_bf16 = wd;
      row = 0;
      for (size_t i = 0; i < layers.size(); ++i) {
        const auto& [name, out] = layers[i];
        Dense<T, D>& d = *parts[i];
        if constexpr (std::is_same_v<U, T>) d.weight = params.add(name + ".weight", wd.slice(0, row, row + out), true);
        else d.weight_bf16 = wd.slice(0, row, row + out);
        if (with_bias)
          d.bias = params.add(name + ".bias", whole.bias.value().slice(0, row, row + out), storage == Storage::compute);
        row += out;
      }
      return whole;
    }
    TokenEmbedding<T, D> embedding(const std::string& prefix, int64_t vocab, int64_t hidden) {
      TokenEmbedding<T, D> e;
      if (storage == Storage::bf16)
        e.weight_bf16 = frozen(prefix + ".weight", {vocab, hidden}, Role::embedding);
      else
        e.weight = param(prefix + ".weight", {vocab, hidden}, Role::embedding);
      return e;
    }
    nn::RMSNorm<T, D> norm(const std::string& prefix, int64_t hidden, double eps, double offset) {
      nn::RMSNorm<T, D> n;
      n.weight = param(prefix + ".weight", {hidden}, Role::norm);
      n.eps = eps;
      n.weight_offset = offset;
      return n;
    }
  };

  template <class Self, class F>
  static void visit_dense(Self& self, F& f) {
    for (size_t l = 0; l < self.layers_.size(); ++l) {
      auto& L = self.layers_[l];
      const std::string p = "model.layers." + std::to_string(l) + ".";
      if (self.family_.fused_qkv) {
        f(p + "self_attn.qkv_proj", L.qkv_proj);
      } else {
        f(p + "self_attn.q_proj", L.q_proj);
        f(p + "self_attn.k_proj", L.k_proj);
        f(p + "self_attn.v_proj", L.v_proj);
      }
      f(p + "self_attn.o_proj", L.o_proj);
      if (self.family_.fused_gate_up) {
        f(p + "mlp.gate_up_proj", L.gate_up_proj);
      } else {
        f(p + "mlp.gate_proj", L.gate_proj);
        f(p + "mlp.up_proj", L.up_proj);
      }
      f(p + "mlp.down_proj", L.down_proj);
    }
    if (!self.family_.tied_embeddings) f(std::string("lm_head"), self.lm_head_);
  }

  // [rows, H] -> [vocab, H] with the new rows equal to the mean of the old ones, in whichever
  // storage the matrix has; a Variable keeps its identity (Parameters and optimizers see the change).
  static void grow_rows(autograd::Variable<T, D>& weight, Tensor<bf16, D>& weight_bf16, int64_t vocab) {
    auto grown = [vocab](const auto& old) {
      using U = typename std::decay_t<decltype(old)>::value_type;
      const Tensor<U, Cpu> src = old.template to_device<Cpu>();
      const int64_t rows = src.size(0), H = src.size(1);
      std::vector<double> mean(size_t(H), 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t h = 0; h < H; ++h) mean[size_t(h)] += double(src.data()[r * H + h]);
      Tensor<U, Cpu> out = Tensor<U, Cpu>::empty({vocab, H});
      std::copy(src.data(), src.data() + rows * H, out.data());
      for (int64_t r = rows; r < vocab; ++r)
        for (int64_t h = 0; h < H; ++h) out.data()[r * H + h] = cast<U>(mean[size_t(h)] / double(rows));
      return out.template to_device<D>();
    };
    if (weight.defined()) weight.resize_leaf(grown(weight.value()));
    else weight_bf16 = grown(weight_bf16);
  }

  // [B, S, H] from input_ids or inputs_embeds (exactly one), × √H for Gemma.
  Var input_embeddings(const DecoderInput<T, D>& in) const {
    CTMLLM_CHECK(in.input_ids.defined() != in.inputs_embeds.defined(),
                 "Decoder::forward: give exactly one of input_ids and inputs_embeds");
    Var h;
    if (in.input_ids.defined()) {
      check_rank(in.input_ids, 2, "Decoder::forward", "input_ids");
      h = embed_(in.input_ids);
    } else {
      h = in.inputs_embeds;
      CTMLLM_CHECK(h.rank() == 3 && h.size(2) == config_.hidden_size, "Decoder::forward: inputs_embeds must be [B, S, ",
                   config_.hidden_size, "], got ", h.value().describe());
    }
    CTMLLM_CHECK(h.size(1) > 0, "Decoder::forward: empty sequence");
    return family_.scale_embeddings ? autograd::mul_scalar(h, embed_scale_) : h;
  }

  // The mask as host keep flags [B·S] (all 1 without a mask); values other than 0 and 1 are an Error.
  static std::vector<uint8_t> keep_flags(const Tensor<int64_t, D>& mask, int64_t B, int64_t S) {
    if (!mask.defined()) return std::vector<uint8_t>(size_t(B * S), 1);
    check_shape(mask, Shape{B, S}, "Decoder::forward", "attention_mask");
    const std::vector<int64_t> m = mask.to_vector();
    std::vector<uint8_t> keep(m.size());
    for (size_t i = 0; i < m.size(); ++i) {
      CTMLLM_CHECK(m[i] == 0 || m[i] == 1, "Decoder::forward: attention_mask holds ", m[i],
                   "; only 0 and 1 are allowed");
      keep[i] = uint8_t(m[i]);
    }
    return keep;
  }

  // Given position_ids, or cumsum(mask) − 1 continuing each row's real tokens in the cache (pads
  // take their row's current position; their outputs are undefined anyway).
  Tensor<int64_t, D> position_ids(const DecoderInput<T, D>& in, const std::vector<uint8_t>& keep, int64_t B,
                                  int64_t S) const {
    if (in.position_ids.defined()) {
      check_shape(in.position_ids, Shape{B, S}, "Decoder::forward", "position_ids");
      return in.position_ids;
    }
    Tensor<int64_t, Cpu> pos = Tensor<int64_t, Cpu>::empty({B, S});
    for (int64_t b = 0; b < B; ++b) {
      int64_t next = in.cache ? in.cache->real_tokens(b) : 0;
      for (int64_t s = 0; s < S; ++s) {
        pos.data()[b * S + s] = keep[size_t(b * S + s)] ? next : std::max<int64_t>(next - 1, 0);
        next += keep[size_t(b * S + s)];
      }
    }
    return pos.template to_device<D>();
  }

  // [B, S, n·hd] -> [B, n, S, hd] (a view)
  Var split_heads(const Var& x, int64_t n) const {
    return autograd::permute(autograd::reshape(x, {x.size(0), x.size(1), n, config_.head_dim}), {0, 2, 1, 3});
  }

  // Self-attention of one layer over x = input_norm(h) [B, S, H]; returns o_proj's output [B, S, H].
  Var attention(const DecoderLayer<T, D>& L, int64_t l, const Var& x, const Tensor<int64_t, D>& positions,
                const Tensor<uint8_t, D>& key_mask, const CacheUse& use) const {
    const int64_t B = x.size(0), S = x.size(1), Hq = config_.num_attention_heads, Hkv = config_.num_key_value_heads;
    const int64_t hd = config_.head_dim;
    const std::vector<Var> qkv = family_.fused_qkv
                                     ? autograd::split(L.qkv_proj(x), {Hq * hd, Hkv * hd, Hkv * hd}, -1)
                                     : project(x, L.qkv_packed, {&L.q_proj, &L.k_proj, &L.v_proj});
    Var q = split_heads(qkv[0], Hq), k = split_heads(qkv[1], Hkv), v = split_heads(qkv[2], Hkv);  // [B, H, S, hd]
    if (use.cache) {
      // Inference (check_cache): q and k rotated and the keys and values cached in one pass; attention
      // then runs over every cached key, this step's included (all slots when the slot is device-held).
      KvCache<T, D>& cache = *use.cache;
      const int64_t end = use.slot ? cache.max_length() : cache.length() + S;
      q = Var(cache.store_rotated(l, use.slot, q.value(), k.value(), v.value(), positions, rope_));
      k = Var(cache.keys(l, end));
      v = Var(cache.values(l, end));
    } else {
      q = autograd::rope(q, positions, rope_);
      k = autograd::rope(k, positions, rope_);
    }
    ops::AttentionOptions<D> opts;
    opts.causal = true;
    opts.key_keep_mask = key_mask;
    const Var o = autograd::attention(q, k, v, opts);  // [B, Hq, S, hd]
    return L.o_proj(autograd::reshape(autograd::permute(o, {0, 2, 1, 3}), {B, S, Hq * hd}));
  }

  // down(act(gate(x)) · up(x)) over x = post_attention_norm(h) [B, S, H].
  Var mlp(const DecoderLayer<T, D>& L, const Var& x) const {
    const int64_t I = config_.intermediate_size;
    const std::vector<Var> gate_up = family_.fused_gate_up ? autograd::split(L.gate_up_proj(x), {I, I}, -1)
                                                           : project(x, L.gate_up_packed, {&L.gate_proj, &L.up_proj});
    return L.down_proj(autograd::gated_activation(gate_up[0], gate_up[1], family_.activation));
  }

  // The outputs of Linear layers over one x (q, k, v; gate, up): when no graph is being recorded and
  // `whole` still holds their weights, one GEMM over it, cut into views (decode reads one matrix in
  // one launch instead of three); otherwise one call each. A layer whose weight was replaced since
  // loading (merged adapters, set_value) or whose adapter is active ends the packing's use.
  std::vector<Var> project(const Var& x, const Dense<T, D>& whole, std::initializer_list<const Dense<T, D>*> parts) const {
    bool packed = whole.weight.defined() || whole.weight_bf16.defined();
    std::vector<Var> inputs{x};  // what a recorded product would have as inputs
    std::vector<int64_t> sizes;
    const int64_t in = packed ? whole.in_features() : 0;
    int64_t row = 0;
    for (const Dense<T, D>* p : parts) {
      inputs.push_back(p->weight);
      inputs.push_back(p->bias);
      const bool same_weight = whole.weight.defined()
                                   ? p->weight.defined() && p->weight.value().data() == whole.weight.value().data() + row * in
                                   : p->weight_bf16.defined() && p->weight_bf16.data() == whole.weight_bf16.data() + row * in;
      const bool same_bias = whole.bias.defined() ? p->bias.defined() && p->bias.value().data() == whole.bias.value().data() + row
                                                  : !p->bias.defined();
      packed = packed && same_weight && same_bias && !(p->adapter && !p->adapter->merged);
      sizes.push_back(p->out_features());
      row += p->out_features();
    }
    if (packed && !autograd::needs_grad(inputs)) return autograd::split(whole(x), sizes, -1);
    std::vector<Var> out;
    for (const Dense<T, D>* p : parts) out.push_back((*p)(x));
    return out;
  }

  io::LlmConfig config_;
  Family family_;
  DecoderOptions options_;
  autograd::Parameters<T, D> params_;
  TokenEmbedding<T, D> embed_;
  std::vector<DecoderLayer<T, D>> layers_;
  nn::RMSNorm<T, D> norm_;
  Dense<T, D> lm_head_;
  ops::RopeConfig rope_;
  double embed_scale_ = 1.0;
};

}  // namespace ctmllm::llm
