// Elementwise ops, activations and reductions on the GPU against the CPU kernels, forward and
// backward, for float32, bfloat16 and float16, including broadcast and strided operands.
#include <utility>

#include "ctmllm/ops/activation.hpp"
#include "ctmllm/ops/elementwise.hpp"
#include "ctmllm/ops/reduce.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class T>
void check_binary(uint64_t seed) {
  Rng rng(seed);
  // a [3, 1, 37] against b [5, 37]: both broadcast (element by element); a [6, 40] against b [40]: a
  // row repeated over the rows (rows of 16-byte packs). b is positive for div.
  const std::pair<Shape, Shape> shapes[] = {{Shape{3, 1, 37}, Shape{5, 37}}, {Shape{6, 40}, Shape{40}}};
  for (const auto& [a_shape, b_shape] : shapes) {
    const auto a = random_normal<T>(rng, a_shape);
    const auto b = rng.uniform<float>(b_shape, 0.5, 2.0).to<T>();
    const auto dy = random_normal<T>(rng, broadcast_shapes(a_shape, b_shape, "test"));
    const auto ga = a.template to_device<Cuda>(), gb = b.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
    for (const ops::Binary op : {ops::Binary::add, ops::Binary::sub, ops::Binary::mul, ops::Binary::div}) {
      INFO("op " << ops::binary_name(op) << " on " << a_shape << " and " << b_shape);
      CTMLLM_CHECK_GPU(T, ops::binary(ga, gb, op), ops::binary(a, b, op));
      const auto g = ops::binary_backward(gdy, ga, gb, op);
      const auto r = ops::binary_backward(dy, a, b, op);
      CTMLLM_CHECK_GPU(T, g.da, r.da);
      CTMLLM_CHECK_GPU(T, g.db, r.db);
    }
  }
}

template <class T>
void check_unary(uint64_t seed) {
  Rng rng(seed);
  // 1003 elements: 16-byte packs (4 or 8 elements) plus a scalar tail; an offset view exercises the
  // unaligned path.
  const auto x = rng.uniform<float>({1004}, 0.25, 2.0).to<T>();
  const auto dy = random_normal<T>(rng, {1003});
  const auto gx_all = x.template to_device<Cuda>();
  for (const int first : {0, 1}) {
    const auto xs = x.slice(0, first, first + 1003);
    const auto gx = gx_all.slice(0, first, first + 1003);
    const auto gdy = dy.template to_device<Cuda>();
    for (const ops::Unary op : {ops::Unary::neg, ops::Unary::exp, ops::Unary::log, ops::Unary::sqrt, ops::Unary::rsqrt,
                                ops::Unary::square, ops::Unary::tanh, ops::Unary::sigmoid, ops::Unary::add_scalar,
                                ops::Unary::mul_scalar, ops::Unary::pow_scalar}) {
      INFO("unary op " << int(op) << ", offset " << first);
      const double s = 1.5;
      const auto y = ops::unary(xs, op, s);
      const auto gy = ops::unary(gx, op, s);
      CTMLLM_CHECK_GPU(T, gy, y);
      CTMLLM_CHECK_GPU(T, ops::unary_backward(gdy, gx, gy, op, s), ops::unary_backward(dy, xs, y, op, s));
    }
  }
}

template <class T>
void check_activations(uint64_t seed) {
  Rng rng(seed);
  const auto x = random_normal<T>(rng, {7, 333}, 2.0);
  const auto dy = random_normal<T>(rng, {7, 333});
  const auto gx = x.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
  for (const ops::Activation kind : {ops::Activation::gelu_erf, ops::Activation::gelu_tanh, ops::Activation::silu}) {
    INFO("activation " << int(kind));
    CTMLLM_CHECK_GPU(T, ops::activation(gx, kind), ops::activation(x, kind));
    CTMLLM_CHECK_GPU(T, ops::activation_backward(gdy, gx, kind), ops::activation_backward(dy, x, kind));
  }
  // A transposed (strided) input is made contiguous first and gives the same values.
  CTMLLM_CHECK_GPU(T, ops::gelu(gx.transpose(0, 1)), ops::gelu(x.transpose(0, 1)));
}

// f(gate) · up fused, against the CPU's fused op; gate and up as the halves of one [7, 2·cols]
// tensor, as a fused gate_up projection gives them: rows of 16-byte packs for cols = 336, element by
// element for 333.
template <class T>
void check_gated_activations(uint64_t seed) {
  Rng rng(seed);
  for (const int64_t cols : {int64_t(333), int64_t(336)}) {
    INFO("cols " << cols);
    const auto both = random_normal<T>(rng, {7, 2 * cols}, 2.0);
    const auto dy = random_normal<T>(rng, {7, cols});
    const auto gate = both.slice(1, 0, cols), up = both.slice(1, cols, 2 * cols);
    const auto gboth = both.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
    const auto ggate = gboth.slice(1, 0, cols), gup = gboth.slice(1, cols, 2 * cols);
    for (const ops::Activation kind : {ops::Activation::gelu_erf, ops::Activation::gelu_tanh, ops::Activation::silu}) {
      INFO("activation " << int(kind));
      CTMLLM_CHECK_GPU(T, ops::gated_activation(ggate, gup, kind), ops::gated_activation(gate, up, kind));
      CTMLLM_CHECK_GPU(T, ops::gated_activation(ggate.contiguous(), gup.contiguous(), kind),
                       ops::gated_activation(gate, up, kind));
      const auto g = ops::gated_activation_backward(gdy, ggate, gup, kind);
      const auto c = ops::gated_activation_backward(dy, gate, up, kind);
      CTMLLM_CHECK_GPU(T, g.gate, c.gate);
      CTMLLM_CHECK_GPU(T, g.up, c.up);
    }
  }
}

template <class T>
void check_reductions(uint64_t seed) {
  Rng rng(seed);
  const auto x = random_normal<T>(rng, {6, 50, 9});
  const auto gx = x.template to_device<Cuda>();
  CTMLLM_CHECK_GPU(T, ops::sum(gx, {1}), ops::sum(x, {1}));
  CTMLLM_CHECK_GPU(T, ops::mean(gx, {0, 2}, true), ops::mean(x, {0, 2}, true));
  // The sum of everything over values of mean 1: a single sum near 0 (as of normal values) would
  // measure only the two devices' different summation orders against a tiny reference.
  const auto positive = rng.uniform<float>({6, 50, 9}, 0.5, 1.5).to<T>();
  CTMLLM_CHECK_GPU(T, ops::sum(positive.template to_device<Cuda>()), ops::sum(positive));
  CTMLLM_CHECK_GPU(T, ops::sum(gx.transpose(0, 2), {0}), ops::sum(x.transpose(0, 2), {0}));  // strided input
  CTMLLM_CHECK_GPU(T, ops::sum_to_shape(gx, Shape{50, 1}), ops::sum_to_shape(x, Shape{50, 1}));
  // Leading dimensions of a contiguous tensor (a bias gradient): a thread per column, rows in chunks
  // of at least 16 (here 62, and 1 for 20 rows); below 32 columns, a block per output instead.
  const auto rows = random_normal<T>(rng, {1000, 70}), rows3 = random_normal<T>(rng, {4, 250, 40});
  const auto few = random_normal<T>(rng, {20, 33}), narrow = random_normal<T>(rng, {600, 7});
  CTMLLM_CHECK_GPU(T, ops::sum(rows.template to_device<Cuda>(), {0}), ops::sum(rows, {0}));
  CTMLLM_CHECK_GPU(T, ops::mean(rows.template to_device<Cuda>(), {0}), ops::mean(rows, {0}));
  CTMLLM_CHECK_GPU(T, ops::sum(rows3.template to_device<Cuda>(), {0, 1}), ops::sum(rows3, {0, 1}));
  CTMLLM_CHECK_GPU(T, ops::sum(few.template to_device<Cuda>(), {0}), ops::sum(few, {0}));
  CTMLLM_CHECK_GPU(T, ops::sum(narrow.template to_device<Cuda>(), {0}), ops::sum(narrow, {0}));
  const auto dy = random_normal<T>(rng, {6, 1, 9});
  CTMLLM_CHECK_GPU(T, ops::mean_backward(dy.template to_device<Cuda>(), x.shape(), {1}, true),
                   ops::mean_backward(dy, x.shape(), {1}, true));
}

template <class T>
void check_masked_fill_and_add(uint64_t seed) {
  Rng rng(seed);
  const auto x = random_normal<T>(rng, {4, 8, 8});
  auto mask = Tensor<uint8_t, Cpu>::empty({8, 8});
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) mask.at(i, j) = j > i;  // a causal mask, broadcast over dim 0
  const auto gx = x.template to_device<Cuda>();
  const auto gmask = mask.to_device<Cuda>();
  CTMLLM_CHECK_GPU(T, ops::masked_fill(gx, gmask, -3.0), ops::masked_fill(x, mask, -3.0));
  // add_: a broadcast src into a strided destination (a transposed view), in place.
  const auto src = random_normal<T>(rng, {8, 1});
  const auto dst = x.clone();
  const auto gdst = gx.clone();
  ops::add_(dst.transpose(1, 2), src);
  ops::add_(gdst.transpose(1, 2), src.template to_device<Cuda>());
  CTMLLM_CHECK_GPU(T, gdst, dst);
}

}  // namespace

TEST_CASE("cuda binary ops and their gradients match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_binary<decltype(t)>(seed); });
}

TEST_CASE("cuda unary ops and their gradients match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_unary<decltype(t)>(seed); });
}

TEST_CASE("cuda gelu and silu forward and backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_activations<decltype(t)>(seed); });
}

TEST_CASE("cuda gated activations forward and backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_gated_activations<decltype(t)>(seed); });
}

TEST_CASE("cuda sum, mean and sum_to_shape match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_reductions<decltype(t)>(seed); });
}

TEST_CASE("cuda masked_fill and in-place add match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_masked_fill_and_add<decltype(t)>(seed); });
}
