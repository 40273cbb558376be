#pragma once
// `ctmllm bench`: this machine's speed on the library's workloads, timed in-process with
// std::chrono::steady_clock: no Python, no Google Benchmark (benchmarks/ holds the comparisons with
// PyTorch).
//
//   ctmllm bench [ops] [vision] [llm] [--model DIR] [--threads N] [--warmup N] [--repeat N] [--json | --csv]
//
// Workloads: ops (GEMM, attention, layer_norm, rms_norm, softmax and patch embedding at the ViT-B
// shapes), vision (a ViT3D forward), llm (a random Llama-shaped decoder: prefill, and greedy decode
// against the measured read bandwidth), and with --model a saved MLLM (CT encoding, prefill, decode).
// None named: ops, vision and llm, or only the model's with --model. Each entry runs --warmup times
// untimed, then --repeat times timed, and reports the median and minimum time and a rate from the
// median. Shapes are written without commas, so the CSV needs no quoting. docs/BENCHMARKS.md lists
// the entries.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ctmllm/bench/workloads.hpp"
#include "ctmllm/core/parallel.hpp"
#include "ctmllm/generate/sampling.hpp"
#include "ctmllm/mllm/report.hpp"
#include "ctmllm/ops/attention.hpp"
#include "ctmllm/ops/matmul.hpp"
#include "ctmllm/ops/norm.hpp"
#include "ctmllm/ops/patch_embed.hpp"
#include "ctmllm/ops/softmax.hpp"
#include "ctmllm/vision/vit3d.hpp"

namespace ctmllm::cli {

struct BenchArgs {
  std::vector<std::string> workloads, presets;
  std::string model, weights = "bf16";
  int threads = 0, warmup = 1, repeat = 5;
  bool json = false, csv = false;
  // ops: each knob is the shape its op runs at, written as it is printed
  std::string gemm = "2048x768x3072", attention = "1x12x2049x64", norm = "2049x768", softmax = "2049x2049",
              volume = "32x256x256", patch = "4x16x16";
  int64_t embed = 768;
  // vision and llm: empty or 0 keeps the preset's value
  std::string vit_volume, vit_patch;
  int64_t vit_hidden = 0, vit_layers = 0, vit_heads = 0, vit_mlp = 0;
  int64_t llm_hidden = 0, llm_layers = 0, llm_heads = 0, llm_kv_heads = 0, llm_intermediate = 0, llm_vocab = 0;
  int64_t prompt = 128, read_mib = 256;
  std::vector<int64_t> batches{1, 3};  // 3: the three regions of one CT decode together
};

// Everything a run needs, checked before anything is timed.
struct BenchPlan {
  bool ops = false, vision = false, llm = false;
  std::vector<int64_t> gemm, attention, norm, softmax, volume, patch;
  vision::ViT3DConfig vit;
  io::LlmConfig llm_config;
  llm::Storage storage = llm::Storage::bf16;
};

struct BenchResult {
  std::string name, shape;
  double median_ms = 0, min_ms = 0, rate = 0;
  std::string unit;
  std::optional<double> roofline;  // decode: rate over the measured read bandwidth
};

// "AxBxC" -> {A, B, C}: exactly `n` positive integers, or an Error naming the option.
inline std::vector<int64_t> parse_dims(const std::string& s, size_t n, const char* option, const char* form) {
  std::vector<int64_t> dims;
  for (size_t at = 0; at <= s.size();) {
    const size_t end = std::min(s.find('x', at), s.size());
    int64_t v = 0;
    const auto r = std::from_chars(s.data() + at, s.data() + end, v);
    if (r.ec != std::errc() || r.ptr != s.data() + end || v <= 0) {
      dims.clear();
      break;
    }
    dims.push_back(v);
    at = end + 1;
  }
  CTMLLM_CHECK(dims.size() == n, "bench ", option, ": expected ", form, " (positive integers), got '", s, "'");
  return dims;
}

inline std::string dims_str(std::span<const int64_t> dims) {
  std::string s;
  for (const int64_t d : dims) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

inline std::string llm_shape(const io::LlmConfig& c, llm::Storage storage) {
  return c.model_type + " hidden " + std::to_string(c.hidden_size) + " layers " + std::to_string(c.num_hidden_layers) +
         " heads " + std::to_string(c.num_attention_heads) + "/" + std::to_string(c.num_key_value_heads) + " mlp " +
         std::to_string(c.intermediate_size) + " vocab " + std::to_string(c.vocab_size) +
         (storage == llm::Storage::bf16 ? " bf16" : " f32");
}

inline BenchPlan plan_bench(const BenchArgs& a) {
  CTMLLM_CHECK(a.repeat >= 1, "bench: --repeat must be at least 1, got ", a.repeat);
  CTMLLM_CHECK(a.warmup >= 0, "bench: --warmup must be at least 0, got ", a.warmup);
  CTMLLM_CHECK(a.threads >= 0, "bench: --threads must be at least 0 (0: all), got ", a.threads);
  CTMLLM_CHECK(!(a.json && a.csv), "bench: give --json or --csv, not both");
  CTMLLM_CHECK(a.embed >= 1 && a.prompt >= 1 && a.read_mib >= 1, "bench: --embed, --prompt and --read-mib must be positive");
  CTMLLM_CHECK(!a.batches.empty(), "bench: --batch needs at least one batch size");
  for (const int64_t b : a.batches) CTMLLM_CHECK(b >= 1, "bench: --batch sizes must be positive, got ", b);
  CTMLLM_CHECK(a.weights == "bf16" || a.weights == "f32", "bench: --weights must be bf16 or f32, got '", a.weights, "'");
  for (const std::string& p : a.presets)
    CTMLLM_CHECK(p == "vit-b" || p == "qwen2.5-0.5b", "bench: unknown preset '", p, "' (vit-b or qwen2.5-0.5b)");
  const auto preset = [&](const char* name) { return std::find(a.presets.begin(), a.presets.end(), name) != a.presets.end(); };

  BenchPlan p;
  for (const std::string& w : a.workloads) {
    if (w == "ops") p.ops = true;
    else if (w == "vision") p.vision = true;
    else if (w == "llm") p.llm = true;
    else fail("bench: unknown workload '", w, "' (ops, vision or llm; --model DIR for a saved model)");
  }
  if (a.workloads.empty()) p.ops = p.vision = p.llm = a.model.empty();
  CTMLLM_CHECK(a.model.empty() || std::filesystem::is_regular_file(std::filesystem::path(a.model) / "config.json"),
               "bench --model: '", a.model, "' is not a model folder (it holds no config.json)");

  p.gemm = parse_dims(a.gemm, 3, "--gemm", "MxKxN");
  p.attention = parse_dims(a.attention, 4, "--attention", "BxHxSxD");
  p.norm = parse_dims(a.norm, 2, "--norm", "RxC");
  p.softmax = parse_dims(a.softmax, 2, "--softmax", "RxC");
  p.volume = parse_dims(a.volume, 3, "--volume", "DxHxW");
  p.patch = parse_dims(a.patch, 3, "--patch", "DxHxW");
  for (int i = 0; i < 3; ++i)
    CTMLLM_CHECK(p.volume[size_t(i)] % p.patch[size_t(i)] == 0, "bench: --volume ", a.volume,
                 " is not divisible by --patch ", a.patch);

  // The default ViT3DConfig is M3D-CLIP's ViT-B; without the preset, the same layout at ViT-S width
  // on a 32x128x128 volume (512 patches, ~13 GFLOP), well under a second.
  vision::ViT3DConfig& v = p.vit;
  if (!preset("vit-b")) {
    v.img_size = {32, 128, 128};
    v.hidden_size = 384;
    v.num_layers = 6;
    v.num_heads = 6;
    v.mlp_dim = 1536;
  }
  if (!a.vit_volume.empty()) {
    const auto d = parse_dims(a.vit_volume, 3, "--vit-volume", "DxHxW");
    v.img_size = {d[0], d[1], d[2]};
  }
  if (!a.vit_patch.empty()) {
    const auto d = parse_dims(a.vit_patch, 3, "--vit-patch", "DxHxW");
    v.patch_size = {d[0], d[1], d[2]};
  }
  if (a.vit_hidden) v.hidden_size = a.vit_hidden;
  if (a.vit_layers) v.num_layers = a.vit_layers;
  if (a.vit_heads) v.num_heads = a.vit_heads;
  if (a.vit_mlp) v.mlp_dim = a.vit_mlp;
  v.validate("bench vision");

  // Without the preset, a Llama of 125 M parameters (250 MB in bf16): far past the caches, so decode
  // is bound by memory as a real model's is, and it builds in about a second.
  io::LlmConfig& c = p.llm_config;
  if (preset("qwen2.5-0.5b")) {
    c = bench::qwen25_05b_config();
  } else {
    c.model_type = "llama";
    c.vocab_size = 32000;
    c.hidden_size = 768;
    c.intermediate_size = 2048;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 12;
    c.num_key_value_heads = 4;
    c.max_position_embeddings = 2048;
  }
  if (a.llm_hidden) c.hidden_size = a.llm_hidden;
  if (a.llm_layers) c.num_hidden_layers = a.llm_layers;
  if (a.llm_heads) c.num_attention_heads = a.llm_heads;
  if (a.llm_kv_heads) c.num_key_value_heads = a.llm_kv_heads;
  if (a.llm_intermediate) c.intermediate_size = a.llm_intermediate;
  if (a.llm_vocab) c.vocab_size = a.llm_vocab;
  CTMLLM_CHECK(c.hidden_size > 0 && c.num_hidden_layers > 0 && c.num_attention_heads > 0 && c.num_key_value_heads > 0 &&
                   c.intermediate_size > 0 && c.vocab_size > 0,
               "bench llm: --llm-hidden, --llm-layers, --llm-heads, --llm-kv-heads, --llm-intermediate and --llm-vocab "
               "must be positive");
  CTMLLM_CHECK(c.hidden_size % c.num_attention_heads == 0 && c.num_attention_heads % c.num_key_value_heads == 0,
               "bench llm: hidden ", c.hidden_size, " must be divisible by heads ", c.num_attention_heads,
               ", and heads by kv heads ", c.num_key_value_heads);
  c.head_dim = c.hidden_size / c.num_attention_heads;
  p.storage = a.weights == "bf16" ? llm::Storage::bf16 : llm::Storage::compute;
  return p;
}

// Prints each entry as it completes (text or CSV), or every entry as one JSON object at the end.
class BenchReport {
 public:
  explicit BenchReport(const BenchArgs& a) : a_(a) {
    if (a.csv) {
      std::printf("name,shape,median_ms,min_ms,rate,unit\n");
    } else if (!a.json) {
      std::printf("ctmllm bench: %d threads, %d warm-up + %d timed runs per entry, rate from the median\n\n", num_threads(),
                  a.warmup, a.repeat);
      std::printf("%-20s %12s %12s %20s  %s\n", "name", "median ms", "min ms", "rate", "shape");
    }
    std::fflush(stdout);
  }

  void add(const BenchResult& r) {
    if (a_.csv) {
      std::printf("%s,%s,%.6g,%.6g,%.6g,%s\n", r.name.c_str(), r.shape.c_str(), r.median_ms, r.min_ms, r.rate, r.unit.c_str());
    } else if (!a_.json) {
      std::printf("%-20s %12.3f %12.3f %10.2f %-9s  %s", r.name.c_str(), r.median_ms, r.min_ms, r.rate, r.unit.c_str(),
                  r.shape.c_str());
      if (r.roofline) std::printf("  (%.0f %% of memory_read)", 100 * *r.roofline);
      std::printf("\n");
    }
    std::fflush(stdout);
    results_.push_back(r);
  }

  void finish() const {
    if (!a_.json) return;
    nlohmann::ordered_json j = {{"threads", num_threads()}, {"warmup", a_.warmup}, {"repeat", a_.repeat},
                                {"results", nlohmann::ordered_json::array()}};
    for (const BenchResult& r : results_) {
      nlohmann::ordered_json e = {{"name", r.name}, {"shape", r.shape}, {"median_ms", r.median_ms},
                                  {"min_ms", r.min_ms}, {"rate", r.rate}, {"unit", r.unit}};
      if (r.roofline) e["roofline_fraction"] = *r.roofline;
      j["results"].push_back(e);
    }
    std::cout << j.dump(2) << "\n";
  }

 private:
  const BenchArgs& a_;
  std::vector<BenchResult> results_;
};

struct Timing {
  double median_ms, min_ms;
};

// --warmup untimed runs, then --repeat timed ones.
template <class F>
Timing time_runs(const BenchArgs& a, F&& run) {
  for (int i = 0; i < a.warmup; ++i) run();
  std::vector<double> ms;
  for (int i = 0; i < a.repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  return {n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2, ms.front()};
}

// `work` is what one run does in the unit's numerator (GFLOP, GB, tokens, CTs).
inline BenchResult result(std::string name, std::string shape, const Timing& t, double work, std::string unit) {
  return {std::move(name), std::move(shape), t.median_ms, t.min_ms, work / (t.median_ms * 1e-3), std::move(unit), {}};
}

inline void bench_ops(const BenchArgs& a, const BenchPlan& p, BenchReport& out) {
  Rng rng(0);
  {  // The ViT MLP's up-projection: tokens [M, K] x weight [N, K]^T.
    const int64_t M = p.gemm[0], K = p.gemm[1], N = p.gemm[2];
    const auto x = rng.normal<float>({M, K}), w = rng.normal<float>({N, K});
    const Timing t = time_runs(a, [&] { ops::linear(x, w); });
    out.add(result("ops/gemm", dims_str(p.gemm), t, 2e-9 * double(M * K * N), "GFLOP/s"));
  }
  {  // Bidirectional attention, as in the ViT.
    const Shape s{p.attention[0], p.attention[1], p.attention[2], p.attention[3]};
    const auto q = rng.normal<float>(s), k = rng.normal<float>(s), v = rng.normal<float>(s);
    const Timing t = time_runs(a, [&] { ops::attention(q, k, v, ops::AttentionOptions<Cpu>{}); });
    const double flops = 4.0 * double(s[0] * s[1] * s[2]) * double(s[2] * s[3]);
    out.add(result("ops/attention", dims_str(p.attention), t, 1e-9 * flops, "GFLOP/s"));
  }
  // The norms and softmax are memory bound: counted as one read and one write of x.
  const double norm_gb = 8e-9 * double(p.norm[0] * p.norm[1]);
  {
    const auto x = rng.normal<float>({p.norm[0], p.norm[1]}), w = rng.normal<float>({p.norm[1]}),
               b = rng.normal<float>({p.norm[1]});
    const Timing t = time_runs(a, [&] { ops::layer_norm(x, w, b, 1e-5); });
    out.add(result("ops/layer_norm", dims_str(p.norm), t, norm_gb, "GB/s"));
    const Timing r = time_runs(a, [&] { ops::rms_norm(x, w, 1e-6); });
    out.add(result("ops/rms_norm", dims_str(p.norm), r, norm_gb, "GB/s"));
  }
  {  // Rows of attention scores (one ViT-B head: 2049 x 2049).
    const auto x = rng.normal<float>({p.softmax[0], p.softmax[1]});
    const Timing t = time_runs(a, [&] { ops::softmax(x, -1); });
    out.add(result("ops/softmax", dims_str(p.softmax), t, 8e-9 * double(p.softmax[0] * p.softmax[1]), "GB/s"));
  }
  {  // One CT volume into tokens of width --embed (kernel = stride = patch).
    const int64_t P = p.patch[0] * p.patch[1] * p.patch[2], E = a.embed;
    const int64_t N = (p.volume[0] / p.patch[0]) * (p.volume[1] / p.patch[1]) * (p.volume[2] / p.patch[2]);
    const auto vol = rng.uniform<float>({1, 1, p.volume[0], p.volume[1], p.volume[2]});
    const auto w = rng.normal<float>({E, P}, 0.0, 0.02), b = rng.normal<float>({E});
    const Timing t = time_runs(a, [&] { ops::patch_embed(vol, w, b, {p.patch[0], p.patch[1], p.patch[2]}); });
    out.add(result("ops/patch_embed", "1x1x" + dims_str(p.volume) + " patch " + dims_str(p.patch) + " embed " +
                                          std::to_string(E),
                   t, 2e-9 * double(N * P * E), "GFLOP/s"));
  }
}

inline void bench_vision(const BenchArgs& a, const BenchPlan& p, BenchReport& out) {
  const vision::ViT3DConfig& c = p.vit;
  vision::ViT3D<float> vit(c);
  Rng rng(0);
  vit.init(rng);
  const autograd::Variable<float> x(rng.uniform<float>({1, c.in_channels, c.img_size[0], c.img_size[1], c.img_size[2]}));
  autograd::NoGradGuard no_grad;
  const Timing t = time_runs(a, [&] { vit.forward(x); });
  const std::string shape = "1x" + std::to_string(c.in_channels) + "x" + dims_str(c.img_size) + " patch " +
                            dims_str(c.patch_size) + " hidden " + std::to_string(c.hidden_size) + " layers " +
                            std::to_string(c.num_layers) + " heads " + std::to_string(c.num_heads) + " mlp " +
                            std::to_string(c.mlp_dim);
  out.add(result("vision/vit3d_forward", shape, t, 1e-9 * bench::vit3d_forward_flops(c), "GFLOP/s"));
}

// The read bandwidth over --read-mib MiB, decode's roofline; returns it in GB/s.
inline double bench_memory_read(const BenchArgs& a, BenchReport& out) {
  const std::vector<float> buffer(size_t(a.read_mib) << 18, 1.0f);  // MiB of 4-byte floats
  const Timing t = time_runs(a, [&] { bench::read_all(buffer); });
  const BenchResult r = result("memory_read", std::to_string(a.read_mib) + " MiB", t,
                               1e-9 * double(buffer.size() * sizeof(float)), "GB/s");
  out.add(r);
  return r.rate;
}

// Prefill of `prompt` tokens at batch 1, then greedy decode steps at each --batch size after a
// prompt of that length (one step per timed run; the cache holds the prompt and every step).
inline void bench_decoder(const BenchArgs& a, const llm::Decoder<float>& m, const std::string& prefix, int64_t prompt,
                          const std::string& shape, double read_gbps, BenchReport& out) {
  autograd::NoGradGuard no_grad;
  const int64_t V = m.vocab_size();
  // Logits of the last `keep` positions (0: all), as generation asks.
  const auto forward = [&m](const Tensor<int64_t>& ids, llm::KvCache<float>& cache, int64_t keep) {
    llm::DecoderInput<float> in;
    in.input_ids = ids;
    in.cache = &cache;
    in.logits_to_keep = keep;
    return m.forward(in).logits.value();
  };
  const auto ids = bench::synthetic_ids(1, prompt, V);
  const Timing prefill = time_runs(a, [&] {
    auto cache = m.make_cache(1, prompt);
    forward(ids, cache, 1);
  });
  out.add(result(prefix + "/prefill", "batch 1 prompt " + std::to_string(prompt) + " " + shape, prefill, double(prompt),
                 "tokens/s"));
  const double weight_gb = 1e-9 * bench::decode_weight_bytes(m);
  for (const int64_t batch : a.batches) {
    auto cache = m.make_cache(batch, prompt + a.warmup + a.repeat);
    Tensor<float> logits = forward(bench::synthetic_ids(batch, prompt, V), cache, 1);
    Tensor<int64_t> next = Tensor<int64_t>::empty({batch, 1});
    const Timing t = time_runs(a, [&] {
      for (int64_t b = 0; b < batch; ++b)
        next.data()[b] = generate::argmax(std::span<const float>(logits.data() + b * V, size_t(V)));
      logits = forward(next, cache, 1);
    });
    BenchResult r = result(prefix + "/decode_b" + std::to_string(batch),
                           "batch " + std::to_string(batch) + " after " + std::to_string(prompt) + " " + shape, t,
                           weight_gb, "GB/s");
    r.roofline = r.rate / read_gbps;
    out.add(r);
  }
}

// A saved MLLM: encoding one random CT of the model's input size (and its mask, when the model reads
// one), then its LLM's prefill of the visual tokens and --prompt text tokens, and decode.
inline void bench_model(const BenchArgs& a, const BenchPlan& p, double read_gbps, BenchReport& out) {
  const auto model = mllm::Model<float>::from_pretrained(a.model, {p.storage});
  const mllm::MllmConfig& c = model.config();
  const auto size = c.input_size();
  const Shape volume{1, c.vision.in_channels, size[0], size[1], size[2]};
  Rng rng(0);
  const Tensor<float> ct = rng.uniform<float>(volume);
  const Tensor<float> mask = c.segmentation_mask ? rng.uniform<float>(volume) : Tensor<float>();
  const Timing t = time_runs(a, [&] { mllm::encode_ct(model, ct, mask); });
  out.add(result("model/encode_ct",
                 "1x" + std::to_string(c.vision.in_channels) + "x" + dims_str(size) +
                     (c.segmentation_mask ? " and mask" : "") + " to " + std::to_string(c.visual_tokens()) +
                     " visual tokens",
                 t, 1.0, "CT/s"));
  bench_decoder(a, model.llm(), "model", c.visual_tokens() + a.prompt, llm_shape(model.llm().config(), p.storage),
                read_gbps, out);
}

inline void run_bench(const BenchArgs& a) {
  const BenchPlan p = plan_bench(a);
  if (a.threads > 0) set_num_threads(a.threads);
  BenchReport out(a);
  if (p.ops) bench_ops(a, p, out);
  if (p.vision) bench_vision(a, p, out);
  if (p.llm || !a.model.empty()) {
    const double read_gbps = bench_memory_read(a, out);
    if (p.llm) {
      const llm::Decoder<float> m(p.llm_config, llm::RandomWeights(0), {p.storage});
      bench_decoder(a, m, "llm", a.prompt, llm_shape(p.llm_config, p.storage), read_gbps, out);
    }
    if (!a.model.empty()) bench_model(a, p, read_gbps, out);
  }
  out.finish();
}

inline void add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench", "Time this machine on the library's workloads: ops, a ViT3D forward, LLM prefill and decode, a saved model");
  static BenchArgs a;
  cmd->add_option("workload", a.workloads, "ops, vision and/or llm (default: all three, or only the model's with --model)");
  cmd->add_option("--model", a.model, "A saved MLLM folder: time its CT encoding, prefill and decode");
  cmd->add_option("--threads", a.threads, "CPU threads (default: all)");
  cmd->add_option("--warmup", a.warmup, "Untimed runs before the timed ones")->capture_default_str();
  cmd->add_option("--repeat", a.repeat, "Timed runs per entry (decode: steps)")->capture_default_str();
  cmd->add_flag("--json", a.json,
                "Print one JSON object at the end: threads, warmup, repeat and results [{name, shape, median_ms, min_ms, "
                "rate, unit}]");
  cmd->add_flag("--csv", a.csv, "Print CSV: name,shape,median_ms,min_ms,rate,unit");
  cmd->add_option("--preset", a.presets, "vit-b: vision at M3D-CLIP's ViT-B; qwen2.5-0.5b: llm at Qwen2.5-0.5B's shape")
      ->delimiter(',')
      ->allow_extra_args(false);

  const char* ops = "ops (shapes as printed)";
  cmd->add_option("--gemm", a.gemm, "GEMM MxKxN: x [M, K] times w [N, K] transposed")->capture_default_str()->group(ops);
  cmd->add_option("--attention", a.attention, "Attention BxHxSxD: batch, heads, tokens, head dim")
      ->capture_default_str()
      ->group(ops);
  cmd->add_option("--norm", a.norm, "layer_norm and rms_norm RxC")->capture_default_str()->group(ops);
  cmd->add_option("--softmax", a.softmax, "softmax RxC, over the rows")->capture_default_str()->group(ops);
  cmd->add_option("--volume", a.volume, "Patch embedding: CT volume DxHxW")->capture_default_str()->group(ops);
  cmd->add_option("--patch", a.patch, "Patch embedding: patch DxHxW")->capture_default_str()->group(ops);
  cmd->add_option("--embed", a.embed, "Patch embedding: token width")->capture_default_str()->group(ops);

  const char* vision = "vision (default: a ViT-S width ViT3D on 1x1x32x128x128; each knob replaces the preset's value)";
  cmd->add_option("--vit-volume", a.vit_volume, "Input volume DxHxW")->group(vision);
  cmd->add_option("--vit-patch", a.vit_patch, "Patch DxHxW")->group(vision);
  cmd->add_option("--vit-hidden", a.vit_hidden, "Hidden size")->group(vision);
  cmd->add_option("--vit-layers", a.vit_layers, "Blocks")->group(vision);
  cmd->add_option("--vit-heads", a.vit_heads, "Attention heads")->group(vision);
  cmd->add_option("--vit-mlp", a.vit_mlp, "MLP width")->group(vision);

  const char* llm = "llm (default: a random 125 M-parameter Llama; each knob replaces the preset's value)";
  cmd->add_option("--llm-hidden", a.llm_hidden, "Hidden size")->group(llm);
  cmd->add_option("--llm-layers", a.llm_layers, "Layers")->group(llm);
  cmd->add_option("--llm-heads", a.llm_heads, "Query heads")->group(llm);
  cmd->add_option("--llm-kv-heads", a.llm_kv_heads, "Key/value heads")->group(llm);
  cmd->add_option("--llm-intermediate", a.llm_intermediate, "MLP width")->group(llm);
  cmd->add_option("--llm-vocab", a.llm_vocab, "Vocabulary")->group(llm);
  cmd->add_option("--prompt", a.prompt, "Prompt tokens before decoding (--model: after the visual tokens)")
      ->capture_default_str()
      ->group(llm);
  cmd->add_option("--batch", a.batches, "Decode batch sizes")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->capture_default_str()
      ->group(llm);
  cmd->add_option("--weights", a.weights, "LLM matrices in bf16 or f32 (also --model's; `ctmllm report` holds f32 unless --bf16)")
      ->capture_default_str()
      ->group(llm);
  cmd->add_option("--read-mib", a.read_mib, "Array read for the memory bandwidth, in MiB (far past the caches)")
      ->capture_default_str()
      ->group(llm);
  cmd->callback([] { run_bench(a); });
}

}  // namespace ctmllm::cli
