// conv3d and its backward on the GPU (cuDNN; the patch-shaped case through patch_embed) against the
// CPU kernels for float32, bfloat16 and float16: padded, strided, uneven kernels, with and without
// bias and dx, a strided input view, an empty input that padding still gives an output (y is the
// bias). The CPU convolves in float32 only: 16-bit cases compare with it on the same values in
// float32, rounded once to the element type.
#include <array>

#include "ctmllm/ops/conv3d.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

struct ConvCase {
  const char* name;
  Shape x, w;  // x [B, Cin, D, H, W] (stored as [B, D, H, W, Cin] when strided_x), w [Cout, Cin, kd, kh, kw]
  std::array<int64_t, 3> stride, padding;
  bool strided_x;
};

template <class T>
Tensor<float, Cpu> f32(const Tensor<T, Cpu>& t) {
  return t.defined() ? t.template to<float>() : Tensor<float, Cpu>();
}

template <class T>
void check_conv3d(uint64_t seed) {
  const ConvCase cases[] = {
      {"3x3x3, stride 1, padding 1", {2, 3, 6, 7, 5}, {4, 3, 3, 3, 3}, {1, 1, 1}, {1, 1, 1}, false},
      {"uneven kernel, stride and padding", {1, 2, 7, 9, 8}, {5, 2, 2, 3, 3}, {2, 1, 2}, {0, 1, 1}, true},
      {"1x1x1", {2, 4, 3, 4, 5}, {3, 4, 1, 1, 1}, {1, 1, 1}, {0, 0, 0}, false},
      {"patches (kernel = stride), a remainder", {2, 2, 9, 8, 7}, {6, 2, 2, 4, 3}, {2, 4, 3}, {0, 0, 0}, true},
      {"an empty depth that padding gives an output", {1, 3, 0, 4, 4}, {2, 3, 1, 1, 1}, {1, 1, 1}, {1, 0, 0}, false},
  };
  Rng rng(seed);
  for (const ConvCase& c : cases) {
    INFO(c.name);
    Tensor<T, Cpu> x;
    if (c.strided_x) x = random_normal<T>(rng, {c.x[0], c.x[2], c.x[3], c.x[4], c.x[1]}).permute({0, 4, 1, 2, 3});
    else x = random_normal<T>(rng, c.x);
    const auto w = random_normal<T>(rng, c.w, 0.3), b = random_normal<T>(rng, {c.w[0]});
    const Tensor<T, Cuda> gx = c.strided_x ? x.permute({0, 2, 3, 4, 1}).template to_device<Cuda>().permute({0, 4, 1, 2, 3})
                                           : x.template to_device<Cuda>();
    const auto gw = w.template to_device<Cuda>(), gb = b.template to_device<Cuda>();
    for (const bool with_bias : {true, false}) {
      INFO((with_bias ? "with bias" : "without bias"));
      const auto y = ops::conv3d(f32(x), f32(w), with_bias ? f32(b) : Tensor<float, Cpu>(), c.stride, c.padding);
      const auto gy = ops::conv3d(gx, gw, with_bias ? gb : Tensor<T, Cuda>(), c.stride, c.padding);
      CTMLLM_CHECK_GPU(T, gy, y.template to<T>());
    }
    const auto dy = random_normal<T>(rng, ops::conv3d(f32(x), f32(w), Tensor<float, Cpu>(), c.stride, c.padding).shape());
    const auto gdy = dy.template to_device<Cuda>();
    for (const bool need_dx : {true, false}) {
      INFO((need_dx ? "with dx" : "without dx"));
      const auto r = ops::conv3d_backward(f32(dy), f32(x), f32(w), c.stride, c.padding, need_dx);
      const auto g = ops::conv3d_backward(gdy, gx, gw, c.stride, c.padding, need_dx);
      CTMLLM_CHECK_GPU(T, g.dw, r.dw.template to<T>());
      CTMLLM_CHECK_GPU(T, g.db, r.db.template to<T>());
      CHECK(g.dx.defined() == need_dx);
      if (need_dx) CTMLLM_CHECK_GPU(T, g.dx, r.dx.template to<T>());
    }
  }
}

}  // namespace

TEST_CASE("cuda conv3d and its backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_conv3d<decltype(t)>(seed); });
}
