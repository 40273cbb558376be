#pragma once
// Attention through cuDNN's fused flash SDPA, forward and backward, as graphs of the header-only
// cudnn-frontend (compiled in when CMake finds its headers and defines CTMLLM_HAS_CUDNN_FRONTEND).
// attention.cuh tries it first for bfloat16 and float16 (cuDNN's flash kernels are 16-bit only) under
// the same contract: q [B, Hq, Sq, Dh], k [B, Hkv, Sk, Dh], v [B, Hkv, Sk, Dv] with unit inner
// stride (MHA, GQA, MQA), causal masking aligned to the end of the keys, an optional key keep mask;
// out and the row logsumexps (cuDNN's Stats, natural log) are saved for the backward, so a forward
// of either path pairs with a backward of either.
//
// How the contract maps onto cuDNN's masks:
//  - no keep mask: causal over Sq == Sk is cuDNN's top-left causal mask, Sq < Sk its bottom-right one;
//  - a keep mask, or causal with more queries than keys: an additive bias [B, 1, Sq, Sk] of 0 and
//    −30000 (finite: see sdpa_bias_kernel) made on the device (cuDNN takes no bias together with a bottom-right mask), plus the
//    top-left mask when Sq >= Sk (it hides only pairs the bias hides too, and lets cuDNN skip
//    tiles). Rows that see no key come out of cuDNN undefined; they are then set to out = 0 and
//    lse = −inf, and the backward hands cuDNN Stats 0 for them, so that their probabilities
//    exp(score − 30000 − 0) are 0 and nothing flows from them.
// Everything else runs the own kernels: float32, a single query (a decode step: its key count grows
// by one every step, and a graph per step would cost more than the step), head dims that are not
// multiples of 8, empty tensors, pointers or strides that are not whole 16-byte units, and any graph
// cuDNN cannot build on this machine (its reason is kept: cudnn_sdpa_last_refusal()).
//
// A graph is built once per (device, direction, dtype, sizes, strides, mask, scale) and kept (the
// last kSdpaCachedGraphs of them), and so is a refusal. The backward asks for cuDNN's deterministic
// algorithm, so that results repeat bit for bit as with the own kernels; where cuDNN has none, the
// backward runs the own kernel. (On Hopper that algorithm takes a dP workspace of B·Hq·Sq·Sk 16-bit
// values, from the caching allocator; the frontend's CUDNN_FRONTEND_ATTN_DP_WORKSPACE_LIMIT selects
// cuDNN's linear-workspace ordered-dQ engine instead, from cuDNN 9.25; a workspace the device cannot
// spare sends the call to the own kernels.)
#ifndef CUDNN_FRONTEND_SKIP_JSON_LIB
// Without it the frontend brings its own copy of nlohmann::json and specializes its float serializer
// (floats as hex strings) in every file that includes it.
#define CUDNN_FRONTEND_SKIP_JSON_LIB
#endif
#include <cstring>  // the frontend calls std::strlen; without its JSON library nothing declares it

#include <cudnn_frontend.h>

#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <compare>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ctmllm/core/bounded_cache.hpp"
#include "ctmllm/core/cuda/allocator.hpp"
#include "ctmllm/core/cuda/context.hpp"
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cuda/dtype.cuh"
#include "ctmllm/ops/cuda/launch.cuh"

namespace ctmllm::ops {

// Whether bfloat16 and float16 attention may run on cuDNN's fused SDPA. On, unless the environment
// variable CTMLLM_ATTENTION_FALLBACK holds anything but "0" when attention first runs; tests and
// benchmarks flip it to run the own kernels.
inline std::atomic<bool>& cudnn_sdpa_enabled() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("CTMLLM_ATTENTION_FALLBACK");
    return v == nullptr || std::string_view(v).empty() || std::string_view(v) == "0";
  }()};
  return on;
}

// Runs attention on the own kernels for its lifetime (tests and benchmarks compare both paths).
class ScopedAttentionFallback {
 public:
  ScopedAttentionFallback() : was_(cudnn_sdpa_enabled().exchange(false)) {}
  ~ScopedAttentionFallback() { cudnn_sdpa_enabled() = was_; }
  ScopedAttentionFallback(const ScopedAttentionFallback&) = delete;
  ScopedAttentionFallback& operator=(const ScopedAttentionFallback&) = delete;

 private:
  bool was_;
};

// How many attention forwards and backwards cuDNN has run in this process: tests and benchmarks
// read it to know which path ran.
inline std::atomic<int64_t>& cudnn_sdpa_runs() {
  static std::atomic<int64_t> runs{0};
  return runs;
}

namespace cuda_impl {

namespace fe = cudnn_frontend;

// The causal mask cuDNN applies itself, and whether an additive 0/−30000 bias carries the rest of the
// visibility rule (the keep mask, and the causal rule where cuDNN's masks cannot express it).
enum class SdpaCausal : uint8_t { none, top_left, bottom_right };
struct SdpaMask {
  SdpaCausal causal = SdpaCausal::none;
  bool bias = false;
  auto operator<=>(const SdpaMask&) const = default;
};

// The mask that makes cuDNN's SDPA compute attention of these sizes, or nothing when the own kernels
// run it. Plain C++: tested without a GPU.
inline std::optional<SdpaMask> sdpa_mask_for(int64_t B, int64_t Hq, int64_t Sq, int64_t Sk, int64_t Dh, int64_t Dv,
                                             bool causal, bool keep) {
  if (B <= 0 || Hq <= 0 || Sq <= 0 || Sk <= 0 || Dv <= 0) return std::nullopt;  // empty: the own kernels
  if (Sq == 1) return std::nullopt;  // a decode step: a new key count, hence a new graph, every step
  if (Dh % 8 != 0 || Dv % 8 != 0) return std::nullopt;  // cuDNN's kernels move rows in 16-byte units
  if (keep || (causal && Sq > Sk))  // some queries may see no key: the bias, and the fix-up of those rows
    return SdpaMask{causal && Sq >= Sk ? SdpaCausal::top_left : SdpaCausal::none, true};
  if (!causal) return SdpaMask{};
  return SdpaMask{Sq == Sk ? SdpaCausal::top_left : SdpaCausal::bottom_right, false};
}

// A built graph: the own kernels run where cuDNN could not build one (graph null, refusal says why).
struct SdpaGraph {
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace = 0;
  std::string refusal;
};

// Everything a graph depends on. Strides: q, k, v, o, dO (dO zero for the forward), with those of
// extent-1 dimensions normalized (they never move a pointer).
struct SdpaKey {
  int device = 0;
  bool backward = false, bf16 = false;
  SdpaMask mask;
  int64_t B = 0, Hq = 0, Hkv = 0, Sq = 0, Sk = 0, Dh = 0, Dv = 0;
  std::array<std::array<int64_t, 4>, 5> strides{};
  uint32_t scale_bits = 0;  // the float scale's bits
  auto operator<=>(const SdpaKey&) const = default;
};

// Graphs kept: a model has a handful of shapes, but padded batches and prompts vary in length.
inline constexpr size_t kSdpaCachedGraphs = 512;

// The graphs built so far, refusals included (the last `capacity` of them), and why cuDNN last
// refused one.
class SdpaGraphCache {
 public:
  explicit SdpaGraphCache(size_t capacity = kSdpaCachedGraphs) : graphs_(capacity) {}

  static SdpaGraphCache& instance() {
    static SdpaGraphCache cache;
    return cache;
  }

  // The entry for key, made by build() when it is not kept.
  template <class Build>
  std::shared_ptr<const SdpaGraph> get(const SdpaKey& key, Build&& build) {
    return graphs_.get(key, [&] {
      SdpaGraph entry = build();
      if (!entry.graph) {
        std::lock_guard<std::mutex> lock(refusal_mutex_);
        last_refusal_ = entry.refusal;
      }
      return entry;
    });
  }

  size_t size() const { return graphs_.size(); }
  std::string last_refusal() const {
    std::lock_guard<std::mutex> lock(refusal_mutex_);
    return last_refusal_;
  }

 private:
  BoundedCache<SdpaKey, SdpaGraph> graphs_;
  mutable std::mutex refusal_mutex_;
  std::string last_refusal_;
};

// The tensors' ids in the graphs.
enum SdpaUid : int64_t {
  kSdpaQ = 1, kSdpaK, kSdpaV, kSdpaO, kSdpaStats, kSdpaBias, kSdpaDO, kSdpaDQ, kSdpaDK, kSdpaDV
};

// Row length of the bias: Sk rounded up to 16 bytes of 16-bit elements, so that its rows start where
// cuDNN's vector loads may.
inline int64_t sdpa_bias_ld(int64_t Sk) { return (Sk + 7) / 8 * 8; }

inline std::vector<int64_t> packed_strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t d = dims.size() - 1; d > 0; --d) s[d - 1] = s[d] * dims[d];
  return s;
}

template <class Attributes>
void set_sdpa_mask(Attributes& a, const SdpaMask& m, const std::shared_ptr<fe::graph::Tensor_attributes>& bias) {
  if (m.causal != SdpaCausal::none)
    a.set_diagonal_alignment(m.causal == SdpaCausal::top_left ? fe::DiagonalAlignment_t::TOP_LEFT
                                                              : fe::DiagonalAlignment_t::BOTTOM_RIGHT)
        .set_diagonal_band_right_bound(0);
  if (bias) a.set_bias(bias);
}

// The forward (q, k, v [, bias] -> o, Stats) or backward (q, k, v, o, dO, Stats [, bias] -> dq, dk,
// dv) graph of key on the forward implementation `forward_impl`, built for this device; a refusal
// when cuDNN cannot run it here (the frontend reports some refusals as exceptions: they are refusals too).
inline SdpaGraph try_build_sdpa_graph(const SdpaKey& key, cudnnHandle_t handle,
                                      fe::AttentionImplementation_t forward_impl) try {
  const auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(key.bf16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  const auto tensor = [&](int64_t uid, const char* name, std::vector<int64_t> dims, std::vector<int64_t> strides) {
    return graph->tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(std::move(dims)).set_stride(
        std::move(strides)));
  };
  const auto strides = [&](int i) { return std::vector<int64_t>(key.strides[i].begin(), key.strides[i].end()); };
  const int64_t B = key.B, Hq = key.Hq, Hkv = key.Hkv, Sq = key.Sq, Sk = key.Sk, Dh = key.Dh, Dv = key.Dv;
  const std::vector<int64_t> q_dims{B, Hq, Sq, Dh}, k_dims{B, Hkv, Sk, Dh}, v_dims{B, Hkv, Sk, Dv};
  const std::vector<int64_t> o_dims{B, Hq, Sq, Dv}, stats_dims{B, Hq, Sq, 1};
  const auto q = tensor(kSdpaQ, "q", q_dims, strides(0));
  const auto k = tensor(kSdpaK, "k", k_dims, strides(1));
  const auto v = tensor(kSdpaV, "v", v_dims, strides(2));
  std::shared_ptr<fe::graph::Tensor_attributes> bias;
  if (key.mask.bias) {
    const int64_t ld = sdpa_bias_ld(Sk);
    bias = tensor(kSdpaBias, "bias", {B, 1, Sq, Sk}, {Sq * ld, Sq * ld, ld, 1});
  }
  const float scale = std::bit_cast<float>(key.scale_bits);
  if (!key.backward) {
    fe::graph::SDPA_attributes a;
    a.set_name("ctmllm_attention").set_generate_stats(true).set_attn_scale(scale).set_implementation(forward_impl);
    set_sdpa_mask(a, key.mask, bias);
    const auto [o, stats] = graph->sdpa(q, k, v, a);
    o->set_output(true).set_uid(kSdpaO).set_dim(o_dims).set_stride(strides(3));
    stats->set_output(true).set_uid(kSdpaStats).set_data_type(fe::DataType_t::FLOAT).set_dim(stats_dims)
        .set_stride(packed_strides(stats_dims));
  } else {
    const auto o = tensor(kSdpaO, "o", o_dims, strides(3));
    const auto dout = tensor(kSdpaDO, "dO", o_dims, strides(4));
    const auto stats = tensor(kSdpaStats, "stats", stats_dims, packed_strides(stats_dims));
    stats->set_data_type(fe::DataType_t::FLOAT);
    fe::graph::SDPA_backward_attributes a;
    a.set_name("ctmllm_attention_backward").set_attn_scale(scale).set_deterministic_algorithm(true);
    set_sdpa_mask(a, key.mask, bias);
    const auto [dq, dk, dv] = graph->sdpa_backward(q, k, v, o, dout, stats, a);
    dq->set_output(true).set_uid(kSdpaDQ).set_dim(q_dims).set_stride(packed_strides(q_dims));
    dk->set_output(true).set_uid(kSdpaDK).set_dim(k_dims).set_stride(packed_strides(k_dims));
    dv->set_output(true).set_uid(kSdpaDV).set_dim(v_dims).set_stride(packed_strides(v_dims));
  }
  int64_t workspace = 0;
  const fe::error_t status = [&]() -> fe::error_t {
    if (fe::error_t s = graph->validate(); !s.is_good()) return s;
    if (fe::error_t s = graph->build_operation_graph(handle); !s.is_good()) return s;
    if (fe::error_t s = graph->create_execution_plans({fe::HeurMode_t::A}); !s.is_good()) return s;
    if (fe::error_t s = graph->check_support(); !s.is_good()) return s;
    if (fe::error_t s = graph->build_plans(); !s.is_good()) return s;
    return graph->get_workspace_size(workspace);
  }();
  if (!status.is_good()) return SdpaGraph{nullptr, 0, status.err_msg};
  return SdpaGraph{graph, workspace, {}};
} catch (const std::exception& e) {
  return SdpaGraph{nullptr, 0, e.what()};
}

// The graph of key, or a refusal. The frontend's automatic choice of forward implementation picks
// its unified engine where the installed cuDNN claims it, and never falls back when that engine has
// no plan for the case on this GPU: the composite (flash) engine is tried next.
inline SdpaGraph build_sdpa_graph(const SdpaKey& key, cudnnHandle_t handle) {
  SdpaGraph g = try_build_sdpa_graph(key, handle, fe::AttentionImplementation_t::AUTO);
  if (g.graph || key.backward) return g;  // the backward has the composite engine only
  SdpaGraph composite = try_build_sdpa_graph(key, handle, fe::AttentionImplementation_t::COMPOSITE);
  if (!composite.graph)
    composite.refusal = "automatic choice: " + g.refusal + "; composite engine: " + composite.refusal;
  return composite;
}

// The strides cuDNN gets for a [B, H, S, D] operand with unit inner stride: an extent-1 dimension's
// stride (which moves nothing) becomes the packed one, so that it cannot fail an alignment rule.
template <class T>
std::array<int64_t, 4> sdpa_strides(const Tensor<T, Cuda>& t) {
  std::array<int64_t, 4> s{t.stride(0), t.stride(1), t.stride(2), 1};
  for (int d = 2; d >= 0; --d)
    if (t.size(d) == 1) s[size_t(d)] = s[size_t(d) + 1] * t.size(d + 1);
  return s;
}

// Whether cuDNN's 16-byte rule holds for an operand: its pointer, and every stride of an extent
// above 1 but the unit inner one, a positive whole number of 16 bytes.
template <class T>
bool sdpa_aligned(const Tensor<T, Cuda>& t) {
  if (reinterpret_cast<uintptr_t>(t.data()) % 16 != 0) return false;
  for (int d = 0; d < 3; ++d)
    if (t.size(d) > 1 && (t.stride(d) <= 0 || t.stride(d) * int64_t(sizeof(T)) % 16 != 0)) return false;
  return true;
}

// The key of a call, or nothing when cuDNN's SDPA cannot take it (dout: the backward's dy, or
// undefined for the forward).
template <class T>
std::optional<SdpaKey> sdpa_key(const Tensor<T, Cuda>& q, const Tensor<T, Cuda>& k, const Tensor<T, Cuda>& v,
                                const Tensor<T, Cuda>& o, const Tensor<T, Cuda>& dout, bool keep, bool causal,
                                double scale) {
  SdpaKey key;
  key.B = q.size(0), key.Hq = q.size(1), key.Sq = q.size(2), key.Dh = q.size(3);
  key.Hkv = k.size(1), key.Sk = k.size(2), key.Dv = v.size(3);
  const auto mask = sdpa_mask_for(key.B, key.Hq, key.Sq, key.Sk, key.Dh, key.Dv, causal, keep);
  if (!mask || !sdpa_aligned(q) || !sdpa_aligned(k) || !sdpa_aligned(v) || !sdpa_aligned(o)) return std::nullopt;
  key.backward = dout.defined();
  if (key.backward && !sdpa_aligned(dout)) return std::nullopt;
  key.device = cuda::current_device();
  key.bf16 = std::is_same_v<T, bf16>;
  key.mask = *mask;
  key.strides = {sdpa_strides(q), sdpa_strides(k), sdpa_strides(v), sdpa_strides(o)};
  if (key.backward) key.strides[4] = sdpa_strides(dout);
  key.scale_bits = std::bit_cast<uint32_t>(float(scale));
  return key;
}

// bias[b, 0, i, j] = 0 where query i of batch entry b sees key j, kSdpaHiddenBias elsewhere (the row's
// tail past Sk included); hidden[b, i] = 1 where the query sees no key (when hidden is given). Block (i, b).
// The bias is finite, as PyTorch's cuDNN path makes it: a key tile with every score at −inf gives its
// running maximum −inf and exp(−inf − (−inf)) = NaN. exp(score − 30000) is exactly 0 in float for any
// score a model produces, so hidden keys still add nothing; rows that see no key are set afterwards.
inline constexpr float kSdpaHiddenBias = -30000.0f;

template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    sdpa_bias_kernel(const uint8_t* __restrict__ keep, int64_t Sq, int64_t Sk, int64_t ld, bool causal,
                     T* __restrict__ bias, uint8_t* __restrict__ hidden) {
  const int64_t i = blockIdx.x, b = blockIdx.y;
  T* row = bias + (b * Sq + i) * ld;
  const T zero = from_float<T>(0.0f), hide = from_float<T>(kSdpaHiddenBias);
  int seen = 0;
  for (int64_t j = threadIdx.x; j < ld; j += blockDim.x) {
    const bool visible = j < Sk && (!keep || keep[b * Sk + j]) && (!causal || j <= i + Sk - Sq);
    row[j] = visible ? zero : hide;
    seen |= int(visible);
  }
  seen = __syncthreads_or(seen);
  if (hidden && threadIdx.x == 0) hidden[b * Sq + i] = uint8_t(!seen);
}

// The rows whose query sees no key: out = 0 and lse = −inf, as the contract says (cuDNN leaves them
// undefined). out [B, Hq, Sq, Dv] and lse [B, Hq, Sq] contiguous; n = out's element count.
template <class T>
__global__ void sdpa_hidden_rows_kernel(const uint8_t* __restrict__ hidden, int64_t Hq, int64_t Sq, int64_t Dv,
                                        int64_t n, T* __restrict__ out, float* __restrict__ lse) {
  for (int64_t e = global_thread(); e < n; e += grid_threads()) {
    const int64_t row = e / Dv, b = row / (Hq * Sq), i = row % Sq;
    if (!hidden[b * Sq + i]) continue;
    out[e] = from_float<T>(0.0f);
    if (e % Dv == 0) lse[row] = -INFINITY;
  }
}

// cuDNN's backward Stats: lse with the −inf of rows that see no key replaced by 0, so that their
// probabilities exp(score − 30000 − 0) are 0 instead of NaN.
template <class A>
__global__ void sdpa_backward_stats_kernel(const A* __restrict__ lse, int64_t n, A* __restrict__ stats) {
  for (int64_t e = global_thread(); e < n; e += grid_threads()) stats[e] = lse[e] == -INFINITY ? A(0) : lse[e];
}

// The bias of a call in bias mode ([B, 1, Sq, Sk] with row length sdpa_bias_ld), and the hidden-row
// flags [B, Sq] when hidden is given.
template <class T>
Tensor<T, Cuda> make_sdpa_bias(const Tensor<uint8_t, Cuda>& keep, int64_t B, int64_t Sq, int64_t Sk, bool causal,
                               Tensor<uint8_t, Cuda>* hidden) {
  CTMLLM_CHECK(B <= 65535, "attention (cuDNN): a batch of ", B, " exceeds the CUDA grid (65535)");
  const int64_t ld = sdpa_bias_ld(Sk);
  Tensor<T, Cuda> bias = Tensor<T, Cuda>::empty({B, Sq, ld});
  if (hidden) *hidden = Tensor<uint8_t, Cuda>::empty({B, Sq});
  sdpa_bias_kernel<T><<<dim3(unsigned(Sq), unsigned(B)), threads_for_row(ld), 0, cuda::current_stream()>>>(
      keep.defined() ? keep.data() : nullptr, Sq, Sk, ld, causal, bias.data(), hidden ? hidden->data() : nullptr);
  cuda::check_launch("sdpa_bias_kernel");
  return bias;
}

// The workspace of g, or false when the device cannot spare it: on Hopper the deterministic backward's
// grows as B·Hq·Sq·Sk, while the own kernels need memory linear in the sequence, so they run the call
// (without the allocator's cache emptied first on every such call: cuda::try_allocate).
inline bool allocate_sdpa_workspace(const SdpaGraph& g, std::shared_ptr<std::byte>& workspace) {
  if (g.workspace == 0) return true;
  workspace = cuda::try_allocate(size_t(g.workspace));
  return workspace != nullptr;
}

inline void run_sdpa_graph(const SdpaGraph& g, const std::shared_ptr<std::byte>& workspace,
                           std::unordered_map<int64_t, void*>& pack) {
  const fe::error_t status = g.graph->execute(cuda::Context::current().cudnn().get(), pack, workspace.get());
  CTMLLM_CHECK(status.is_good(), "attention (cuDNN SDPA): executing the graph failed: ", status.err_msg);
  ++cudnn_sdpa_runs();
}

// The graph for key, built on first use on the current device's cuDNN handle.
inline std::shared_ptr<const SdpaGraph> sdpa_graph(const SdpaKey& key) {
  return SdpaGraphCache::instance().get(key, [&] { return build_sdpa_graph(key, cuda::Context::current().cudnn().get()); });
}

// out and lse of attention through cuDNN (the contract of impl::attention_forward); false, with
// nothing written, when cuDNN does not run this call and the own kernel must.
template <class T>
bool sdpa_forward(const Tensor<T, Cuda>& q, const Tensor<T, Cuda>& k, const Tensor<T, Cuda>& v,
                  const Tensor<uint8_t, Cuda>& keep, bool causal, double scale, const Tensor<T, Cuda>& out,
                  const Tensor<float, Cuda>& lse) {
  if constexpr (std::is_same_v<T, float>) {
    return false;  // cuDNN's flash SDPA takes 16-bit inputs only
  } else {
    if (!cudnn_sdpa_enabled() || reinterpret_cast<uintptr_t>(lse.data()) % 16 != 0) return false;
    const std::optional<SdpaKey> key = sdpa_key(q, k, v, out, Tensor<T, Cuda>(), keep.defined(), causal, scale);
    if (!key) return false;
    const std::shared_ptr<const SdpaGraph> g = sdpa_graph(*key);
    std::shared_ptr<std::byte> workspace;
    if (!g->graph || !allocate_sdpa_workspace(*g, workspace)) return false;
    std::unordered_map<int64_t, void*> pack{
        {kSdpaQ, q.data()}, {kSdpaK, k.data()}, {kSdpaV, v.data()}, {kSdpaO, out.data()}, {kSdpaStats, lse.data()}};
    Tensor<T, Cuda> bias;
    Tensor<uint8_t, Cuda> hidden;
    if (key->mask.bias) {
      bias = make_sdpa_bias<T>(keep, key->B, key->Sq, key->Sk, causal, &hidden);
      pack[kSdpaBias] = bias.data();
    }
    run_sdpa_graph(*g, workspace, pack);
    if (key->mask.bias) {
      const int64_t n = out.numel();
      sdpa_hidden_rows_kernel<T><<<grid_for(n), kThreads, 0, cuda::current_stream()>>>(
          hidden.data(), key->Hq, key->Sq, key->Dv, n, out.data(), lse.data());
      cuda::check_launch("sdpa_hidden_rows_kernel");
    }
    return true;
  }
}

// dq, dk, dv through cuDNN (the contract of impl::attention_backward); false, with nothing written,
// when cuDNN does not run this call and the own kernels must.
template <class T>
bool sdpa_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& q, const Tensor<T, Cuda>& k,
                   const Tensor<T, Cuda>& v, const Tensor<T, Cuda>& out, const Tensor<float, Cuda>& lse,
                   const Tensor<uint8_t, Cuda>& keep, bool causal, double scale, const Tensor<T, Cuda>& dq,
                   const Tensor<T, Cuda>& dk, const Tensor<T, Cuda>& dv) {
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    if (!cudnn_sdpa_enabled() || reinterpret_cast<uintptr_t>(lse.data()) % 16 != 0) return false;
    const std::optional<SdpaKey> key = sdpa_key(q, k, v, out, dy, keep.defined(), causal, scale);
    if (!key) return false;
    const std::shared_ptr<const SdpaGraph> g = sdpa_graph(*key);
    std::shared_ptr<std::byte> workspace;
    if (!g->graph || !allocate_sdpa_workspace(*g, workspace)) return false;
    std::unordered_map<int64_t, void*> pack{{kSdpaQ, q.data()},   {kSdpaK, k.data()},   {kSdpaV, v.data()},
                                            {kSdpaO, out.data()}, {kSdpaDO, dy.data()}, {kSdpaStats, lse.data()},
                                            {kSdpaDQ, dq.data()}, {kSdpaDK, dk.data()}, {kSdpaDV, dv.data()}};
    Tensor<T, Cuda> bias;
    Tensor<float, Cuda> stats;
    if (key->mask.bias) {
      bias = make_sdpa_bias<T>(keep, key->B, key->Sq, key->Sk, causal, nullptr);
      stats = Tensor<float, Cuda>::empty(lse.shape());
      const int64_t n = lse.numel();
      sdpa_backward_stats_kernel<float>
          <<<grid_for(n), kThreads, 0, cuda::current_stream()>>>(lse.data(), n, stats.data());
      cuda::check_launch("sdpa_backward_stats_kernel");
      pack[kSdpaBias] = bias.data();
      pack[kSdpaStats] = stats.data();
    }
    run_sdpa_graph(*g, workspace, pack);
    return true;
  }
}

}  // namespace cuda_impl

// Why cuDNN last refused to build an attention graph (empty when it never has): the case then runs
// the own kernels.
inline std::string cudnn_sdpa_last_refusal() { return cuda_impl::SdpaGraphCache::instance().last_refusal(); }

}  // namespace ctmllm::ops
