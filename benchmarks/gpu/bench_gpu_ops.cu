// GPU op timings (Google Benchmark, manual time from CUDA events around each call on the ops
// stream): GEMMs through cuBLASLt, layer_norm, rms_norm (alone and after a residual add), softmax,
// gelu, SwiGLU, the strided copy, rope, embedding backward, cross-entropy and attention (at the
// ViT-B shape and at Llama-3-8B prefill and decode shapes: cuDNN's fused SDPA when built with the
// cudnn-frontend, but for decode, else the own kernels; with the frontend, the *_fallback timings
// run the own kernels at the ViT-B and prefill shapes, and the counter cudnn_sdpa says which path
// ran), the decode GEMV over bf16 weights under float activations (llm::Storage::bf16 on the GPU)
// and the same shape in pure bf16, in the shapes that torch_gpu_reference.py times in PyTorch;
// run_h200.sh prints both with their ratio. Inputs are random (never zeros: they run faster than
// real data). Without a GPU every benchmark skips.
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "device_timing.hpp"
#include "ctmllm/llm/cuda/bf16_linear.cuh"
#include "ctmllm/ops/activation.hpp"
#include "ctmllm/ops/attention.hpp"
#include "ctmllm/ops/embedding.hpp"
#include "ctmllm/ops/loss.hpp"
#include "ctmllm/ops/matmul.hpp"
#include "ctmllm/ops/norm.hpp"
#include "ctmllm/ops/rope.hpp"
#include "ctmllm/ops/softmax.hpp"

using namespace ctmllm;
using bench_gpu::time_on_device;

namespace {

// bench_gpu::device_normal, drawn once per shape and seed: Google Benchmark calls each function
// several times while it settles the iteration count, and drawing the 1G normals of the
// cross-entropy logits on the host takes seconds each time.
template <class T>
Tensor<T, Cuda> device_normal(const Shape& s, uint64_t seed) {
  static std::map<std::pair<std::vector<int64_t>, uint64_t>, Tensor<T, Cuda>> drawn;
  const std::pair key{std::vector<int64_t>(s.begin(), s.end()), seed};
  auto it = drawn.find(key);
  if (it == drawn.end()) it = drawn.emplace(key, bench_gpu::device_normal<T>(s, seed)).first;
  return it->second;
}

void gemm_bf16_8192x4096x4096(benchmark::State& state) {  // linear: x [8192, 4096] · w [4096, 4096]ᵀ + b
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 1), w = device_normal<bf16>({4096, 4096}, 2);
  const auto b = device_normal<bf16>({4096}, 3);
  time_on_device(state, 2.0 * (8192 * 4096 * 2 + 4096 * 4096), 2.0 * 8192 * 4096 * 4096,
                 [&] { benchmark::DoNotOptimize(ops::linear(x, w, b)); });
}

void gemm_f32_2048x2048x2048(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto a = device_normal<float>({2048, 2048}, 4), b = device_normal<float>({2048, 2048}, 5);
  time_on_device(state, 4.0 * 3 * 2048 * 2048, 2.0 * 2048 * 2048 * 2048,
                 [&] { benchmark::DoNotOptimize(ops::matmul(a, b)); });
}

void bmm_bf16_64x1024x128x1024(benchmark::State& state) {  // attention-shaped: [64, 1024, 128] · [64, 128, 1024]
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto a = device_normal<bf16>({64, 1024, 128}, 6), b = device_normal<bf16>({64, 128, 1024}, 7);
  time_on_device(state, 2.0 * 64 * (2 * 1024 * 128 + 1024 * 1024), 2.0 * 64 * 1024 * 1024 * 128,
                 [&] { benchmark::DoNotOptimize(ops::matmul(a, b)); });
}

void layer_norm_bf16_8192x4096(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 8), w = device_normal<bf16>({4096}, 9), b = device_normal<bf16>({4096}, 10);
  time_on_device(state, 2.0 * 2 * 8192 * 4096, 0, [&] { benchmark::DoNotOptimize(ops::layer_norm(x, w, b)); });
}

void rms_norm_bf16_8192x4096(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 11), w = device_normal<bf16>({4096}, 12);
  time_on_device(state, 2.0 * 2 * 8192 * 4096, 0, [&] { benchmark::DoNotOptimize(ops::rms_norm(x, w)); });
}

// A decoder layer's residual update and the norm after it (inference): one kernel; PyTorch adds,
// then norms.
void add_rms_norm_bf16_8192x4096(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 30), r = device_normal<bf16>({8192, 4096}, 31);
  const auto w = device_normal<bf16>({4096}, 12);
  time_on_device(state, 2.0 * 4 * 8192 * 4096, 0, [&] { benchmark::DoNotOptimize(ops::add_rms_norm(x, r, w)); });
}

void softmax_bf16_8192x4096(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 13);
  time_on_device(state, 2.0 * 2 * 8192 * 4096, 0, [&] { benchmark::DoNotOptimize(ops::softmax(x)); });
}

void gelu_bf16_64M(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({int64_t(1) << 26}, 14);
  time_on_device(state, 2.0 * 2 * double(int64_t(1) << 26), 0, [&] { benchmark::DoNotOptimize(ops::gelu(x)); });
}

// SwiGLU's hidden activation at the training step's shape (2 × 768 tokens, Llama-3-8B's MLP width):
// silu(gate) · up in one pass, and its backward (dgate, dup in one pass); PyTorch runs silu, then mul.
void swiglu_bf16_1536x14336(benchmark::State& state, bool backward) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto gate = device_normal<bf16>({1536, 14336}, 27), up = device_normal<bf16>({1536, 14336}, 28);
  const double n = 1536.0 * 14336;
  if (!backward)
    return time_on_device(state, 2.0 * 3 * n, 0, [&] {
      benchmark::DoNotOptimize(ops::gated_activation(gate, up, ops::Activation::silu));
    });
  const auto dy = device_normal<bf16>({1536, 14336}, 29);
  time_on_device(state, 2.0 * 5 * n, 0, [&] {
    benchmark::DoNotOptimize(ops::gated_activation_backward(dy, gate, up, ops::Activation::silu));
  });
}
void swiglu_fwd_bf16_1536x14336(benchmark::State& state) { swiglu_bf16_1536x14336(state, false); }
void swiglu_bwd_bf16_1536x14336(benchmark::State& state) { swiglu_bf16_1536x14336(state, true); }

void transpose_copy_bf16_8192x4096(benchmark::State& state) {  // x.t().contiguous()
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({8192, 4096}, 15);
  time_on_device(state, 2.0 * 2 * 8192 * 4096, 0, [&] { benchmark::DoNotOptimize(x.transpose(0, 1).contiguous()); });
}

void rope_bf16_1x32x8192x128(benchmark::State& state) {  // Llama-3-8B query heads over 8192 positions
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({1, 32, 8192, 128}, 16);
  Tensor<int64_t, Cpu> pos = Tensor<int64_t, Cpu>::empty({1, 8192});
  for (int64_t i = 0; i < 8192; ++i) pos.at(0, i) = i;
  const auto gpos = pos.to_device<Cuda>();
  const ops::RopeConfig cfg{.theta = 500000.0, .rotary_dim = 128, .scaling = ops::RopeScaling::llama3, .factor = 8.0};
  time_on_device(state, 2.0 * 2 * 32 * 8192 * 128, 0, [&] { benchmark::DoNotOptimize(ops::rope(x, gpos, cfg)); });
}

void embedding_backward_bf16_8192x128256x4096(benchmark::State& state) {  // Llama-3 vocabulary, 8192 tokens
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto dy = device_normal<bf16>({8192, 4096}, 17);
  const auto ids = Rng(18).uniform<double>({8192}, 0.0, 128256.0).to<int64_t>().to_device<Cuda>();
  time_on_device(state, 2.0 * (8192.0 * 4096 + 128256.0 * 4096), 0,
                 [&] { benchmark::DoNotOptimize(ops::embedding_backward(dy, ids, 128256)); });
}

void cross_entropy_bf16_8192x128256(benchmark::State& state) {  // forward over Llama-3's vocabulary
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto logits = device_normal<bf16>({8192, 128256}, 19);
  const auto targets = Rng(20).uniform<double>({8192}, 0.0, 128256.0).to<int64_t>().to_device<Cuda>();
  time_on_device(state, 2.0 * 8192 * 128256, 0, [&] { benchmark::DoNotOptimize(ops::cross_entropy(logits, targets)); });
}

// A decode step's linear in bf16 storage: x float [rows, 4096] · w bf16 [14336, 4096]ᵀ (Llama-3-8B's
// MLP up projection) through the GEMV kernel. PyTorch has no float-activation form: its figure is
// F.linear in bf16 on the same shape, which reads the same weight bytes.
void time_linear_bf16_weights(benchmark::State& state, int64_t rows) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<float>({rows, 4096}, 25);
  const auto w = device_normal<bf16>({14336, 4096}, 26);
  const Tensor<float, Cuda> no_bias;
  time_on_device(state, 2.0 * 14336 * 4096 + 4.0 * double(rows) * (4096 + 14336), 2.0 * double(rows) * 14336 * 4096,
                 [&] { benchmark::DoNotOptimize(llm::kernels::linear_bf16(x, w, no_bias)); });
}
void linear_bf16w_f32x_14336x4096_B1(benchmark::State& state) { time_linear_bf16_weights(state, 1); }
void linear_bf16w_f32x_14336x4096_B3(benchmark::State& state) { time_linear_bf16_weights(state, 3); }

// The same decode-step linear in pure bf16 (Decoder<bf16, Cuda>'s decode): ops::linear through
// cuBLASLt at 1 or 3 rows, against PyTorch's F.linear on the same shape. Beside the row above it
// says whether the GEMV kernel or cuBLASLt reads the weights faster at decode's row counts.
void time_linear_bf16(benchmark::State& state, int64_t rows) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  const auto x = device_normal<bf16>({rows, 4096}, 25);
  const auto w = device_normal<bf16>({14336, 4096}, 26);
  time_on_device(state, 2.0 * 14336 * 4096 + 2.0 * double(rows) * (4096 + 14336), 2.0 * double(rows) * 14336 * 4096,
                 [&] { benchmark::DoNotOptimize(ops::linear(x, w)); });
}
void linear_bf16_14336x4096_B1(benchmark::State& state) { time_linear_bf16(state, 1); }
void linear_bf16_14336x4096_B3(benchmark::State& state) { time_linear_bf16(state, 3); }

// q [B, Hq, Sq, D], k and v [B, Hkv, Sk, D] in bf16; forward, or backward from the forward's result;
// on the own kernels when `fallback` (a difference only when built with the cudnn-frontend).
void time_attention(benchmark::State& state, int64_t B, int64_t Hq, int64_t Hkv, int64_t Sq, int64_t Sk, int64_t D,
                    bool causal, bool backward, bool fallback = false) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  bench_gpu::report_errors(state, [&] {
#ifdef CTMLLM_HAS_CUDNN_FRONTEND
    std::optional<ops::ScopedAttentionFallback> own_kernels;
    if (fallback) own_kernels.emplace();
    const int64_t cudnn_runs = ops::cudnn_sdpa_runs();
#endif
    const auto q = device_normal<bf16>({B, Hq, Sq, D}, 21), k = device_normal<bf16>({B, Hkv, Sk, D}, 22);
    const auto v = device_normal<bf16>({B, Hkv, Sk, D}, 23), dy = device_normal<bf16>({B, Hq, Sq, D}, 24);
    const ops::AttentionOptions<Cuda> opts{.causal = causal};
    // Visible (query, key) pairs: all, or about half under a causal mask over equal lengths.
    const double pairs = double(B * Hq) * double(Sq) * double(Sk) * (causal && Sq == Sk ? 0.5 : 1.0);
    const double flops = (backward ? 10.0 : 4.0) * pairs * double(D);  // 2 GEMMs forward, 5 backward
    const double bytes = 2.0 * double(B) * double(Hq * Sq + 2 * Hkv * Sk) * double(D) * (backward ? 2.0 : 1.0);
    if (!backward) {
      time_on_device(state, bytes, flops, [&] { benchmark::DoNotOptimize(ops::attention(q, k, v, opts)); });
    } else {
      const auto fwd = ops::attention(q, k, v, opts);
      time_on_device(state, bytes, flops,
                     [&] { benchmark::DoNotOptimize(ops::attention_backward(dy, q, k, v, fwd, opts)); });
    }
#ifdef CTMLLM_HAS_CUDNN_FRONTEND
    state.counters["cudnn_sdpa"] = ops::cudnn_sdpa_runs() > cudnn_runs ? 1 : 0;
#endif
  });
}

void attention_fwd_bf16_vitb_1x12x2049x64(benchmark::State& state) { time_attention(state, 1, 12, 12, 2049, 2049, 64, false, false); }
void attention_bwd_bf16_vitb_1x12x2049x64(benchmark::State& state) { time_attention(state, 1, 12, 12, 2049, 2049, 64, false, true); }
void attention_fwd_bf16_llama8b_prefill_2048(benchmark::State& state) { time_attention(state, 1, 32, 8, 2048, 2048, 128, true, false); }
void attention_bwd_bf16_llama8b_prefill_2048(benchmark::State& state) { time_attention(state, 1, 32, 8, 2048, 2048, 128, true, true); }
void attention_fwd_bf16_llama8b_decode_4096(benchmark::State& state) { time_attention(state, 1, 32, 8, 1, 4096, 128, true, false); }
#ifdef CTMLLM_HAS_CUDNN_FRONTEND
void attention_fwd_bf16_vitb_1x12x2049x64_fallback(benchmark::State& state) { time_attention(state, 1, 12, 12, 2049, 2049, 64, false, false, true); }
void attention_bwd_bf16_vitb_1x12x2049x64_fallback(benchmark::State& state) { time_attention(state, 1, 12, 12, 2049, 2049, 64, false, true, true); }
void attention_fwd_bf16_llama8b_prefill_2048_fallback(benchmark::State& state) { time_attention(state, 1, 32, 8, 2048, 2048, 128, true, false, true); }
void attention_bwd_bf16_llama8b_prefill_2048_fallback(benchmark::State& state) { time_attention(state, 1, 32, 8, 2048, 2048, 128, true, true, true); }
#endif

}  // namespace

BENCHMARK(gemm_bf16_8192x4096x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(gemm_f32_2048x2048x2048)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bmm_bf16_64x1024x128x1024)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(layer_norm_bf16_8192x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(rms_norm_bf16_8192x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(add_rms_norm_bf16_8192x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(softmax_bf16_8192x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(gelu_bf16_64M)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(swiglu_fwd_bf16_1536x14336)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(swiglu_bwd_bf16_1536x14336)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(transpose_copy_bf16_8192x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(rope_bf16_1x32x8192x128)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(embedding_backward_bf16_8192x128256x4096)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(cross_entropy_bf16_8192x128256)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(linear_bf16w_f32x_14336x4096_B1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(linear_bf16w_f32x_14336x4096_B3)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(linear_bf16_14336x4096_B1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(linear_bf16_14336x4096_B3)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(attention_fwd_bf16_vitb_1x12x2049x64)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(attention_bwd_bf16_vitb_1x12x2049x64)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(attention_fwd_bf16_llama8b_prefill_2048)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(attention_bwd_bf16_llama8b_prefill_2048)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(attention_fwd_bf16_llama8b_decode_4096)->UseManualTime()->Unit(benchmark::kMillisecond);
#ifdef CTMLLM_HAS_CUDNN_FRONTEND
BENCHMARK(attention_fwd_bf16_vitb_1x12x2049x64_fallback)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(attention_bwd_bf16_vitb_1x12x2049x64_fallback)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(attention_fwd_bf16_llama8b_prefill_2048_fallback)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(attention_bwd_bf16_llama8b_prefill_2048_fallback)->UseManualTime()->Unit(benchmark::kMillisecond);
#endif

BENCHMARK_MAIN();
