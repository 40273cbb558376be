// patchify / unpatchify (exact, both patch orders, a strided volume) and patch_embed with its
// backward (with and without bias and dx) on the GPU against the CPU kernels for float32, bfloat16
// and float16. The CPU projects float32 only: 16-bit cases compare with it on the same values in
// float32, rounded once to the element type.
#include <array>
#include <cstring>

#include "ctmllm/ops/patch_embed.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class T>
bool same_bits(const Tensor<T, Cuda>& gpu, const Tensor<T, Cpu>& ref) {
  const Tensor<T, Cpu> host = gpu.template to_device<Cpu>(), r = ref.contiguous();
  return host.shape() == r.shape() && std::memcmp(host.data(), r.data(), size_t(r.numel()) * sizeof(T)) == 0;
}

// t in float32 (undefined stays undefined), and back.
template <class T>
Tensor<float, Cpu> f32(const Tensor<T, Cpu>& t) {
  return t.defined() ? t.template to<float>() : Tensor<float, Cpu>();
}
template <class T>
Tensor<T, Cpu> as(const Tensor<float, Cpu>& t) {
  return t.template to<T>();
}

template <class T>
void check_patch_embed(uint64_t seed) {
  Rng rng(seed);
  const std::array<int64_t, 3> patch{2, 4, 3};
  // A strided volume: [B, C, D, H, W] read from [B, D, H, W, C] storage.
  const auto storage = random_normal<T>(rng, {2, 6, 8, 9, 3});
  const auto x = storage.permute({0, 4, 1, 2, 3});
  const auto gx = storage.template to_device<Cuda>().permute({0, 4, 1, 2, 3});
  const int64_t P = 3 * 2 * 4 * 3, E = 40;
  const auto w = random_normal<T>(rng, {E, P}, 0.2), b = random_normal<T>(rng, {E});
  const auto gw = w.template to_device<Cuda>(), gb = b.template to_device<Cuda>();
  for (const auto order : {ops::PatchOrder::channel_last, ops::PatchOrder::channel_first}) {
    INFO((order == ops::PatchOrder::channel_last ? "channel_last" : "channel_first"));
    const auto rows = ops::patchify(x, patch, order);
    CHECK(same_bits(ops::patchify(gx, patch, order), rows));
    CHECK(same_bits(ops::unpatchify(rows.template to_device<Cuda>(), x.shape(), patch, order),
                    ops::unpatchify(rows, x.shape(), patch, order)));
    for (const bool with_bias : {true, false}) {
      INFO((with_bias ? "with bias" : "without bias"));
      const Tensor<T, Cpu> cb = with_bias ? b : Tensor<T, Cpu>();
      const Tensor<T, Cuda> db = with_bias ? gb : Tensor<T, Cuda>();
      const auto y = ops::patch_embed(f32(x), f32(w), f32(cb), patch, order);
      CTMLLM_CHECK_GPU(T, ops::patch_embed(gx, gw, db, patch, order), as<T>(y));
      const auto dy = random_normal<T>(rng, y.shape());
      const auto gdy = dy.template to_device<Cuda>();
      for (const bool need_dx : {true, false}) {
        const auto r = ops::patch_embed_backward(f32(dy), f32(x), f32(w), patch, order, need_dx);
        const auto g = ops::patch_embed_backward(gdy, gx, gw, patch, order, need_dx);
        CTMLLM_CHECK_GPU(T, g.dweight, as<T>(r.dweight));
        CTMLLM_CHECK_GPU(T, g.dbias, as<T>(r.dbias));
        CHECK(g.dx.defined() == need_dx);
        if (need_dx) CTMLLM_CHECK_GPU(T, g.dx, as<T>(r.dx));
      }
    }
  }
}

}  // namespace

TEST_CASE("cuda patchify, unpatchify and patch_embed with its backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_patch_embed<decltype(t)>(seed); });
}
