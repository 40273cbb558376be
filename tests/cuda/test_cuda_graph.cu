// CUDA graphs (core/cuda/graph.hpp): captured ops replay on new contents of their input buffers, on
// the capture's stream and on others; the capture's tensors live in the graph's own pool, a
// device-held index moves index_copy_'s write between replays, and a capture that cannot work (a
// read-back) throws and leaves the stream usable.
#include <optional>
#include <vector>

#include "ctmllm/core/cuda/graph.hpp"
#include "ctmllm/core/cuda/stream.hpp"
#include "ctmllm/ops/elementwise.hpp"
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
  const size_t shared_before = cuda::allocator().stats().in_use;
  ctmllm::cuda::Graph graph = ctmllm::cuda::Graph::capture([&] { y = ops::mul(ops::add(x, x), x); });
  CHECK(graph.nodes() >= 2);
  CHECK(cuda::allocator().stats().in_use == shared_before);  // y and the sum live in the graph's pool
  CHECK_FALSE(cuda::capturing());
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

TEST_CASE("a cuda graph capture that reads back throws and leaves the stream usable", "[cuda][core][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const auto x = Tensor<float, Cpu>::from({1, 2, 3}, {3}).to_device<Cuda>();
  CHECK_THROWS_AS(ctmllm::cuda::Graph::capture([&] { (void)ops::add(x, x).to_vector(); }), Error);
  CHECK_FALSE(cuda::capturing());
  CHECK(ops::add(x, x).to_vector() == std::vector<float>{2, 4, 6});
  ctmllm::cuda::Graph empty;
  CHECK_THROWS_AS(empty.launch(), Error);
}
