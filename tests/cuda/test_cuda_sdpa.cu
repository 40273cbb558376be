// Attention through cuDNN's fused SDPA (ops/cuda/sdpa_cudnn.cuh) against the CPU kernels, in
// bfloat16 and float16, forward (out, lse) and backward (dq, dk, dv): MHA and GQA, causal or not, with
// and without a key padding mask (one batch entry right-padded, one left-padded, so that under the
// causal mask its first queries see no key), head dims 64 and 128; then cuDNN's other masks (a chunk
// of queries after a padded cache, more queries than keys), head dim 256 and q read in place from a
// permuted projection, left padding longer than a key tile (the bias hides whole tiles before the
// visible keys). Every case must run on cuDNN (its run counter moves; cuDNN's last refusal is
// printed when not). New device blocks are NaN-poisoned, outputs included. Also: the switch to the own
// kernels and the calls they always run (float32, decode steps), and, without a GPU, which calls go to
// cuDNN with which mask and that the graph cache builds once per key and keeps the latest.
#include <bit>

#include "ctmllm/ops/attention.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

#ifdef CTMLLM_HAS_CUDNN_FRONTEND

namespace {

struct SdpaCase {
  const char* name;
  int64_t B, Hq, Hkv, Sq, Sk, D;
  bool causal, padded, permuted_q;
};

// Keys kept per batch entry: entry 0 all of them, entry 1 all but its last Sk/4, the others all but
// their first Sk/4.
Tensor<uint8_t, Cpu> padding_mask(int64_t B, int64_t Sk) {
  Tensor<uint8_t, Cpu> m = Tensor<uint8_t, Cpu>::ones({B, Sk});
  for (int64_t b = 1; b < B; ++b)
    for (int64_t j = 0; j < Sk / 4; ++j) m.at(b, b == 1 ? Sk - 1 - j : j) = 0;
  return m;
}

std::vector<SdpaCase> sdpa_cases() {
  std::vector<SdpaCase> cases;
  for (const bool gqa : {false, true})
    for (const bool causal : {false, true})
      for (const bool padded : {false, true})
        for (const int64_t D : {64, 128})
          cases.push_back({"MHA/GQA x causal x padded x head dim", padded ? 3 : 2, gqa ? 8 : 4, gqa ? 2 : 4, 109, 109,
                           D, causal, padded, false});
  cases.push_back({"a chunk of queries after a cache (bottom-right mask)", 2, 8, 2, 37, 101, 128, true, false, false});
  cases.push_back({"MQA, a chunk of queries after a padded cache", 3, 8, 1, 16, 77, 128, true, true, false});
  cases.push_back({"causal, more queries than keys", 1, 4, 4, 50, 30, 64, true, false, false});
  cases.push_back({"head dim 256", 1, 4, 4, 70, 70, 256, false, false, false});
  cases.push_back({"q read in place from a permuted projection", 2, 4, 4, 64, 64, 64, true, true, true});
  // entry 2 hides its first 175 keys: whole key tiles with nothing visible before the visible ones
  cases.push_back({"left padding longer than a key tile", 3, 4, 4, 64, 700, 64, false, true, false});
  return cases;
}

template <class T>
void check_case(const SdpaCase& c, Rng& rng) {
  INFO(c.name << ": B " << c.B << ", heads " << c.Hq << "/" << c.Hkv << ", Sq " << c.Sq << ", Sk " << c.Sk << ", D "
              << c.D << (c.causal ? ", causal" : "") << (c.padded ? ", padded" : "") << " ("
              << dtype_name(dtype_v<T>) << ")");
  const auto q = c.permuted_q ? random_normal<T>(rng, {c.B, c.Sq, c.Hq, c.D}).permute({0, 2, 1, 3})
                              : random_normal<T>(rng, {c.B, c.Hq, c.Sq, c.D});
  const auto k = random_normal<T>(rng, {c.B, c.Hkv, c.Sk, c.D});
  const auto v = random_normal<T>(rng, {c.B, c.Hkv, c.Sk, c.D});
  const auto dy = random_normal<T>(rng, {c.B, c.Hq, c.Sq, c.D});
  ops::AttentionOptions<Cpu> opts{.causal = c.causal};
  ops::AttentionOptions<Cuda> gopts{.causal = c.causal};
  if (c.padded) {
    opts.key_keep_mask = padding_mask(c.B, c.Sk);
    gopts.key_keep_mask = opts.key_keep_mask.to_device<Cuda>();
  }
  const auto gq = c.permuted_q ? q.permute({0, 2, 1, 3}).contiguous().template to_device<Cuda>().permute({0, 2, 1, 3})
                               : q.template to_device<Cuda>();
  const auto gk = k.template to_device<Cuda>(), gv = v.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();

  const auto r = ops::attention(q, k, v, opts);
  const int64_t runs = ops::cudnn_sdpa_runs();
  const auto g = ops::attention(gq, gk, gv, gopts);
  INFO("cuDNN's last refusal: " << ops::cudnn_sdpa_last_refusal());
  CHECK(ops::cudnn_sdpa_runs() == runs + 1);
  CTMLLM_CHECK_GPU(T, g.out, r.out);
  check_lse(g.lse, r.lse);

  const auto rg = ops::attention_backward(dy, q, k, v, r, opts);
  const auto gg = ops::attention_backward(gdy, gq, gk, gv, g, gopts);
  CHECK(ops::cudnn_sdpa_runs() == runs + 2);
  CTMLLM_CHECK_GPU(T, gg.dq, rg.dq);
  CTMLLM_CHECK_GPU(T, gg.dk, rg.dk);
  CTMLLM_CHECK_GPU(T, gg.dv, rg.dv);
}

template <class T>
void check_all_cases() {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  if (!ops::cudnn_sdpa_enabled()) CTMLLM_SKIP("CTMLLM_ATTENTION_FALLBACK is set: attention runs the own kernels");
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  PoisonDeviceMemory poison;
  Rng rng(seed);
  for (const SdpaCase& c : sdpa_cases()) check_case<T>(c, rng);
}

}  // namespace

// One case per type: each builds ~44 cuDNN graphs, and two cases run in parallel.
TEST_CASE("cuda sdpa: cuDNN's fused attention and its backward match the CPU in bfloat16", "[cuda][ops]") {
  check_all_cases<bf16>();
}
TEST_CASE("cuda sdpa: cuDNN's fused attention and its backward match the CPU in float16", "[cuda][ops]") {
  check_all_cases<ctmllm::half>();  // qualified: CUDA's headers declare a global half too
}

TEST_CASE("cuda sdpa: the fallback switch runs the own kernels, as float32 and decode steps always do",
          "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  if (!ops::cudnn_sdpa_enabled()) CTMLLM_SKIP("CTMLLM_ATTENTION_FALLBACK is set: attention runs the own kernels");
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  PoisonDeviceMemory poison;
  Rng rng(seed);
  const auto q = random_normal<bf16>(rng, {2, 4, 96, 64}), k = random_normal<bf16>(rng, {2, 4, 96, 64});
  const auto v = random_normal<bf16>(rng, {2, 4, 96, 64}), dy = random_normal<bf16>(rng, {2, 4, 96, 64});
  const auto gq = q.to_device<Cuda>(), gk = k.to_device<Cuda>(), gv = v.to_device<Cuda>(), gdy = dy.to_device<Cuda>();
  const ops::AttentionOptions<Cpu> opts{.causal = true};
  const ops::AttentionOptions<Cuda> gopts{.causal = true};
  const auto r = ops::attention(q, k, v, opts);
  const auto rg = ops::attention_backward(dy, q, k, v, r, opts);

  const int64_t runs = ops::cudnn_sdpa_runs();
  {
    const ops::ScopedAttentionFallback own_kernels;
    CHECK_FALSE(ops::cudnn_sdpa_enabled());
    const auto g = ops::attention(gq, gk, gv, gopts);
    const auto gg = ops::attention_backward(gdy, gq, gk, gv, g, gopts);
    CHECK(ops::cudnn_sdpa_runs() == runs);
    CTMLLM_CHECK_GPU(bf16, g.out, r.out);
    check_lse(g.lse, r.lse);
    CTMLLM_CHECK_GPU(bf16, gg.dq, rg.dq);
    CTMLLM_CHECK_GPU(bf16, gg.dk, rg.dk);
    CTMLLM_CHECK_GPU(bf16, gg.dv, rg.dv);
  }
  CHECK(ops::cudnn_sdpa_enabled());

  const auto qf = q.to<float>(), kf = k.to<float>(), vf = v.to<float>();
  const auto f = ops::attention(qf.to_device<Cuda>(), kf.to_device<Cuda>(), vf.to_device<Cuda>(), gopts);
  CHECK(ops::cudnn_sdpa_runs() == runs);
  CTMLLM_CHECK_GPU(float, f.out, ops::attention(qf, kf, vf, opts).out);
  const auto q1 = q.slice(2, 95, 96);  // the last query alone: a decode step over the other keys
  const auto d = ops::attention(q1.to_device<Cuda>(), gk, gv, gopts);
  CHECK(ops::cudnn_sdpa_runs() == runs);
  CTMLLM_CHECK_GPU(bf16, d.out, ops::attention(q1, k, v, opts).out);

  INFO("cuDNN's last refusal: " << ops::cudnn_sdpa_last_refusal());
  CTMLLM_CHECK_GPU(bf16, ops::attention(gq, gk, gv, gopts).out, r.out);
  CHECK(ops::cudnn_sdpa_runs() == runs + 1);
}

TEST_CASE("cuda sdpa: which calls cuDNN runs, and with which mask", "[cuda][ops]") {
  using ops::cuda_impl::SdpaCausal;
  using ops::cuda_impl::SdpaMask;
  const auto mask = [](int64_t Sq, int64_t Sk, bool causal, bool keep) {
    return ops::cuda_impl::sdpa_mask_for(2, 4, Sq, Sk, 64, 64, causal, keep);
  };
  CHECK(mask(100, 100, false, false) == SdpaMask{});
  CHECK(mask(100, 100, true, false) == SdpaMask{SdpaCausal::top_left, false});
  CHECK(mask(30, 100, true, false) == SdpaMask{SdpaCausal::bottom_right, false});
  // Where some queries may see no key: the bias (with the top-left mask where it hides no visible pair).
  CHECK(mask(100, 30, true, false) == SdpaMask{SdpaCausal::top_left, true});
  CHECK(mask(100, 100, false, true) == SdpaMask{SdpaCausal::none, true});
  CHECK(mask(100, 100, true, true) == SdpaMask{SdpaCausal::top_left, true});
  CHECK(mask(30, 100, true, true) == SdpaMask{SdpaCausal::none, true});  // no bias with bottom-right
  // The own kernels: decode steps, head dims that are not multiples of 8, and empty calls.
  CHECK_FALSE(mask(1, 100, true, false).has_value());
  CHECK_FALSE(mask(1, 100, true, true).has_value());
  CHECK_FALSE(ops::cuda_impl::sdpa_mask_for(2, 4, 100, 100, 33, 64, false, false).has_value());
  CHECK_FALSE(ops::cuda_impl::sdpa_mask_for(2, 4, 100, 100, 64, 20, false, false).has_value());
  CHECK_FALSE(ops::cuda_impl::sdpa_mask_for(2, 4, 100, 100, 64, 0, false, false).has_value());
  CHECK_FALSE(ops::cuda_impl::sdpa_mask_for(2, 4, 100, 0, 64, 64, false, false).has_value());
  CHECK_FALSE(ops::cuda_impl::sdpa_mask_for(2, 4, 0, 100, 64, 64, true, true).has_value());
  CHECK_FALSE(ops::cuda_impl::sdpa_mask_for(0, 4, 100, 100, 64, 64, false, false).has_value());
}

TEST_CASE("cuda sdpa: a graph, or cuDNN's refusal, is built once per key", "[cuda][ops]") {
  ops::cuda_impl::SdpaGraphCache cache(7);
  int builds = 0;
  const auto refuse = [&] {
    ++builds;
    return ops::cuda_impl::SdpaGraph{nullptr, 0, "refusal " + std::to_string(builds)};
  };
  ops::cuda_impl::SdpaKey a;
  a.bf16 = true;
  a.B = 2, a.Hq = 8, a.Hkv = 2, a.Sq = 128, a.Sk = 128, a.Dh = 64, a.Dv = 64;
  a.strides[0] = {8 * 128 * 64, 128 * 64, 64, 1};
  a.scale_bits = std::bit_cast<uint32_t>(0.125f);
  const auto first = cache.get(a, refuse);
  CHECK(cache.get(a, refuse) == first);
  CHECK(builds == 1);
  CHECK(first->refusal == "refusal 1");
  CHECK(cache.last_refusal() == "refusal 1");

  std::vector<ops::cuda_impl::SdpaKey> others(6, a);
  others[0].device = 1;
  others[1].backward = true;
  others[2].bf16 = false;
  others[3].mask.causal = ops::cuda_impl::SdpaCausal::top_left;
  others[4].strides[0][2] = 8 * 64;  // q read from a [B, S, H, D] projection
  others[5].scale_bits = std::bit_cast<uint32_t>(0.25f);
  for (const auto& key : others) cache.get(key, refuse);
  for (const auto& key : others) cache.get(key, refuse);
  CHECK(builds == 7);
  CHECK(cache.size() == 7);
}

#else

TEST_CASE("cuda sdpa: built without the cudnn-frontend headers", "[cuda][ops]") {
  CTMLLM_SKIP("built without the cudnn-frontend headers: attention runs the own CUDA kernels");
}

#endif
