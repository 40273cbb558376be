// interpolate (trilinear with and without align_corners, by size and by scale factor; nearest;
// area) and avg_pool3d on the GPU against the CPU kernels for float32, bfloat16 and float16, forward
// and backward, upsampling and downsampling, with pooling windows that leave a remainder unread.
#include <array>

#include "ctmllm/ops/interpolate.hpp"
#include "ctmllm/ops/pool3d.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class T>
void check_interpolate(uint64_t seed) {
  Rng rng(seed);
  const Shape in{2, 3, 5, 7, 6};
  using M = ops::InterpolateMode;
  const std::array<int64_t, 3> up{9, 12, 4}, down{3, 4, 2};
  const ops::InterpolateOptions cases[] = {
      {M::trilinear, up, std::nullopt, false},
      {M::trilinear, down, std::nullopt, true},
      {M::trilinear, std::nullopt, std::array<double, 3>{1.5, 0.6, 2.0}, false},
      {M::nearest, up, std::nullopt, false},
      {M::nearest, std::nullopt, std::array<double, 3>{1.1, 0.5, 1.7}, false},
      {M::area, down, std::nullopt, false},
      {M::area, up, std::nullopt, false},
  };
  const auto x = random_normal<T>(rng, in);
  const auto gx = x.template to_device<Cuda>();
  for (const auto& o : cases) {
    INFO("mode " << int(o.mode) << (o.size ? ", by size" : ", by scale factor") << (o.align_corners ? ", align_corners" : ""));
    const auto y = ops::interpolate(x, o);
    CTMLLM_CHECK_GPU(T, ops::interpolate(gx, o), y);
    const auto dy = random_normal<T>(rng, y.shape());
    CTMLLM_CHECK_GPU(T, ops::interpolate_backward(dy.template to_device<Cuda>(), in, o), ops::interpolate_backward(dy, in, o));
  }
}

template <class T>
void check_avg_pool3d(uint64_t seed) {
  Rng rng(seed);
  const Shape in{2, 3, 8, 9, 7};
  const std::array<int64_t, 3> kernels[] = {{2, 2, 2}, {3, 3, 2}}, strides[] = {{2, 2, 2}, {2, 3, 3}};
  const auto x = random_normal<T>(rng, in);
  const auto gx = x.template to_device<Cuda>();
  for (int c = 0; c < 2; ++c) {
    INFO("pooling case " << c);
    const auto y = ops::avg_pool3d(x, kernels[c], strides[c]);
    CTMLLM_CHECK_GPU(T, ops::avg_pool3d(gx, kernels[c], strides[c]), y);
    const auto dy = random_normal<T>(rng, y.shape());
    CTMLLM_CHECK_GPU(T, ops::avg_pool3d_backward(dy.template to_device<Cuda>(), in, kernels[c], strides[c]),
                     ops::avg_pool3d_backward(dy, in, kernels[c], strides[c]));
  }
}

}  // namespace

TEST_CASE("cuda interpolate forward and backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_interpolate<decltype(t)>(seed); });
}

TEST_CASE("cuda avg_pool3d forward and backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_avg_pool3d<decltype(t)>(seed); });
}
