// matmul and linear on the GPU (cuBLASLt) against the CPU kernels, forward and backward, for
// float32, bfloat16 and float16: transposed operands, strided-batched and broadcast batches, the
// bias epilogue, and views whose data is not 16-byte aligned.
#include "ctmllm/ops/matmul.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class T>
void check_matmul_2d(uint64_t seed) {
  Rng rng(seed);
  const int64_t m = 37, k = 64, n = 29;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      INFO("transpose_a " << ta << ", transpose_b " << tb);
      const auto a = random_normal<T>(rng, ta ? Shape{k, m} : Shape{m, k});
      const auto b = random_normal<T>(rng, tb ? Shape{n, k} : Shape{k, n});
      const auto dy = random_normal<T>(rng, {m, n});
      const auto ga = a.template to_device<Cuda>(), gb = b.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
      CTMLLM_CHECK_GPU(T, ops::matmul(ga, gb, ta, tb), ops::matmul(a, b, ta, tb));
      const auto g = ops::matmul_backward(gdy, ga, gb, ta, tb);
      const auto r = ops::matmul_backward(dy, a, b, ta, tb);
      CTMLLM_CHECK_GPU(T, g.da, r.da);
      CTMLLM_CHECK_GPU(T, g.db, r.db);
    }
}

template <class T>
void check_matmul_batched(uint64_t seed) {
  Rng rng(seed);
  // b broadcasts over a's first batch dimension: the inner batch dimension folds into one strided
  // batched call, the outer one loops. Then a transposed b ([..., n, k] with transpose_b).
  const auto a = random_normal<T>(rng, {2, 3, 17, 24});
  const auto b = random_normal<T>(rng, {3, 24, 19});
  const auto bt = random_normal<T>(rng, {2, 3, 19, 24});
  const auto dy = random_normal<T>(rng, {2, 3, 17, 19});
  const auto ga = a.template to_device<Cuda>(), gb = b.template to_device<Cuda>(), gbt = bt.template to_device<Cuda>();
  const auto gdy = dy.template to_device<Cuda>();
  CTMLLM_CHECK_GPU(T, ops::matmul(ga, gb), ops::matmul(a, b));
  CTMLLM_CHECK_GPU(T, ops::matmul(ga, gbt, false, true), ops::matmul(a, bt, false, true));
  const auto g = ops::matmul_backward(gdy, ga, gb);
  const auto r = ops::matmul_backward(dy, a, b);
  CTMLLM_CHECK_GPU(T, g.da, r.da);
  CTMLLM_CHECK_GPU(T, g.db, r.db);
  // One b for the whole batch: the front stacks a's rows into one GEMM.
  const auto w = random_normal<T>(rng, {24, 11});
  CTMLLM_CHECK_GPU(T, ops::matmul(ga, w.template to_device<Cuda>()), ops::matmul(a, w));
}

template <class T>
void check_linear(uint64_t seed) {
  Rng rng(seed);
  const int64_t in = 96, out = 80;
  // x is a view one element into rows of 97: its data is not 16-byte aligned and its rows are
  // 97 apart, so cuBLASLt must be told the real alignment.
  const auto x_full = random_normal<T>(rng, {5, 7, in + 1});
  const auto x = x_full.slice(-1, 1, in + 1);
  const auto w = random_normal<T>(rng, {out, in});
  const auto b = random_normal<T>(rng, {out});
  const auto dy = random_normal<T>(rng, {5, 7, out});
  const auto gx = x_full.template to_device<Cuda>().slice(-1, 1, in + 1);
  const auto gw = w.template to_device<Cuda>(), gb = b.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
  CTMLLM_CHECK_GPU(T, ops::linear(gx, gw, gb), ops::linear(x, w, b));
  CTMLLM_CHECK_GPU(T, ops::linear(gx, gw), ops::linear(x, w));
  // a bias sliced one element into a packed one (as TokenPacker3D splits in_proj): not 16-byte aligned
  const auto b_packed = random_normal<T>(rng, {out + 1});
  CTMLLM_CHECK_GPU(T, ops::linear(gx, gw, b_packed.template to_device<Cuda>().slice(0, 1, out + 1)),
                   ops::linear(x, w, b_packed.slice(0, 1, out + 1)));
  const auto g = ops::linear_backward(gdy, gx, gw);
  const auto r = ops::linear_backward(dy, x, w);
  CTMLLM_CHECK_GPU(T, g.dx, r.dx);
  CTMLLM_CHECK_GPU(T, g.dw, r.dw);
  CTMLLM_CHECK_GPU(T, g.db, r.db);
  // One row (a decode step on float weights): cuBLASLt sees a 1-column matrix with the bias epilogue.
  const auto x1 = random_normal<T>(rng, {1, in});
  CTMLLM_CHECK_GPU(T, ops::linear(x1.template to_device<Cuda>(), gw, gb), ops::linear(x1, w, b));
}

}  // namespace

TEST_CASE("cuda matmul with transposed operands and its backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_matmul_2d<decltype(t)>(seed); });
}

TEST_CASE("cuda batched and broadcast matmul and its backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_matmul_batched<decltype(t)>(seed); });
}

TEST_CASE("cuda linear with and without bias and its backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_linear<decltype(t)>(seed); });
}

TEST_CASE("cuda gemm plans are made once per shape and alignment", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  Rng rng(5);
  // Sizes no other test uses, so that the first call makes a new plan.
  const auto x = rng.normal<float>({13, 37}).to_device<Cuda>();
  const auto w = rng.normal<float>({29, 37}).to_device<Cuda>();
  const auto ref = ops::linear(x.to_device<Cpu>(), w.to_device<Cpu>(), Tensor<float, Cpu>());
  // Builds, not the size: the cache may be full when earlier cases ran in this process.
  auto& plans = ops::cuda_impl::gemm_plans();
  const size_t before = plans.builds();
  const auto y = ops::linear(x, w, Tensor<float, Cuda>());
  CHECK(plans.builds() == before + 1);
  CHECK(gpu_error(y, ref) <= gpu_tolerance<float>);
  // The same call again, and on other tensors of the same shape and alignment: the plan is reused.
  const auto x2 = rng.normal<float>({13, 37}).to_device<Cuda>();
  CHECK(gpu_error(ops::linear(x, w, Tensor<float, Cuda>()), ref) <= gpu_tolerance<float>);
  CHECK(gpu_error(ops::linear(x2, w, Tensor<float, Cuda>()), ops::linear(x2.to_device<Cpu>(), w.to_device<Cpu>(),
                                                                          Tensor<float, Cpu>())) <= gpu_tolerance<float>);
  CHECK(plans.builds() == before + 1);
  // x one float past a 16-byte boundary: another plan, still right.
  const auto shifted_storage = Tensor<float, Cpu>::empty({13 * 37 + 1}).to_device<Cuda>();
  const auto shifted = shifted_storage.slice(0, 1, 13 * 37 + 1).reshape({13, 37});
  shifted.copy_from(x);
  CHECK(gpu_error(ops::linear(shifted, w, Tensor<float, Cuda>()), ref) <= gpu_tolerance<float>);
  CHECK(plans.builds() == before + 2);
}
