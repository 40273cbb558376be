// attention and attention_backward on the GPU (the own kernels: built with the cudnn-frontend, 16-bit
// calls would go to cuDNN, which test_cuda_sdpa.cu checks, so this test switches it off) against the
// CPU kernels for float32, bfloat16 and float16: MHA, GQA and MQA; causal masking, also with fewer
// queries than keys (decode over a cache, also long enough that the forward splits the keys over
// blocks) and with more; key padding masks that leave some queries
// nothing to see (out 0, lse −inf); head dims that differ, are odd, or reach 256 (more than 48 KiB of
// shared memory); q read in place from a permuted [B, S, H, D] projection.
#include <cmath>

#include "ctmllm/ops/attention.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

struct AttentionCase {
  const char* name;
  int64_t B, Hq, Hkv, Sq, Sk, Dh, Dv;
  bool causal, masked;
};

// Keys kept per batch entry: entry 0 all, the others left-padded by 3·b keys and with one hole.
Tensor<uint8_t, Cpu> padding_mask(int64_t B, int64_t Sk) {
  Tensor<uint8_t, Cpu> m = Tensor<uint8_t, Cpu>::ones({B, Sk});
  for (int64_t b = 1; b < B; ++b) {
    for (int64_t j = 0; j < std::min(3 * b, Sk); ++j) m.at(b, j) = 0;
    m.at(b, Sk - 2) = 0;
  }
  return m;
}

template <class T>
void check_attention(uint64_t seed) {
  Rng rng(seed);
  const AttentionCase cases[] = {
      {"MHA", 2, 3, 3, 70, 70, 64, 64, false, false},
      {"GQA causal, padded", 2, 4, 2, 45, 45, 32, 32, true, true},
      {"MQA decode over a cache", 3, 4, 1, 3, 50, 64, 64, true, true},
      {"GQA decode over a long cache (keys split over blocks)", 2, 8, 2, 1, 700, 128, 128, true, true},
      {"a few queries over a long cache (split), odd head dim", 1, 4, 4, 5, 300, 33, 40, true, false},
      {"causal, more queries than keys", 1, 2, 2, 20, 12, 16, 16, true, false},
      {"odd head dims", 1, 2, 1, 37, 29, 33, 17, false, true},
      {"head dim 128 (Llama)", 1, 4, 2, 40, 40, 128, 128, true, false},
      {"head dim 256", 1, 2, 2, 33, 33, 256, 256, false, false},
      {"decode over a long cache, v without features (no split)", 1, 2, 2, 1, 100, 16, 0, true, false},
  };
  for (const AttentionCase& c : cases) {
    INFO(c.name);
    // q as the [B, S, H, D] projection seen as [B, H, S, D].
    const auto q = random_normal<T>(rng, {c.B, c.Sq, c.Hq, c.Dh}).permute({0, 2, 1, 3});
    const auto k = random_normal<T>(rng, {c.B, c.Hkv, c.Sk, c.Dh});
    const auto v = random_normal<T>(rng, {c.B, c.Hkv, c.Sk, c.Dv});
    const auto dy = random_normal<T>(rng, {c.B, c.Hq, c.Sq, c.Dv});
    ops::AttentionOptions<Cpu> opts{.causal = c.causal};
    ops::AttentionOptions<Cuda> gopts{.causal = c.causal};
    if (c.masked) {
      opts.key_keep_mask = padding_mask(c.B, c.Sk);
      gopts.key_keep_mask = opts.key_keep_mask.to_device<Cuda>();
    }
    const auto gq = q.permute({0, 2, 1, 3}).contiguous().template to_device<Cuda>().permute({0, 2, 1, 3});
    const auto gk = k.template to_device<Cuda>(), gv = v.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
    const auto r = ops::attention(q, k, v, opts);
    const auto g = ops::attention(gq, gk, gv, gopts);
    CTMLLM_CHECK_GPU(T, g.out, r.out);
    check_lse(g.lse, r.lse);
    const auto rg = ops::attention_backward(dy, q, k, v, r, opts);
    const auto gg = ops::attention_backward(gdy, gq, gk, gv, g, gopts);
    CTMLLM_CHECK_GPU(T, gg.dq, rg.dq);
    CTMLLM_CHECK_GPU(T, gg.dk, rg.dk);
    CTMLLM_CHECK_GPU(T, gg.dv, rg.dv);
  }
}

}  // namespace

TEST_CASE("cuda attention and its backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
#ifdef CTMLLM_HAS_CUDNN_FRONTEND
  const ops::ScopedAttentionFallback own_kernels;
#endif
  for_each_dtype([](auto t, uint64_t seed) { check_attention<decltype(t)>(seed); });
}
