// rope and rope_backward on the GPU against the CPU kernels for float32, bfloat16 and float16: the
// default, linear and llama3 frequency rules and partial rotary dims, with arbitrary positions up to
// 30000 (left padding, a KV-cache offset), x read in place from a permuted [B, S, H, D] projection
// and positions through a strided view.
#include "ctmllm/ops/rope.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

struct RopeCase {
  const char* name;
  int64_t head_dim;
  ops::RopeConfig cfg;
};

template <class T>
void check_rope(uint64_t seed) {
  Rng rng(seed);
  const RopeCase cases[] = {
      {"default", 64, {.theta = 10000.0, .rotary_dim = 64}},
      {"linear", 64, {.theta = 10000.0, .rotary_dim = 64, .scaling = ops::RopeScaling::linear, .factor = 4.0}},
      {"llama3", 128, {.theta = 500000.0, .rotary_dim = 128, .scaling = ops::RopeScaling::llama3, .factor = 8.0}},
      {"partial", 80, {.theta = 10000.0, .rotary_dim = 32}},
  };
  const int64_t B = 2, H = 3, S = 37;
  for (const RopeCase& c : cases) {
    INFO(c.name << " rope, head_dim " << c.head_dim);
    // x is the [B, S, H, D] projection seen as [B, H, S, D]: outer strides, unit inner stride.
    const auto x = random_normal<T>(rng, {B, S, H, c.head_dim}).permute({0, 2, 1, 3});
    const auto dy = random_normal<T>(rng, {B, H, S, c.head_dim});
    // Positions stored [S, B] and read transposed.
    const auto pos = rng.uniform<float>({S, B}, 0.0, 30000.0).to<int64_t>().transpose(0, 1);
    const auto gx = x.permute({0, 2, 1, 3}).contiguous().template to_device<Cuda>().permute({0, 2, 1, 3});
    const auto gpos = pos.transpose(0, 1).contiguous().template to_device<Cuda>().transpose(0, 1);
    const auto gdy = dy.template to_device<Cuda>();
    CTMLLM_CHECK_GPU(T, ops::rope(gx, gpos, c.cfg), ops::rope(x, pos, c.cfg));
    CTMLLM_CHECK_GPU(T, ops::rope_backward(gdy, gpos, c.cfg), ops::rope_backward(dy, pos, c.cfg));
  }
}

}  // namespace

TEST_CASE("cuda rope and rope_backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_rope<decltype(t)>(seed); });
}

namespace {

// rope_into_cache on the GPU against the CPU (which runs it as rope and the two writes) and against
// the GPU's own rope, bit for bit: q and k from one permuted [B, S, Hq + 2·Hkv, D] projection as the
// decoder passes them, a cache already holding values, slots at an offset or from a device index.
template <class T>
void check_rope_into_cache(uint64_t seed) {
  Rng rng(seed);
  const ops::RopeConfig cfg{.theta = 500000.0, .rotary_dim = 64, .scaling = ops::RopeScaling::llama3, .factor = 8.0};
  const int64_t B = 2, Hq = 4, Hkv = 2, Dh = 80, L = 23;
  for (const int64_t S : {int64_t(1), int64_t(5)}) {
    for (const bool device_index : {false, true}) {
      INFO("S " << S << (device_index ? ", device index" : ", first slot"));
      const auto qkv = random_normal<T>(rng, {B, S, Hq + 2 * Hkv, Dh});
      const auto pos = rng.uniform<float>({B, S}, 0.0, 30000.0).to<int64_t>();
      const auto keys = random_normal<T>(rng, {B, Hkv, L, Dh}), values = random_normal<T>(rng, {B, Hkv, L, Dh});
      Tensor<int64_t, Cpu> index;
      ops::CacheSlots<Cpu> slots{7, {}};
      if (device_index) {
        index = Tensor<int64_t, Cpu>::empty({S});
        for (int64_t s = 0; s < S; ++s) index.data()[s] = (3 * s + 11) % L;
        slots = {0, index};
      }
      const auto heads = [&](const auto& t, int64_t from, int64_t n) {
        return t.slice(2, from, from + n).permute({0, 2, 1, 3});
      };
      const auto gqkv = qkv.template to_device<Cuda>();
      const auto gpos = pos.template to_device<Cuda>();
      const auto gkeys = keys.template to_device<Cuda>(), gvalues = values.template to_device<Cuda>();
      const ops::CacheSlots<Cuda> gslots{slots.first,
                                         device_index ? index.template to_device<Cuda>() : Tensor<int64_t, Cuda>()};
      const auto ckeys = keys.clone(), cvalues = values.clone();
      const auto q_ref = ops::rope_into_cache(heads(qkv, 0, Hq), heads(qkv, Hq, Hkv), heads(qkv, Hq + Hkv, Hkv), pos,
                                              cfg, ckeys, cvalues, slots);
      const auto gq = ops::rope_into_cache(heads(gqkv, 0, Hq), heads(gqkv, Hq, Hkv), heads(gqkv, Hq + Hkv, Hkv), gpos,
                                           cfg, gkeys, gvalues, gslots);
      CTMLLM_CHECK_GPU(T, gq, q_ref);
      CTMLLM_CHECK_GPU(T, gkeys, ckeys);
      CTMLLM_CHECK_GPU(T, gvalues, cvalues);  // the slots not written are compared too
      // The GPU's rope and copies give the same bits.
      const auto gq_rope = ops::rope(heads(gqkv, 0, Hq), gpos, cfg).template to_device<Cpu>();
      CHECK(rel_error(gq.template to_device<Cpu>(), gq_rope) == 0.0);
      const auto gk = ops::rope(heads(gqkv, Hq, Hkv), gpos, cfg).template to_device<Cpu>();
      const auto hkeys = gkeys.template to_device<Cpu>(), hvalues = gvalues.template to_device<Cpu>();
      for (int64_t s = 0; s < S; ++s) {
        const int64_t slot = device_index ? index.data()[s] : slots.first + s;
        CHECK(rel_error(hkeys.slice(2, slot, slot + 1), gk.slice(2, s, s + 1)) == 0.0);
        CHECK(rel_error(hvalues.slice(2, slot, slot + 1), heads(qkv, Hq + Hkv, Hkv).slice(2, s, s + 1)) == 0.0);
      }
    }
  }
}

}  // namespace

TEST_CASE("cuda rope_into_cache matches the CPU and the GPU's rope", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_rope_into_cache<decltype(t)>(seed); });
}

TEST_CASE("cuda rope_into_cache checks device slots unless the caller did", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const ops::RopeConfig cfg{.rotary_dim = 4};
  const auto q = Tensor<float, Cpu>::ones({1, 2, 1, 4}).to_device<Cuda>();
  const auto kv = Tensor<float, Cpu>::ones({1, 1, 1, 4}).to_device<Cuda>();
  const auto pos = Tensor<int64_t, Cpu>::zeros({1, 1}).to_device<Cuda>();
  const auto keys = Tensor<float, Cpu>::zeros({1, 1, 3, 4}).to_device<Cuda>();
  const auto values = Tensor<float, Cpu>::zeros({1, 1, 3, 4}).to_device<Cuda>();
  const ops::CacheSlots<Cuda> bad{0, Tensor<int64_t, Cpu>::from({3}, {1}).to_device<Cuda>()};
  CHECK_THROWS_WITH(ops::rope_into_cache(q, kv, kv, pos, cfg, keys, values, bad),
                    Catch::Contains("slot 3 for token 0 is outside the cache's [0, 3)"));
  const ops::IndicesCheckedByCaller checked;
  const auto rotated = ops::rope_into_cache(q, kv, kv, pos, cfg, keys, values, bad).to_device<Cpu>();
  CHECK(rotated.to_vector() == std::vector<float>(8, 1.0f));  // position 0: no rotation
  CHECK(keys.to_device<Cpu>().to_vector() == std::vector<float>(12, 0.0f));  // the bad slot is skipped
  CHECK(values.to_device<Cpu>().to_vector() == std::vector<float>(12, 0.0f));
}
