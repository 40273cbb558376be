// cross_entropy with ignore_index on the GPU against the CPU kernels for float32, bfloat16 and
// float16: the loss (mean over kept targets), the saved logsumexps and dlogits, over wide rows
// (a vocabulary of 5000) and rows narrower than a warp, with some targets ignored, with every target
// ignored (loss and gradient 0), and an out-of-range target raising the CPU's error.
#include <string>

#include "ctmllm/ops/loss.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

// Targets in [0, C) with about a third set to ignore_index (all of them when all_ignored).
Tensor<int64_t, Cpu> random_targets(Rng& rng, const Shape& rows, int64_t C, bool all_ignored) {
  Tensor<int64_t, Cpu> t = rng.uniform<double>(rows, 0.0, double(C)).to<int64_t>();
  const auto u = rng.uniform<float>(rows);
  for (int64_t i = 0; i < t.numel(); ++i)
    if (all_ignored || u.data()[i] < 0.33f) t.data()[i] = -100;
  return t;
}

template <class T>
void check_cross_entropy(uint64_t seed) {
  Rng rng(seed);
  for (const Shape shape : {Shape{4, 37, 5000}, Shape{9, 7}})
    for (const bool all_ignored : {false, true}) {
      INFO("logits " << shape << (all_ignored ? ", every target ignored" : ""));
      Shape rows = shape;
      rows.erase(rows.rank() - 1);
      const auto x = random_normal<T>(rng, shape, 3.0);
      const auto targets = random_targets(rng, rows, shape.back(), all_ignored);
      const auto dloss = random_normal<T>(rng, {1});
      const auto gx = x.template to_device<Cuda>(), gdloss = dloss.template to_device<Cuda>();
      const auto gt = targets.to_device<Cuda>();
      const auto r = ops::cross_entropy(x, targets);
      const auto g = ops::cross_entropy(gx, gt);
      CTMLLM_CHECK_GPU(T, g.loss, r.loss);
      CTMLLM_CHECK_GPU(float, g.lse, r.lse);
      CTMLLM_CHECK_GPU(T, ops::cross_entropy_backward(gdloss, gx, gt, g.lse),
                       ops::cross_entropy_backward(dloss, x, targets, r.lse));
    }
}

}  // namespace

TEST_CASE("cuda cross_entropy with ignore_index and its backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_cross_entropy<decltype(t)>(seed); });
}

TEST_CASE("cuda cross_entropy rejects an out-of-range target with the CPU's message", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const auto x = Tensor<float, Cpu>::zeros({3, 5}).to_device<Cuda>();
  const auto targets = Tensor<int64_t, Cpu>::from({-100, 4, 5}, {3}).to_device<Cuda>();
  std::string message;
  try {
    ops::cross_entropy(x, targets);
  } catch (const Error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.find("target 5 at index 2 (row-major)") != std::string::npos);
}
