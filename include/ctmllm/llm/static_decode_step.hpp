#pragma once
// llm::StaticDecodeStep: decoding one token per row per step over a KvCache with every device buffer
// fixed (the ids, positions and slot index in one int64 buffer, the attention keep mask in another),
// so that each step is the same device work on the same addresses (Decoder::decode_fixed) and only
// the buffers' contents change. On Cuda tensors the second step captures that work in a CUDA graph
// (core/cuda/graph.hpp) and every later step replays it: one launch instead of some 13 per layer.
// The first step runs directly, outside any capture, so that cuBLASLt's heuristics, lazily loaded
// kernels and library handles are settled before it. If the capture fails, every step runs directly
// from then on and graph_failure() says why. On the CPU every step runs directly (what the tests
// compare with Decoder::forward's steps).
//
// Per step on the host: the ids are range-checked (a captured embedding cannot check them, and a
// direct step need not: it runs without the device's range checks and their host waits), the
// cache reserves the slot, the ids, positions (each row's real tokens so far), slot and keep mask go
// over in two copies, the step runs, the cache advances. Every fed token is real. The cost of fixed
// shapes: attention reads all max_length slots each step (masked ones add 0), not just the filled
// ones. Beam search reorders the cache between steps in place (KvCache::reorder_rows), so its
// steps too can replay the graph.
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/llm/kv_cache.hpp"
#include "ctmllm/ops/caller_checked_indices.hpp"
#include "ctmllm/ops/cpu/embedding.hpp"
#if defined(CTMLLM_WITH_CUDA)
#include "ctmllm/core/cuda/graph.hpp"
#endif

namespace ctmllm::llm {

template <class T, class D = Cpu>
class StaticDecodeStep {
 public:
  using Var = autograd::Variable<T, D>;

  // Steps over `cache` (prefilled or empty), which must outlive this object and have no other writer
  // while it steps. use_graph = false runs every step directly on the GPU too.
  StaticDecodeStep(const Decoder<T, D>& model, KvCache<T, D>& cache, bool use_graph = true)
      : model_(model), cache_(cache), use_graph_(use_graph && !std::is_same_v<D, Cpu>) {
    CTMLLM_CHECK(cache.defined(), "StaticDecodeStep: the cache is empty (make it with Decoder::make_cache)");
    const int64_t B = cache.batch();
    host_ints_.resize(size_t(2 * B + 1));
    host_keep_.resize(size_t(B * cache.max_length()));
    ints_ = Tensor<int64_t, D>::zeros({2 * B + 1});
    keep_ = Tensor<uint8_t, D>::zeros({B, cache.max_length()});
    ids_ = ints_.slice(0, 0, B).view({B, 1});
    positions_ = ints_.slice(0, B, 2 * B).view({B, 1});
    slot_ = ints_.slice(0, 2 * B, 2 * B + 1);
  }
  StaticDecodeStep(const StaticDecodeStep&) = delete;
  StaticDecodeStep& operator=(const StaticDecodeStep&) = delete;

  // Feeds tokens [B] (one per row) and returns the logits of each row's next token [B, 1, V]: the
  // step's output buffer, overwritten by the next call.
  Var operator()(const std::vector<int64_t>& tokens) {
    autograd::NoGradGuard no_grad;
    const int64_t B = cache_.batch(), M = cache_.max_length(), slot = cache_.length();
    CTMLLM_CHECK(int64_t(tokens.size()) == B, "StaticDecodeStep: ", tokens.size(), " tokens for a batch of ", B);
    ops::impl::check_embedding_ids(Tensor<int64_t, Cpu>::from(std::span<const int64_t>(tokens), {B}),
                                   model_.vocab_size(), "StaticDecodeStep");
    model_.check_context(slot + 1);
    cache_.reserve(1, std::vector<uint8_t>(size_t(B), 1));
    for (int64_t b = 0; b < B; ++b) {
      host_ints_[size_t(b)] = tokens[size_t(b)];
      host_ints_[size_t(B + b)] = cache_.real_tokens(b);
      for (int64_t j = 0; j < M; ++j) host_keep_[size_t(b * M + j)] = j <= slot && cache_.kept(b, j);
    }
    host_ints_[size_t(2 * B)] = slot;
#if defined(CTMLLM_WITH_CUDA)
    if constexpr (std::is_same_v<D, Cuda>) graph_.wait_for_last_replay();  // it may still read them, on another stream
#endif
    D::copy_from_host(ints_.data(), host_ints_.data(), host_ints_.size() * sizeof(int64_t));
    D::copy_from_host(keep_.data(), host_keep_.data(), host_keep_.size());
    run();
    cache_.advance(1);
    return logits_;
  }

  // Whether the steps replay a captured CUDA graph (from the second step on).
  bool graph_captured() const {
#if defined(CTMLLM_WITH_CUDA)
    return graph_.defined();
#else
    return false;
#endif
  }
  // Kernels, copies and memsets in the graph (0 before the capture).
  size_t graph_nodes() const {
#if defined(CTMLLM_WITH_CUDA)
    return graph_.nodes();
#else
    return 0;
#endif
  }
  // Why the capture failed (empty when it did not).
  const std::string& graph_failure() const { return failure_; }

 private:
  // The ids were checked on the host and the slot is the cache's reserved one: the device need not
  // check them again (a host wait per embedding and per cache write when the step runs directly).
  Var step() const {
    const ops::IndicesCheckedByCaller checked;
    return model_.decode_fixed(ids_, positions_, slot_, keep_, cache_);
  }

  void run() {
#if defined(CTMLLM_WITH_CUDA)
    if constexpr (std::is_same_v<D, Cuda>) {
      if (graph_.defined()) {
        graph_.launch();
        return;
      }
      if (use_graph_ && failure_.empty() && steps_ > 0) {
        try {
          graph_ = cuda::Graph::capture([&] { logits_ = step(); });
          graph_.launch();
          ++steps_;
          return;
        } catch (const Error& e) {  // from now on every step runs directly
          failure_ = e.what();
          graph_ = cuda::Graph();
          logits_ = Var();
        }
      }
    }
#endif
    logits_ = step();
    ++steps_;
  }

  const Decoder<T, D>& model_;
  KvCache<T, D>& cache_;
  bool use_graph_;
  int64_t steps_ = 0;
  std::vector<int64_t> host_ints_;  // ids [B], positions [B], slot
  std::vector<uint8_t> host_keep_;  // [B, max_length]
  Tensor<int64_t, D> ints_, ids_, positions_, slot_;
  Tensor<uint8_t, D> keep_;
  Var logits_;
#if defined(CTMLLM_WITH_CUDA)
  cuda::Graph graph_;
#endif
  std::string failure_;
};

}  // namespace ctmllm::llm
