// layer_norm and rms_norm against PyTorch fixtures and float64 loops, their backward by finite
// differences, bad input, strided input and thread-count independence of the parameter gradients;
// add_rms_norm against add then rms_norm.
#include <cmath>

#include "ctmllm/autograd/norm.hpp"
#include "ctmllm/ops/elementwise.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {

// Straightforward float64 layer norm over the last dimension of [N, C]: y, mean, rstd.
struct LayerNormRef {
  Tensor<double, Cpu> y, mean, rstd;
};
LayerNormRef layer_norm_ref(const Tensor<float, Cpu>& x, const Tensor<float, Cpu>& w, const Tensor<float, Cpu>& b, double eps) {
  const int64_t C = x.shape().back(), N = x.numel() / C;
  const auto xd = x.to<double>();
  LayerNormRef r{Tensor<double, Cpu>::empty(x.shape()), Tensor<double, Cpu>::empty({N}), Tensor<double, Cpu>::empty({N})};
  for (int64_t i = 0; i < N; ++i) {
    const double* row = xd.data() + i * C;
    double m = 0, v = 0;
    for (int64_t c = 0; c < C; ++c) m += row[c];
    m /= double(C);
    for (int64_t c = 0; c < C; ++c) v += (row[c] - m) * (row[c] - m);
    const double rs = 1.0 / std::sqrt(v / double(C) + eps);
    for (int64_t c = 0; c < C; ++c) r.y.data()[i * C + c] = (row[c] - m) * rs * w.data()[c] + b.data()[c];
    r.mean.data()[i] = m;
    r.rstd.data()[i] = rs;
  }
  return r;
}

}  // namespace

TEST_CASE("layer_norm matches torch.nn.functional.layer_norm", "[ops][norm]") {
  testing::Fixture f("ops/layer_norm.safetensors");
  const double eps = std::stod(f.meta("eps"));
  const auto x = f.get("x"), w = f.get("w"), b = f.get("b"), dy = f.get("dy");
  const auto r = ops::layer_norm(x, w, b, eps);
  CHECK(rel_error(r.y, f.get("y")) <= 1e-5);
  const auto ref = layer_norm_ref(x, w, b, eps);
  CHECK(rel_error(r.mean, ref.mean.reshape({3, 7})) <= 1e-6);
  CHECK(rel_error(r.rstd, ref.rstd.reshape({3, 7})) <= 1e-6);
  const auto g = ops::layer_norm_backward(dy, x, r.mean, r.rstd, w, true);
  CHECK(rel_error(g.dx, f.get("dx")) <= 1e-5);
  CHECK(rel_error(g.dw, f.get("dw")) <= 1e-5);
  CHECK(rel_error(g.db, f.get("db")) <= 1e-5);

  // The same through autograd.
  autograd::Variable<float> xv(x, true), wv(w, true), bv(b, true);
  autograd::layer_norm(xv, wv, bv, eps).backward(dy);
  CHECK(rel_error(xv.grad(), f.get("dx")) <= 1e-5);
  CHECK(rel_error(wv.grad(), f.get("dw")) <= 1e-5);
  CHECK(rel_error(bv.grad(), f.get("db")) <= 1e-5);
}

TEST_CASE("layer_norm at 2049x768 matches float64 loops, dw/db independent of thread count", "[ops][norm]") {
  Rng rng(11);
  const auto x = rng.normal<float>({2049, 768}, 0.5, 2.0), w = rng.normal<float>({768}), b = rng.normal<float>({768});
  const auto dy = rng.normal<float>({2049, 768});
  const auto ref = layer_norm_ref(x, w, b, 1e-5);
  const int threads = num_threads();
  set_num_threads(1);
  const auto r1 = ops::layer_norm(x, w, b);
  const auto g1 = ops::layer_norm_backward(dy, x, r1.mean, r1.rstd, w, true);
  set_num_threads(2);
  const auto r2 = ops::layer_norm(x, w, b);
  const auto g2 = ops::layer_norm_backward(dy, x, r2.mean, r2.rstd, w, true);
  set_num_threads(threads);
  CHECK(rel_error(r1.y, ref.y) <= 1e-6);
  CHECK(rel_error(r2.y, r1.y) == 0.0);
  CHECK(rel_error(g2.dx, g1.dx) == 0.0);
  CHECK(rel_error(g2.dw, g1.dw) == 0.0);
  CHECK(rel_error(g2.db, g1.db) == 0.0);
  // db is the column sum of dy: a check on the block reduction independent of the normalisation.
  auto db_ref = Tensor<double, Cpu>::zeros({768});
  for (int64_t i = 0; i < 2049; ++i)
    for (int64_t c = 0; c < 768; ++c) db_ref.data()[c] += dy.data()[i * 768 + c];
  CHECK(rel_error(g1.db, db_ref) <= 1e-6);
}

TEST_CASE("layer_norm backward passes finite differences", "[ops][norm][gradcheck]") {
  Rng rng(5);
  autograd::Variable<double> x(rng.normal<double>({2, 3, 17}, 1.0, 2.0), true), w(rng.normal<double>({17}), true),
      b(rng.normal<double>({17}), true);
  SECTION("weight and bias") {
    CHECK(testing::gradcheck([](const auto& in) { return autograd::layer_norm(in[0], in[1], in[2]); }, {x, w, b}) <= 1e-7);
  }
  SECTION("weight only") {
    CHECK(testing::gradcheck([](const auto& in) { return autograd::layer_norm(in[0], in[1], {}); }, {x, w}) <= 1e-7);
  }
  SECTION("no affine part") {
    CHECK(testing::gradcheck([](const auto& in) { return autograd::layer_norm(in[0], {}, {}); }, {x}) <= 1e-7);
  }
}

TEST_CASE("layer_norm rejects bad input", "[ops][norm]") {
  const auto x = Rng(1).normal<float>({4, 8}), w = Tensor<float, Cpu>::ones({8});
  CHECK_THROWS_AS(ops::layer_norm(x, Tensor<float, Cpu>::ones({7}), w), ctmllm::Error);
  CHECK_THROWS_AS(ops::layer_norm(x, w, Tensor<float, Cpu>::ones({8, 1})), ctmllm::Error);
  CHECK_THROWS_AS(ops::layer_norm(Tensor<float, Cpu>::ones({}), {}, {}), ctmllm::Error);
  CHECK_THROWS_AS(ops::layer_norm(Tensor<float, Cpu>::ones({4, 0}), {}, {}), ctmllm::Error);
  CHECK_THROWS_AS(ops::layer_norm(x, w, w, -1.0), ctmllm::Error);
  const auto r = ops::layer_norm(x, w, w);
  CHECK_THROWS_AS(ops::layer_norm_backward(Tensor<float, Cpu>::ones({4, 7}), x, r.mean, r.rstd, w, true), ctmllm::Error);
  CHECK_THROWS_AS(ops::layer_norm_backward(x, x, r.mean.reshape({2, 2}), r.rstd, w, true), ctmllm::Error);
  CHECK_THROWS_AS(ops::layer_norm_backward(x, x, r.mean, Tensor<float, Cpu>(), w, true), ctmllm::Error);
}

TEST_CASE("layer_norm works on strided views", "[ops][norm]") {
  Rng rng(2);
  const auto x = rng.normal<float>({9, 5}).transpose(0, 1), w = rng.normal<float>({18}).slice(0, 0, 18, 2);
  const auto dy = rng.normal<float>({9, 5}).transpose(0, 1);
  const auto a = ops::layer_norm(x, w, w), b = ops::layer_norm(x.contiguous(), w.contiguous(), w.contiguous());
  CHECK(rel_error(a.y, b.y) == 0.0);
  const auto ga = ops::layer_norm_backward(dy, x, a.mean, a.rstd, w, true);
  const auto gb = ops::layer_norm_backward(dy.contiguous(), x.contiguous(), b.mean, b.rstd, w.contiguous(), true);
  CHECK(rel_error(ga.dx, gb.dx) == 0.0);
  CHECK(rel_error(ga.dw, gb.dw) == 0.0);
}

TEST_CASE("rms_norm matches the PyTorch reference", "[ops][norm]") {
  testing::Fixture f("ops/rms_norm.safetensors");
  const double eps = std::stod(f.meta("eps"));
  const auto x = f.get("x"), w = f.get("w"), dy = f.get("dy");
  const auto r = ops::rms_norm(x, w, eps);
  CHECK(rel_error(r.y, f.get("y")) <= 1e-5);
  const auto g = ops::rms_norm_backward(dy, x, r.rstd, w);
  CHECK(rel_error(g.dx, f.get("dx")) <= 1e-5);
  CHECK(rel_error(g.dw, f.get("dw")) <= 1e-5);

  autograd::Variable<float> xv(x, true), wv(w, true);
  autograd::rms_norm(xv, wv, eps).backward(dy);
  CHECK(rel_error(xv.grad(), f.get("dx")) <= 1e-5);
  CHECK(rel_error(wv.grad(), f.get("dw")) <= 1e-5);
}

TEST_CASE("rms_norm with weight offset 1 is the plain form with weight + 1", "[ops][norm]") {
  testing::Fixture f("ops/rms_norm.safetensors");
  const double eps = std::stod(f.meta("eps"));
  const auto x = f.get("x"), w = f.get("w"), dy = f.get("dy");
  auto w1 = w.clone();
  for (int64_t i = 0; i < w1.numel(); ++i) w1.data()[i] += 1.0f;
  const auto gemma = ops::rms_norm(x, w, eps, 1.0), plain = ops::rms_norm(x, w1, eps);
  CHECK(rel_error(gemma.y, plain.y) <= 1e-6);
  const auto gg = ops::rms_norm_backward(dy, x, gemma.rstd, w, 1.0), gp = ops::rms_norm_backward(dy, x, plain.rstd, w1);
  CHECK(rel_error(gg.dx, gp.dx) <= 1e-6);
  CHECK(rel_error(gg.dw, gp.dw) <= 1e-6);
}

TEST_CASE("rms_norm backward passes finite differences", "[ops][norm][gradcheck]") {
  Rng rng(6);
  autograd::Variable<double> x(rng.normal<double>({3, 2, 19}, 0.0, 2.0), true), w(rng.normal<double>({19}), true);
  for (double offset : {0.0, 1.0}) {
    const double err = testing::gradcheck(
        [offset](const auto& in) { return autograd::rms_norm(in[0], in[1], 1e-6, offset); }, {x, w});
    CHECK(err <= 1e-7);
  }
}

TEST_CASE("rms_norm rejects bad input and works on strided views", "[ops][norm]") {
  Rng rng(3);
  const auto x = rng.normal<float>({6, 4}), w = rng.normal<float>({4});
  CHECK_THROWS_AS(ops::rms_norm(x, Tensor<float, Cpu>::ones({6})), ctmllm::Error);
  CHECK_THROWS_AS(ops::rms_norm(x, Tensor<float, Cpu>()), ctmllm::Error);
  CHECK_THROWS_AS(ops::rms_norm(x, w, std::nan("")), ctmllm::Error);
  const auto r = ops::rms_norm(x, w);
  CHECK_THROWS_AS(ops::rms_norm_backward(x.transpose(0, 1), x, r.rstd, w), ctmllm::Error);
  CHECK_THROWS_AS(ops::rms_norm_backward(x, x, r.rstd.reshape({3, 2}), w), ctmllm::Error);

  const auto xt = rng.normal<float>({4, 6}).transpose(0, 1), dy = rng.normal<float>({4, 6}).transpose(0, 1);
  const auto a = ops::rms_norm(xt, w), b = ops::rms_norm(xt.contiguous(), w);
  CHECK(rel_error(a.y, b.y) == 0.0);
  CHECK(rel_error(ops::rms_norm_backward(dy, xt, a.rstd, w).dx, ops::rms_norm_backward(dy.contiguous(), xt.contiguous(), b.rstd, w).dx) == 0.0);
}

TEST_CASE("add_rms_norm equals add then rms_norm to the bit", "[ops][norm]") {
  auto check = [](auto tag) {
    using T = decltype(tag);
    Rng rng(31);
    const auto x = rng.normal<float>({2, 7, 96}, 0.0, 2.0).to<T>(), r = rng.normal<float>({2, 7, 96}).to<T>();
    const auto w = rng.normal<float>({96}).to<T>();
    for (const double offset : {0.0, 1.0}) {  // Llama's and Gemma's
      const auto fused = ops::add_rms_norm(x, r, w, 1e-5, offset);
      const auto sum = ops::add(x, r);
      const auto two = ops::rms_norm(sum, w, 1e-5, offset);
      CHECK(testing::max_abs_diff(fused.sum, sum) == 0.0);
      CHECK(testing::max_abs_diff(fused.y, two.y) == 0.0);
      CHECK(testing::max_abs_diff(fused.rstd, two.rstd) == 0.0);
    }
    // A strided residual is made contiguous first.
    const auto rt = rng.normal<float>({2, 7, 192}).to<T>().slice(2, 0, 192, 2);
    REQUIRE(!rt.is_contiguous());
    CHECK(testing::max_abs_diff(ops::add_rms_norm(x, rt, w).y, ops::rms_norm(ops::add(x, rt), w).y) == 0.0);
  };
  check(float{});
  check(bf16{});
  check(half{});
}

TEST_CASE("add_rms_norm rejects bad input", "[ops][norm]") {
  const auto x = Tensor<float>::ones({3, 8}), w = Tensor<float>::ones({8});
  CHECK_THROWS_AS(ops::add_rms_norm(x, Tensor<float>::ones({3, 7}), w), ctmllm::Error);
  CHECK_THROWS_AS(ops::add_rms_norm(x, Tensor<float>(), w), ctmllm::Error);
  CHECK_THROWS_AS(ops::add_rms_norm(x, x, Tensor<float>::ones({7})), ctmllm::Error);
  CHECK_THROWS_AS(ops::add_rms_norm(x, x, w, -1.0), ctmllm::Error);
}

TEST_CASE("norm ops record nothing when no input requires grad", "[ops][norm][autograd]") {
  const auto x = Rng(4).normal<float>({2, 8});
  autograd::Variable<float> xv(x), wv(Tensor<float, Cpu>::ones({8}));
  CHECK(autograd::layer_norm(xv, wv, wv).is_leaf());
  CHECK(!autograd::rms_norm(xv, wv).requires_grad());
  autograd::Variable<float> wg(Tensor<float, Cpu>::ones({8}), true);
  CHECK(!autograd::rms_norm(xv, wg).is_leaf());
}
