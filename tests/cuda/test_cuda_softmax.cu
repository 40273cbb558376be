// softmax and log_softmax on the GPU against the CPU kernels, forward and backward, along the last
// dimension (a block per row) and a middle one (a thread per column), for float32, bfloat16, float16.
#include "ctmllm/ops/softmax.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class T>
void check_softmax(uint64_t seed) {
  Rng rng(seed);
  // Rows of 1000 (several elements per thread) and of 7 (fewer than a warp).
  for (const Shape shape : {Shape{5, 3, 1000}, Shape{9, 7}}) {
    const auto x = random_normal<T>(rng, shape, 3.0);
    const auto dy = random_normal<T>(rng, shape);
    const auto gx = x.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
    for (const int dim : {-1, 0}) {
      INFO("shape " << shape << ", dim " << dim);
      const auto y = ops::softmax(x, dim), ly = ops::log_softmax(x, dim);
      const auto gy = ops::softmax(gx, dim), gly = ops::log_softmax(gx, dim);
      CTMLLM_CHECK_GPU(T, gy, y);
      CTMLLM_CHECK_GPU(T, gly, ly);
      CTMLLM_CHECK_GPU(T, ops::softmax_backward(gdy, gy, dim), ops::softmax_backward(dy, y, dim));
      CTMLLM_CHECK_GPU(T, ops::log_softmax_backward(gdy, gly, dim), ops::log_softmax_backward(dy, ly, dim));
    }
  }
}

}  // namespace

TEST_CASE("cuda softmax and log_softmax forward and backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_softmax<decltype(t)>(seed); });
}
