// Model timings on the GPU (Google Benchmark, manual time), the workloads torch_gpu_reference.py
// times in PyTorch under the same names:
//  - the 3D ViT-B forward (1×1×32×256×256, patch 4×16×16, hidden 768, 12 layers; 2049 tokens) with
//    bf16 weights and activations at batch 1, 2 and 8 (CUDA events around the forward), and two
//    batch-1 forwards at once, each from its own thread on its own stream (cuda::StreamScope): the
//    wall time until both are done, against PyTorch's two streams from one thread (compare with
//    twice the B1 row: what the GPU gains by overlapping two requests);
//  - a Llama-3.1-8B-shaped decoder with random bf16 weights (16 GB): the prefill of 512 embedded
//    tokens (logits of the last position only), and greedy decode steps after it with the KV cache
//    on the device, at batch 1 and 3. A step is the wall time of one token per row: the forward of
//    [B, 1] ids, the last logits copied to the host and their argmax (what generate does). The
//    plain rows replay the step from a CUDA graph (llm::StaticDecodeStep, generate's default on the
//    GPU; counter graph = 1 when the capture held); the _direct rows launch each kernel through
//    Decoder::forward.
//  - the paper's training step at full size (PERF.md's anchors): ViT-B + SPP + the 8B decoder,
//    batch 2 × 768 tokens (256 visual tokens after the first, the loss on the last 468), bf16 compute
//    with float master weights and AdamW (lr 5e-5, no decay) over what trains: the ViT, the projector,
//    embed_tokens and lm_head (frozen-LLM mode), plus LoRA r16 on every linear of the decoder blocks
//    (LoRA mode). A step is forward, backward, the gradients to float, AdamW and the write-back, timed
//    on the host after the device is done; counter peak_GiB is the allocator's peak over the steps
//    (reset before the first, as PyTorch's max_memory_allocated after reset_peak_memory_stats).
// Without a GPU every benchmark skips.
#include <array>
#include <chrono>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "ctmllm/bench/workloads.hpp"
#include "ctmllm/core/cuda/stream.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/llm/static_decode_step.hpp"
#include "ctmllm/mllm/model.hpp"
#include "ctmllm/ops/reduce.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/finetune.hpp"
#include "ctmllm/train/mixed_precision.hpp"
#include "ctmllm/vision/vit3d.hpp"
#include "device_timing.hpp"

using namespace ctmllm;
using bench_gpu::device_normal;
using bench_gpu::time_on_device;

namespace {

constexpr int64_t kPrefill = 512;     // prompt tokens before decoding (the anchor's)
constexpr int64_t kDecodeWarmup = 3;  // untimed steps first (cuBLASLt's heuristics for M = B, the allocator)
constexpr int64_t kDecodeSteps = 64;  // timed decode steps per batch size

void vit3d_b_fwd_bf16(benchmark::State& state, int64_t batch) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  bench_gpu::report_errors(state, [&] {
    const vision::ViT3DConfig c;  // ViT-B, 32×256×256, patch 4×16×16
    vision::ViT3D<bf16, Cuda> vit(c);
    Rng rng(1);
    vit.init(rng);
    const autograd::Variable<bf16, Cuda> x(device_normal<bf16>({batch, 1, 32, 256, 256}, 2));
    autograd::NoGradGuard no_grad;
    time_on_device(state, 0, bench::vit3d_forward_flops(c, batch),
                   [&] { benchmark::DoNotOptimize(vit.forward(x).tokens.value()); });
  });
}
void vit3d_b_fwd_bf16_B1(benchmark::State& state) { vit3d_b_fwd_bf16(state, 1); }
void vit3d_b_fwd_bf16_B2(benchmark::State& state) { vit3d_b_fwd_bf16(state, 2); }
void vit3d_b_fwd_bf16_B8(benchmark::State& state) { vit3d_b_fwd_bf16(state, 8); }

void vit3d_b_fwd_bf16_B1_two_streams(benchmark::State& state) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  bench_gpu::report_errors(state, [&] {
    const vision::ViT3DConfig c;
    vision::ViT3D<bf16, Cuda> vit(c);
    Rng rng(1);
    vit.init(rng);
    using Input = autograd::Variable<bf16, Cuda>;
    const std::array<Input, 2> x = {Input(device_normal<bf16>({1, 1, 32, 256, 256}, 2)),
                                    Input(device_normal<bf16>({1, 1, 32, 256, 256}, 3))};
    ctmllm::cuda::synchronize();
    std::array<ctmllm::cuda::Stream, 2> streams;
    std::array<std::string, 2> errors;
    const auto forward_on = [&](size_t i) {
      try {
        autograd::NoGradGuard no_grad;  // per thread
        const ctmllm::cuda::StreamScope scope(streams[i].get());
        benchmark::DoNotOptimize(vit.forward(x[i]).tokens.value());
        streams[i].synchronize();
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    };
    const auto both = [&] {
      std::thread other(forward_on, size_t(1));
      forward_on(0);
      other.join();
    };
    both();  // warm-up
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      both();
      state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    for (const std::string& e : errors)
      if (!e.empty()) return state.SkipWithError(e.c_str());
  });
}

// The 8B decoder, built once (random weights drawn on the host take a while) and kept for the
// program's life: never destroyed, so no device memory is freed after the CUDA runtime shuts down.
const llm::Decoder<bf16, Cuda>& llama8b() {
  static const auto* model = new llm::Decoder<bf16, Cuda>(bench::llama31_8b_config(), llm::RandomWeights(7));
  return *model;
}

// inputs_embeds [B, 512, 4096] of embedding scale, as the anchor's.
autograd::Variable<bf16, Cuda> prompt_embeddings(int64_t batch) {
  return autograd::Variable<bf16, Cuda>(device_normal<bf16>({batch, kPrefill, 4096}, 3, 0.02));
}

void llama8b_prefill512_bf16(benchmark::State& state, int64_t batch) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  bench_gpu::report_errors(state, [&] {
    const auto& model = llama8b();
    llm::DecoderInput<bf16, Cuda> in;
    in.inputs_embeds = prompt_embeddings(batch);
    in.logits_to_keep = 1;
    autograd::NoGradGuard no_grad;
    // The matmuls' parameters: every one but the embedding table, which is only gathered from.
    const io::LlmConfig& cfg = model.config();
    const double params = double(model.parameters().numel() - cfg.vocab_size * cfg.hidden_size);
    time_on_device(state, 0, 2.0 * params * double(batch * kPrefill),
                   [&] { benchmark::DoNotOptimize(model.forward(in).logits.value()); });
  });
}
void llama8b_prefill512_bf16_B1(benchmark::State& state) { llama8b_prefill512_bf16(state, 1); }
void llama8b_prefill512_bf16_B3(benchmark::State& state) { llama8b_prefill512_bf16(state, 3); }

void llama8b_decode_step_bf16(benchmark::State& state, int64_t batch, bool graph) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  bench_gpu::report_errors(state, [&] {
    const auto& model = llama8b();
    autograd::NoGradGuard no_grad;
    llm::KvCache<bf16, Cuda> cache = model.make_cache(batch, kPrefill + kDecodeWarmup + kDecodeSteps);
    // Greedy: each row's next token is the argmax of its last logits, taken on the device as
    // generate() takes it (B ids come back, not B·V logits).
    std::vector<int64_t> next(static_cast<size_t>(batch));
    const auto choose = [&](const autograd::Variable<bf16, Cuda>& logits) {
      next = ops::argmax(logits.value(), 2).to_vector();
    };
    llm::DecoderInput<bf16, Cuda> prefill;
    prefill.inputs_embeds = prompt_embeddings(batch);
    prefill.cache = &cache;
    prefill.logits_to_keep = 1;
    choose(model.forward(prefill).logits);
    llm::StaticDecodeStep<bf16, Cuda> fixed(model, cache);
    const auto step = [&] {
      if (graph) return choose(fixed(next));
      llm::DecoderInput<bf16, Cuda> in;
      in.input_ids = Tensor<int64_t, Cpu>::from(std::span<const int64_t>(next), {batch, 1}).to_device<Cuda>();
      in.cache = &cache;
      choose(model.forward(in).logits);
    };
    for (int64_t i = 0; i < kDecodeWarmup; ++i) step();
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    state.counters["weight_bytes_per_second"] =
        benchmark::Counter(bench::decode_weight_bytes(model), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tokens_per_second"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
    if (graph) {
      state.counters["graph"] = fixed.graph_captured() ? 1 : 0;
      if (!fixed.graph_captured()) state.SetLabel("no graph: " + fixed.graph_failure());
    }
  });
}
void llama8b_decode_step_bf16_B1(benchmark::State& state) { llama8b_decode_step_bf16(state, 1, true); }
void llama8b_decode_step_bf16_B3(benchmark::State& state) { llama8b_decode_step_bf16(state, 3, true); }
void llama8b_decode_step_bf16_B1_direct(benchmark::State& state) { llama8b_decode_step_bf16(state, 1, false); }
void llama8b_decode_step_bf16_B3_direct(benchmark::State& state) { llama8b_decode_step_bf16(state, 3, false); }

void train_step_8b(benchmark::State& state, train::FineTuneMode mode) {
  if (!Cuda::available()) return time_on_device(state, 0, 0, [] {});
  bench_gpu::report_errors(state, [&] {
    constexpr int64_t kBatch = 2, kTokens = 768, kIgnored = 300;
    mllm::MllmConfig config;  // ViT-B on 32×256×256, SPP to 4096: 256 visual tokens
    config.image_token_id = 128002;
    mllm::Model<bf16, Cuda> model(config, llama8b());  // shares the 8B weights with the decode benchmarks
    Rng rng(4);
    model.init(rng);
    train::FineTuneOptions finetune;
    finetune.mode = mode;
    const train::FineTune<bf16, Cuda> ft = train::prepare_finetune(model.llm(), finetune);
    std::vector<autograd::Variable<bf16, Cuda>> params = model.vision().parameters().trainable();
    for (const auto& p : model.projector_parameters().trainable()) params.push_back(p);
    for (const auto& p : train::trainable_parameters(model.llm(), ft)) params.push_back(p);
    train::MasterWeights<bf16, Cuda> master(params);
    train::AdamW<float, Cuda> opt(master.params(), {.lr = 5e-5, .weight_decay = 0.0});
    Tensor<int64_t, Cpu> ids = bench::synthetic_ids(kBatch, kTokens, 128000);
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t s = 1; s <= config.visual_tokens(); ++s) ids.at(b, s) = config.image_token_id;
    Tensor<int64_t, Cpu> labels = ids.clone();
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t s = 0; s < kIgnored; ++s) labels.at(b, s) = -100;
    const mllm::MllmInput<bf16, Cuda> in{.input_ids = ids.to_device<Cuda>(),
                                         .ct = device_normal<bf16>({kBatch, 1, 32, 256, 256}, 5),
                                         .labels = labels.to_device<Cuda>()};
    const auto step = [&] {
      for (auto& p : params) p.zero_grad();
      model.forward(in).loss.backward();
      master.load_grads();
      opt.step();
      master.write_back();  // reads a flag back: the device is done when it returns
    };
    ctmllm::cuda::allocator().reset_peak();
    for (int i = 0; i < 2; ++i) step();  // warm-up: moments, cuBLASLt heuristics, the allocator's cache
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    int64_t trainable = 0;
    for (const auto& p : params) trainable += p.value().numel();
    state.counters["trainable_params"] = double(trainable);
    state.counters["peak_GiB"] = double(ctmllm::cuda::allocator().stats().peak_in_use) / double(1 << 30);
  });
}
void train_frozen_llm_B2_L768_step(benchmark::State& state) { train_step_8b(state, train::FineTuneMode::frozen); }
void train_lora_r16_B2_L768_step(benchmark::State& state) { train_step_8b(state, train::FineTuneMode::lora); }

}  // namespace

BENCHMARK(vit3d_b_fwd_bf16_B1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(vit3d_b_fwd_bf16_B2)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(vit3d_b_fwd_bf16_B8)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(10);
BENCHMARK(vit3d_b_fwd_bf16_B1_two_streams)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(llama8b_prefill512_bf16_B1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(llama8b_prefill512_bf16_B3)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
// Exactly kDecodeSteps: the cache holds that many steps after the prefill and the warm-up.
BENCHMARK(llama8b_decode_step_bf16_B1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(kDecodeSteps);
BENCHMARK(llama8b_decode_step_bf16_B3)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(kDecodeSteps);
BENCHMARK(llama8b_decode_step_bf16_B1_direct)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(kDecodeSteps);
BENCHMARK(llama8b_decode_step_bf16_B3_direct)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(kDecodeSteps);
BENCHMARK(train_frozen_llm_B2_L768_step)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(train_lora_r16_B2_L768_step)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);

BENCHMARK_MAIN();
