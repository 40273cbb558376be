// matmul and linear against the PyTorch fixture and a triple loop written here (in double), their
// backward by finite differences, strided operands, thread-count independence and bad input.
#include <vector>

#include "ctmllm/autograd/matmul.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;

namespace {

// torch.matmul by definition: batch dimensions broadcast, then C[i,j] = Σ_k A[i,k]·B[k,j] in double,
// with A, B the operands after the optional transposes. Indexing goes through at() on the
// broadcast batch index, independent of the library's GEMM path.
template <class T>
Tensor<double, Cpu> reference_matmul(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b, bool ta, bool tb) {
  const auto A = (ta ? a.transpose(-1, -2) : a).template to<double>(), B = (tb ? b.transpose(-1, -2) : b).template to<double>();
  const int64_t m = A.size(-2), k = A.size(-1), n = B.size(-1);
  Shape ba, bb;
  for (int d = 0; d + 2 < A.rank(); ++d) ba.push_back(A.size(d));
  for (int d = 0; d + 2 < B.rank(); ++d) bb.push_back(B.size(d));
  const Shape batch = broadcast_shapes(ba, bb, "reference");
  Shape out = batch;
  out.push_back(m);
  out.push_back(n);
  auto C = Tensor<double, Cpu>::zeros(out);
  for (int64_t bi = 0; bi < batch.numel(); ++bi) {
    // batch offsets of A and B for batch index bi (size-1 dimensions repeat)
    int64_t rem = bi, oa = 0, ob = 0, sa = m * k, sb = k * n;
    for (int d = batch.rank() - 1; d >= 0; --d) {
      const int64_t idx = rem % batch[d];
      rem /= batch[d];
      const int da = d - (batch.rank() - ba.rank()), db = d - (batch.rank() - bb.rank());
      if (da >= 0) {
        if (ba[da] != 1) oa += idx * sa;
        sa *= ba[da];
      }
      if (db >= 0) {
        if (bb[db] != 1) ob += idx * sb;
        sb *= bb[db];
      }
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += A.data()[oa + i * k + p] * B.data()[ob + p * n + j];
        C.data()[bi * m * n + i * n + j] = s;
      }
  }
  return C;
}

Shape with_matrix(Shape batch, int64_t r, int64_t c) {
  batch.push_back(r);
  batch.push_back(c);
  return batch;
}

}  // namespace

TEST_CASE("linear matches torch.nn.functional.linear", "[ops][matmul]") {
  testing::Fixture f("ops/linear.safetensors");
  const auto x = f.get("x"), w = f.get("w"), b = f.get("b"), dy = f.get("dy");
  CHECK(rel_error(ops::linear(x, w, b), f.get("y")) <= 1e-5);
  const auto g = ops::linear_backward(dy, x, w);
  CHECK(rel_error(g.dx, f.get("dx")) <= 1e-5);
  CHECK(rel_error(g.dw, f.get("dw")) <= 1e-5);
  CHECK(rel_error(g.db, f.get("db")) <= 1e-5);
  // the same through autograd
  autograd::Variable<float> xv(x, true), wv(w, true), bv(b, true);
  autograd::linear(xv, wv, bv).backward(dy);
  CHECK(rel_error(xv.grad(), f.get("dx")) <= 1e-5);
  CHECK(rel_error(wv.grad(), f.get("dw")) <= 1e-5);
  CHECK(rel_error(bv.grad(), f.get("db")) <= 1e-5);
}

TEST_CASE("linear without bias, with strided operands, and only some gradients", "[ops][matmul]") {
  Rng rng(41);
  const auto x = rng.normal<float>({2, 5, 12}), w = rng.normal<float>({7, 12});
  const auto ref = reference_matmul(x, w, false, true);
  CHECK(rel_error(ops::linear(x, w), ref) <= 1e-6);
  // x as a transposed view, w as a transposed view of a [12, 7] tensor, 1-D x
  const auto xt = x.transpose(0, 1).contiguous().transpose(0, 1);
  const auto wt = w.transpose(0, 1).contiguous().transpose(0, 1);
  REQUIRE(!xt.is_contiguous());
  REQUIRE(!wt.is_contiguous());
  CHECK(rel_error(ops::linear(xt, wt), ref) <= 1e-6);
  const auto xs = rng.normal<float>({5, 24}).slice(1, 0, 24, 2);  // [5, 12], column stride 2
  CHECK(rel_error(ops::linear(xs, w), reference_matmul(xs, w, false, true)) <= 1e-6);
  CHECK(ops::linear(x.select(0, 0).select(0, 1), w).shape() == Shape{7});
  const auto dy = rng.normal<float>({2, 5, 7});
  const auto g = ops::linear_backward(dy, x, w, false, true, false);
  CHECK(!g.dx.defined());
  CHECK(!g.db.defined());
  CHECK(rel_error(g.dw, ops::linear_backward(dy, xt, wt).dw) <= 1e-6);
}

TEST_CASE("matmul matches a triple loop for every layout", "[ops][matmul]") {
  Rng rng(42);
  struct Case {
    Shape batch_a, batch_b;
  };
  const std::vector<Case> cases = {{{}, {}}, {{3}, {3}}, {{2, 3}, {3}}, {{2, 1}, {1, 4}}, {{4}, {}}, {{}, {2}}, {{1}, {2, 3}}};
  const int64_t m = 5, k = 7, n = 6;
  for (const auto& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const auto a = rng.normal<float>(with_matrix(c.batch_a, ta ? k : m, ta ? m : k));
        const auto b = rng.normal<float>(with_matrix(c.batch_b, tb ? n : k, tb ? k : n));
        CHECK(rel_error(ops::matmul(a, b, ta, tb), reference_matmul(a, b, ta, tb)) <= 1e-6);
      }
}

TEST_CASE("matmul on transposed, sliced and expanded views", "[ops][matmul]") {
  Rng rng(43);
  const auto a = rng.normal<float>({3, 8, 10}), b = rng.normal<float>({3, 10, 9});
  const auto ref = ops::matmul(a, b);
  const auto a_view = a.transpose(1, 2).contiguous().transpose(1, 2);  // column-major matrices
  const auto b_view = b.permute({2, 0, 1}).contiguous().permute({1, 2, 0});
  CHECK(rel_error(ops::matmul(a_view, b_view), ref) <= 1e-6);
  const auto big = rng.normal<float>({3, 8, 30});
  const auto strided = big.slice(2, 0, 30, 3);  // [3, 8, 10], column stride 3: copied, then mapped
  CHECK(rel_error(ops::matmul(strided, b), ops::matmul(strided.contiguous(), b)) <= 1e-6);
  const auto row = rng.normal<float>({1, 10});
  const auto expanded = row.expand({8, 10});  // a matrix with row stride 0
  CHECK(rel_error(ops::matmul(expanded, b), ops::matmul(expanded.contiguous(), b)) <= 1e-6);
}

TEST_CASE("float products of awkward sizes match a triple loop", "[ops][matmul]") {
  // Sizes around the micro-tile (6..12 rows × 16..32 columns) and depth block (256) edges, with
  // row-major, transposed and strided operands: every packing and edge-tile path.
  Rng rng(46);
  struct Case {
    int64_t m, k, n;
  };
  for (const auto& c : std::vector<Case>{{12, 1, 32}, {13, 257, 33}, {50, 600, 70}, {100, 5, 31}, {6, 300, 16}, {97, 513, 200}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const auto a = rng.normal<float>(ta ? Shape{c.k, c.m} : Shape{c.m, c.k});
        const auto b = rng.normal<float>(tb ? Shape{c.n, c.k} : Shape{c.k, c.n});
        CHECK(rel_error(ops::matmul(a, b, ta, tb), reference_matmul(a, b, ta, tb)) <= 1e-6);
      }
  const auto wide = rng.normal<float>({40, 2 * 300});
  const auto strided = wide.slice(1, 0, 600, 2);  // [40, 300], column stride 2
  const auto b = rng.normal<float>({300, 45});
  CHECK(rel_error(ops::matmul(strided, b), reference_matmul(strided, b, false, false)) <= 1e-6);
  const auto bias = rng.normal<float>({45});
  auto ref = reference_matmul(strided, b, false, false);
  for (int64_t i = 0; i < 40; ++i)
    for (int64_t j = 0; j < 45; ++j) ref(i, j) += double(bias(j));
  CHECK(rel_error(ops::linear(strided, b.transpose(0, 1), bias), ref) <= 1e-6);  // bias, then accumulate
}

TEST_CASE("large products are tiled correctly and do not depend on the thread count", "[ops][matmul]") {
  Rng rng(44);
  const auto a = rng.normal<float>({1000, 64}), w = rng.normal<float>({1100, 64}), bias = rng.normal<float>({1100});
  auto ref = reference_matmul(a, w, false, true);
  for (int64_t i = 0; i < 1000; ++i)
    for (int64_t j = 0; j < 1100; ++j) ref(i, j) += double(bias(j));
  const int before = num_threads();
  set_num_threads(1);
  const auto y1 = ops::linear(a, w, bias);
  const auto d1 = ops::linear_backward(y1, a, w);
  const auto m1 = ops::matmul(a.reshape({10, 100, 64}), w, false, true);
  set_num_threads(2);
  const auto y2 = ops::linear(a, w, bias);
  const auto d2 = ops::linear_backward(y2, a, w);
  const auto m2 = ops::matmul(a.reshape({10, 100, 64}), w, false, true);
  set_num_threads(before);
  CHECK(rel_error(y2, ref) <= 1e-6);
  CHECK(rel_error(y1, y2) == 0.0);
  CHECK(rel_error(d1.dx, d2.dx) == 0.0);
  CHECK(rel_error(d1.dw, d2.dw) == 0.0);
  CHECK(rel_error(d1.db, d2.db) == 0.0);
  CHECK(rel_error(m1, m2) == 0.0);
}

TEST_CASE("matmul and linear backward pass finite differences", "[ops][matmul][gradcheck]") {
  Rng rng(45);
  struct Case {
    Shape batch_a, batch_b;
  };
  const std::vector<Case> cases = {{{}, {}}, {{2}, {2}}, {{2, 1}, {3}}, {{3}, {}}, {{}, {2}}, {{1}, {2}}};
  const int64_t m = 3, k = 4, n = 5;
  for (const auto& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        autograd::Variable<double> a(rng.normal<double>(with_matrix(c.batch_a, ta ? k : m, ta ? m : k)), true);
        autograd::Variable<double> b(rng.normal<double>(with_matrix(c.batch_b, tb ? n : k, tb ? k : n)), true);
        const double err = testing::gradcheck([=](const auto& in) { return autograd::matmul(in[0], in[1], ta, tb); }, {a, b});
        CHECK(err <= 1e-7);
      }
  autograd::Variable<double> x(rng.normal<double>({2, 3, 6}), true), w(rng.normal<double>({4, 6}), true),
      b(rng.normal<double>({4}), true);
  CHECK(testing::gradcheck([](const auto& in) { return autograd::linear(in[0], in[1], in[2]); }, {x, w, b}) <= 1e-7);
  CHECK(testing::gradcheck([](const auto& in) { return autograd::linear(in[0], in[1]); }, {x, w}) <= 1e-7);
  // a frozen weight: only x needs a gradient
  autograd::Variable<double> frozen(rng.normal<double>({4, 6}), false);
  CHECK(testing::gradcheck([&](const auto& in) { return autograd::linear(in[0], frozen, in[1]); }, {x, b}) <= 1e-7);
}

TEST_CASE("a frozen weight's linear keeps nothing of its input for backward", "[ops][matmul]") {
  Rng rng(43);
  const auto w = rng.normal<float>({7, 12}), b = rng.normal<float>({7}), dy = rng.normal<float>({2, 5, 7});
  autograd::Variable<float> x(rng.normal<float>({2, 5, 12}), true);
  // dx and db from dy and w alone equal those of the call that has x.
  const auto full = ops::linear_backward(dy, x.value(), w);
  const auto without_x = ops::linear_backward(dy, Tensor<float, Cpu>(), w, true, false, true);
  CHECK(rel_error(without_x.dx, full.dx) == 0.0);
  CHECK(rel_error(without_x.db, full.db) == 0.0);
  CHECK(without_x.dx.shape() == x.value().shape());
  CHECK_THROWS_AS(ops::linear_backward(dy, Tensor<float, Cpu>(), w), ctmllm::Error);  // dw needs x
  // The recorded node holds x's storage only when the weight trains.
  const long alone = x.value().storage().use_count();
  const autograd::Variable<float> frozen(w, false), trained(w, true);
  const auto y_frozen = autograd::linear(x, frozen);
  CHECK(x.value().storage().use_count() == alone);
  const auto y_trained = autograd::linear(x, trained);
  CHECK(x.value().storage().use_count() > alone);
  y_frozen.backward(dy);
  CHECK(rel_error(x.grad(), ops::linear_backward(dy, x.value(), w).dx) == 0.0);
}

TEST_CASE("matmul and linear reject bad input", "[ops][matmul]") {
  const auto a = Tensor<float>::zeros({2, 3, 4}), b = Tensor<float>::zeros({2, 5, 6});
  CHECK_THROWS_AS(ops::matmul(a, b), ctmllm::Error);                                // inner 4 vs 5
  CHECK_THROWS_AS(ops::matmul(a, Tensor<float>::zeros({4})), ctmllm::Error);        // rank 1
  CHECK_THROWS_AS(ops::matmul(a, Tensor<float>::zeros({3, 4, 2})), ctmllm::Error);  // batch 2 vs 3
  CHECK_THROWS_AS(ops::matmul(a, Tensor<float>::zeros({2, 4, 5}), true), ctmllm::Error);  // aᵀ is [2, 4, 3]
  CHECK_THROWS_AS(ops::matmul_backward(Tensor<float>::zeros({2, 3, 3}), a, Tensor<float>::zeros({4, 2})), ctmllm::Error);
  const auto x = Tensor<float>::zeros({5, 4}), w = Tensor<float>::zeros({3, 4});
  CHECK_THROWS_AS(ops::linear(x, Tensor<float>::zeros({3, 5})), ctmllm::Error);
  CHECK_THROWS_AS(ops::linear(x, Tensor<float>::zeros({3, 4, 1})), ctmllm::Error);
  CHECK_THROWS_AS(ops::linear(x, w, Tensor<float>::zeros({4})), ctmllm::Error);
  CHECK_THROWS_AS(ops::linear_backward(Tensor<float>::zeros({5, 4}), x, w), ctmllm::Error);
  CHECK_THROWS_AS(ops::linear(Tensor<float>(), w), ctmllm::Error);
}
