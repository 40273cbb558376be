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
