// CUDA graphs (core/cuda/graph.hpp): captured ops replay on new contents of their input buffers, on
// the capture's stream and on others; the capture's tensors live in the graph's own pool, a
// device-held index moves index_copy_'s write between replays, a block freed during the capture
// stays the graph's, the loss and the index-reading backward ops capture (their bad indices give
// NaN or nothing instead of an Error there), and a capture that cannot work (a read-back) throws and
// leaves the stream usable. The ctmllm:: qualification keeps libcu++'s ::cuda (pulled in by CUB) apart.
#include <optional>
#include <vector>

#include "ctmllm/core/cuda/graph.hpp"
#include "ctmllm/core/cuda/stream.hpp"
#include "ctmllm/ops/elementwise.hpp"
#include "ctmllm/ops/embedding.hpp"
#include "ctmllm/ops/loss.hpp"
#include "ctmllm/ops/reduce.hpp"
#include "ctmllm/ops/shape_ops.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

TEST_CASE("cuda graphs replay captured ops on new input contents", "[cuda][core][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  Rng rng(fresh_seed());
  const Shape shape{64, 33};
  const auto x = Tensor<float, Cuda>::zeros(shape);
  Tensor<float, Cuda> y;
  const size_t shared_before = ctmllm::cuda::allocator().stats().in_use;
  ctmllm::cuda::Graph graph = ctmllm::cuda::Graph::capture([&] { y = ops::mul(ops::add(x, x), x); });
  CHECK(graph.nodes() >= 2);
  CHECK(ctmllm::cuda::allocator().stats().in_use == shared_before);  // y and the sum live in the graph's pool
  CHECK_FALSE(ctmllm::cuda::capturing());
  // Three replays on the stream of the capture, then four alternating over two other streams
  // (core/cuda/stream.hpp): each waits for the one before.
  const ctmllm::cuda::Stream first, second;
  for (int replay = 0; replay < 7; ++replay) {
    std::optional<ctmllm::cuda::StreamScope> scope;
    if (replay >= 3) scope.emplace(replay % 2 ? first.get() : second.get());
    const auto host = rng.normal<float>(shape);
    Cuda::copy_from_host(x.data(), host.data(), size_t(host.numel()) * sizeof(float));
    graph.launch();
    CHECK(rel_error(y.to_device<Cpu>(), ops::mul(ops::add(host, host), host)) <= 1e-6);
  }
  // A tensor made after the capture never shares the graph's blocks.
  const auto other = Tensor<float, Cuda>::zeros(shape);
  CHECK(other.data() != y.data());
}

TEST_CASE("cuda index_copy_ under a graph writes at the index the device holds", "[cuda][core][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  const auto dst = Tensor<float, Cuda>::zeros({2, 5, 3});
  const auto src = Tensor<float, Cpu>::from({1, 2, 3, 4, 5, 6}, {2, 1, 3}).to_device<Cuda>();
  const auto index = Tensor<int64_t, Cuda>::zeros({1});
  ctmllm::cuda::Graph graph = ctmllm::cuda::Graph::capture([&] { ops::index_copy_(dst, 1, index, src); });
  Tensor<float, Cpu> want = Tensor<float, Cpu>::zeros({2, 5, 3});
  for (const int64_t row : {int64_t(3), int64_t(0), int64_t(4)}) {
    Cuda::copy_from_host(index.data(), &row, sizeof(int64_t));
    graph.launch();
    ops::index_copy_(want, 1, Tensor<int64_t, Cpu>::from({row}, {1}), src.to_device<Cpu>());
    CHECK(dst.to_vector() == want.to_vector());
  }
  // Out of range under the graph: the row is skipped (nothing can be read back there).
  const int64_t bad = 5;
  Cuda::copy_from_host(index.data(), &bad, sizeof(int64_t));
  graph.launch();
  CHECK(dst.to_vector() == want.to_vector());
  // Directly, the same index is the CPU's Error.
  CHECK_THROWS_WITH(ops::index_copy_(dst, 1, index, src), Catch::Contains("index 5 at position 0 is outside [0, 5)"));
}

TEST_CASE("a tensor made before a capture and freed in it stays the graph's until the graph goes",
          "[cuda][core][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  Rng rng(fresh_seed());
  const auto host = rng.normal<float>({3000});
  Tensor<float, Cuda> before = host.to_device<Cuda>(), y;
  const float* address = before.data();
  {
    ctmllm::cuda::Graph graph = ctmllm::cuda::Graph::capture([&] {
      y = ops::add(before, before);
      before = Tensor<float, Cuda>();  // its last reference goes, but every replay reads the block
    });
    const auto other = Tensor<float, Cuda>::zeros({3000});  // the same size class, made after
    CHECK(other.data() != address);
    graph.launch();
    CHECK(rel_error(y.to_device<Cpu>(), ops::add(host, host)) == 0.0);
  }
  y = Tensor<float, Cuda>();  // the graph and its tensors are gone: the block is the shared cache's again
  const auto again = Tensor<float, Cuda>::empty({3000});
  CHECK(again.data() == address);
}

TEST_CASE("cuda cross entropy and the index-reading backward ops capture into a graph", "[cuda][core][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  Rng rng(fresh_seed());
  const int64_t N = 6, C = 11, V = 9, H = 5;
  const auto logits = rng.normal<float>({N, C}), dy = rng.normal<float>({N, H});
  const auto dloss = rng.normal<float>({1}), dmax_in = rng.normal<float>({N, 1});
  const auto logits_d = logits.to_device<Cuda>(), dy_d = dy.to_device<Cuda>(), dloss_d = dloss.to_device<Cuda>();
  const auto dmax_in_d = dmax_in.to_device<Cuda>();
  const auto targets = Tensor<int64_t, Cuda>::zeros({N}), ids = Tensor<int64_t, Cuda>::zeros({N});
  const auto max_indices = Tensor<int64_t, Cuda>::zeros({N, 1});
  Tensor<float, Cuda> loss, dlogits, dweight, dmax;
  ctmllm::cuda::Graph graph = ctmllm::cuda::Graph::capture([&] {
    const auto ce = ops::cross_entropy(logits_d, targets, -100);
    loss = ce.loss;
    dlogits = ops::cross_entropy_backward(dloss_d, logits_d, targets, ce.lse, -100);
    dweight = ops::embedding_backward(dy_d, ids, V);
    dmax = ops::max_backward(dmax_in_d, max_indices, Shape{N, C}, 1, true);
  });
  const auto set = [](const Tensor<int64_t, Cuda>& t, const std::vector<int64_t>& v) {
    Cuda::copy_from_host(t.data(), v.data(), v.size() * sizeof(int64_t));
  };
  // In range (and one ignored target): the CPU's results.
  const std::vector<int64_t> tv{3, -100, 0, 10, 3, 7}, iv{2, 8, 2, 0, 5, 2}, mv{0, 4, 10, 1, 1, 7};
  set(targets, tv);
  set(ids, iv);
  set(max_indices, mv);
  graph.launch();
  const auto targets_h = Tensor<int64_t, Cpu>::from(tv, {N}), ids_h = Tensor<int64_t, Cpu>::from(iv, {N});
  const auto ce = ops::cross_entropy(logits, targets_h, -100);
  CHECK(rel_error(loss.to_device<Cpu>(), ce.loss) <= 1e-5);
  const auto want_dlogits = ops::cross_entropy_backward(dloss, logits, targets_h, ce.lse, -100);
  CHECK(rel_error(dlogits.to_device<Cpu>(), want_dlogits) <= 1e-5);
  CHECK(rel_error(dweight.to_device<Cpu>(), ops::embedding_backward(dy, ids_h, V)) <= 1e-6);
  const auto want_dmax = ops::max_backward(dmax_in, Tensor<int64_t, Cpu>::from(mv, {N, 1}), Shape{N, C}, 1, true);
  CHECK(rel_error(dmax.to_device<Cpu>(), want_dmax) <= 1e-6);
  // Out of range under the graph (nothing can be read back there): a NaN loss and NaN rows of that
  // target's gradient, the bad id's token left out of dweight, the bad index's dy sent nowhere.
  set(targets, {3, -100, 0, 11, 3, 7});
  set(ids, {2, 9, 2, 0, -1, 2});
  set(max_indices, {0, 4, 11, 1, -3, 7});
  graph.launch();
  CHECK(std::isnan(loss.to_vector()[0]));
  const std::vector<float> g = dlogits.to_vector();
  CHECK(std::isnan(g[3 * C]));
  CHECK(std::isfinite(g[0]));
  const std::vector<int64_t> kept_ids{2, 2, 0, 2}, kept_rows{0, 2, 3, 5};
  Tensor<float, Cpu> want_dweight = Tensor<float, Cpu>::zeros({V, H});
  for (size_t k = 0; k < kept_rows.size(); ++k)
    for (int64_t h = 0; h < H; ++h) want_dweight.at(kept_ids[k], h) += dy.at(kept_rows[k], h);
  CHECK(rel_error(dweight.to_device<Cpu>(), want_dweight) <= 1e-6);
  const std::vector<float> dm = dmax.to_vector();
  CHECK(dm[2 * C + 10] == 0.0f);  // row 2's index 11 is outside [0, 11): no element gets its dy
  CHECK(dm[4 * C + 1] == 0.0f);
  CHECK(dm[0] == dmax_in.to_vector()[0]);
  // Directly, the same indices are the CPU's Errors.
  CHECK_THROWS_WITH(ops::cross_entropy(logits_d, targets, -100), Catch::Contains("11"));
  CHECK_THROWS_AS(ops::embedding_backward(dy_d, ids, V), Error);
  CHECK_THROWS_AS(ops::max_backward(dmax_in_d, max_indices, Shape{N, C}, 1, true), Error);
}

TEST_CASE("a cuda graph capture that reads back throws and leaves the stream usable", "[cuda][core][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const auto x = Tensor<float, Cpu>::from({1, 2, 3}, {3}).to_device<Cuda>();
  CHECK_THROWS_AS(ctmllm::cuda::Graph::capture([&] { (void)ops::add(x, x).to_vector(); }), Error);
  CHECK_FALSE(ctmllm::cuda::capturing());
  CHECK(ops::add(x, x).to_vector() == std::vector<float>{2, 4, 6});
  ctmllm::cuda::Graph empty;
  CHECK_THROWS_AS(empty.launch(), Error);
}
