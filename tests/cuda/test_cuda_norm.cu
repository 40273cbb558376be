// layer_norm and rms_norm on the GPU against the CPU kernels: outputs, saved statistics, and every
// gradient (dx, dweight, dbias), for float32, bfloat16 and float16, with and without parameters.
#include "ctmllm/ops/norm.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class T>
void check_layer_norm(uint64_t seed) {
  Rng rng(seed);
  for (const Shape shape : {Shape{4, 33, 768}, Shape{70, 5}}) {
    const int64_t C = shape.back();
    const auto x = random_normal<T>(rng, shape, 2.0);
    const auto w = random_normal<T>(rng, {C}), b = random_normal<T>(rng, {C});
    const auto dy = random_normal<T>(rng, shape);
    const auto gx = x.template to_device<Cuda>(), gw = w.template to_device<Cuda>(), gb = b.template to_device<Cuda>();
    const auto gdy = dy.template to_device<Cuda>();
    for (const bool affine : {true, false}) {
      INFO("shape " << shape << (affine ? ", weight and bias" : ", no parameters"));
      const Tensor<T, Cpu> cw = affine ? w : Tensor<T, Cpu>(), cb = affine ? b : Tensor<T, Cpu>();
      const Tensor<T, Cuda> dw = affine ? gw : Tensor<T, Cuda>(), db = affine ? gb : Tensor<T, Cuda>();
      const auto r = ops::layer_norm(x, cw, cb, 1e-5);
      const auto g = ops::layer_norm(gx, dw, db, 1e-5);
      CTMLLM_CHECK_GPU(T, g.y, r.y);
      CTMLLM_CHECK_GPU(float, g.mean, r.mean);
      CTMLLM_CHECK_GPU(float, g.rstd, r.rstd);
      const auto rg = ops::layer_norm_backward(dy, x, r.mean, r.rstd, cw, affine);
      const auto gg = ops::layer_norm_backward(gdy, gx, g.mean, g.rstd, dw, affine);
      CTMLLM_CHECK_GPU(T, gg.dx, rg.dx);
      if (affine) {
        CTMLLM_CHECK_GPU(T, gg.dw, rg.dw);
        CTMLLM_CHECK_GPU(T, gg.db, rg.db);
      }
    }
  }
}

template <class T>
void check_rms_norm(uint64_t seed) {
  Rng rng(seed);
  for (const Shape shape : {Shape{3, 41, 1024}, Shape{70, 5}}) {
    const int64_t C = shape.back();
    const auto x = random_normal<T>(rng, shape, 2.0);
    const auto w = random_normal<T>(rng, {C});
    const auto dy = random_normal<T>(rng, shape);
    const auto gx = x.template to_device<Cuda>(), gw = w.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
    for (const double offset : {0.0, 1.0}) {  // Llama's and Gemma's
      INFO("shape " << shape << ", weight offset " << offset);
      const auto r = ops::rms_norm(x, w, 1e-6, offset);
      const auto g = ops::rms_norm(gx, gw, 1e-6, offset);
      CTMLLM_CHECK_GPU(T, g.y, r.y);
      CTMLLM_CHECK_GPU(float, g.rstd, r.rstd);
      const auto rg = ops::rms_norm_backward(dy, x, r.rstd, w, offset);
      const auto gg = ops::rms_norm_backward(gdy, gx, g.rstd, gw, offset);
      CTMLLM_CHECK_GPU(T, gg.dx, rg.dx);
      CTMLLM_CHECK_GPU(T, gg.dw, rg.dw);
      // The residual form: the rounded sum and the norm over it, in one kernel.
      const auto res = random_normal<T>(rng, shape);
      const auto gres = res.template to_device<Cuda>();
      const auto ra = ops::add_rms_norm(x, res, w, 1e-6, offset);
      const auto ga = ops::add_rms_norm(gx, gres, gw, 1e-6, offset);
      CTMLLM_CHECK_GPU(T, ga.sum, ra.sum);
      CTMLLM_CHECK_GPU(T, ga.y, ra.y);
      CTMLLM_CHECK_GPU(float, ga.rstd, ra.rstd);
    }
  }
}

}  // namespace

TEST_CASE("cuda layer_norm forward and backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_layer_norm<decltype(t)>(seed); });
}

TEST_CASE("cuda rms_norm forward and backward and add_rms_norm match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_rms_norm<decltype(t)>(seed); });
}
