// Streams (core/cuda/stream.hpp): a StreamScope routes the thread's work to the caller's stream and
// orders it against the stream it replaces; freed blocks go back to their own stream's free list;
// threads with their own streams run cuBLASLt and cuDNN work at once and get the CPU's results.
// (A graph replayed on other streams: test_cuda_graph.cu.)
#include <thread>
#include <vector>

#include "ctmllm/ops/conv3d.hpp"
#include "ctmllm/ops/elementwise.hpp"
#include "ctmllm/ops/matmul.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

TEST_CASE("a cuda StreamScope sets the thread's current stream until it ends", "[cuda][core][stream]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const cudaStream_t own = ctmllm::cuda::current_stream();
  const ctmllm::cuda::Stream outer, inner;
  {
    const ctmllm::cuda::StreamScope scope(outer.get());
    CHECK(ctmllm::cuda::current_stream() == outer.get());
    {
      const ctmllm::cuda::StreamScope nested(inner.get());
      CHECK(ctmllm::cuda::current_stream() == inner.get());
      cudaStream_t seen = nullptr;
      std::thread([&] { seen = ctmllm::cuda::current_stream(); }).join();
      CHECK(seen == own);  // scopes belong to their thread
    }
    CHECK(ctmllm::cuda::current_stream() == outer.get());
  }
  CHECK(ctmllm::cuda::current_stream() == own);
  CHECK_THROWS_WITH(ctmllm::cuda::StreamScope(nullptr), Catch::Contains("not a default stream"));
  CHECK_THROWS_WITH(ctmllm::cuda::StreamScope(cudaStreamPerThread), Catch::Contains("not a default stream"));
  CHECK(ctmllm::cuda::current_stream() == own);
}

TEST_CASE("cuda work in a StreamScope sees what came before and is seen after", "[cuda][core][stream]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  Rng rng(fresh_seed());
  const auto a = rng.normal<float>({256, 512}), b = rng.normal<float>({512, 384});
  const ctmllm::cuda::Stream user;
  // Queued on the device's own stream; the scope's stream must wait for them, and the device's own
  // stream for the scope's work, with no host wait in between.
  const auto ga = ops::mul_scalar(a.to_device<Cuda>(), 2.0), gb = b.to_device<Cuda>();
  Tensor<float, Cuda> c;
  {
    const ctmllm::cuda::StreamScope scope(user.get());
    c = ops::add(ops::matmul(ga, gb), ops::matmul(ga, gb));
  }
  const auto d = ops::mul_scalar(c, 0.25);
  CHECK(gpu_error(d, ops::matmul(a, b)) <= 1e-5);
}

TEST_CASE("cuda blocks freed under a stream are handed out again on that stream only", "[cuda][core][stream]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const ctmllm::cuda::Stream user;
  const Shape shape{12345};  // a size class the other tests hardly use
  void* freed = nullptr;
  {
    const ctmllm::cuda::StreamScope scope(user.get());
    freed = Tensor<float, Cuda>::zeros(shape).data();
  }
  const auto on_own = Tensor<float, Cuda>::zeros(shape);  // the device's stream: not the block the user stream may still write
  CHECK(on_own.data() != freed);
  const ctmllm::cuda::StreamScope scope(user.get());
  const auto again = Tensor<float, Cuda>::zeros(shape);
  CHECK(again.data() == freed);
}

TEST_CASE("threads on their own cuda streams run GEMMs and cuDNN convolutions at once", "[cuda][core][stream]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  PoisonDeviceMemory poison;
  constexpr int kThreads = 4, kRounds = 8;
  struct Work {
    Tensor<float, Cpu> a, b, x, w, want_mm, want_conv;
    Tensor<float, Cpu> got_mm, got_conv;
    std::string error;
  };
  std::vector<Work> work(kThreads);
  Rng rng(seed);
  for (Work& t : work) {
    t.a = rng.normal<float>({192, 320});
    t.b = rng.normal<float>({320, 256});
    t.x = rng.normal<float>({2, 3, 8, 10, 9});
    t.w = rng.normal<float>({4, 3, 3, 3, 3});
    t.want_mm = ops::matmul(t.a, t.b);
    t.want_conv = ops::conv3d(t.x, t.w, Tensor<float, Cpu>(), {1, 1, 1}, {1, 1, 1});
  }
  std::vector<std::thread> threads;
  for (Work& t : work)
    threads.emplace_back([&t] {
      try {
        const ctmllm::cuda::Stream stream;
        const ctmllm::cuda::StreamScope scope(stream.get());
        const auto a = t.a.to_device<Cuda>(), b = t.b.to_device<Cuda>(), x = t.x.to_device<Cuda>(), w = t.w.to_device<Cuda>();
        Tensor<float, Cuda> mm, conv;
        for (int r = 0; r < kRounds; ++r) {  // each round frees the last: blocks cycle within the stream
          mm = ops::matmul(a, b);
          conv = ops::conv3d(x, w, Tensor<float, Cuda>(), {1, 1, 1}, {1, 1, 1});
        }
        t.got_mm = mm.to_device<Cpu>();
        t.got_conv = conv.to_device<Cpu>();
        stream.synchronize();
      } catch (const std::exception& e) {
        t.error = e.what();
      }
    });
  for (std::thread& th : threads) th.join();
  for (const Work& t : work) {
    REQUIRE(t.error.empty());
    CHECK(rel_error(t.got_mm, t.want_mm) <= 1e-5);
    CHECK(rel_error(t.got_conv, t.want_conv) <= 1e-5);
  }
}
