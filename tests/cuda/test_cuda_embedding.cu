// embedding and its scatter-add backward on the GPU against the CPU kernels for float32, bfloat16 and
// float16, with ids that repeat (the backward sums them per id in token order: the same bits on
// every run) and rows no id uses (zero); out-of-range ids raise the CPU's error, except where the
// caller checked them (no host wait; a bad id then reads as a zero row).
#include <algorithm>
#include <cstring>
#include <string>

#include "ctmllm/ops/caller_checked_indices.hpp"
#include "ctmllm/ops/embedding.hpp"
#include "ctmllm/ops/shape_ops.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class T>
void check_embedding(uint64_t seed) {
  Rng rng(seed);
  const int64_t V = 300, H = 200;
  const auto w = random_normal<T>(rng, {V, H});
  // Ids from the first 60 rows only: most repeat a few times, and rows 60.. get no gradient.
  const auto ids = rng.uniform<double>({4, 33}, 0.0, 60.0).to<int64_t>();
  const auto dy = random_normal<T>(rng, {4, 33, H});
  const auto gw = w.template to_device<Cuda>(), gdy = dy.template to_device<Cuda>();
  const auto gids = ids.template to_device<Cuda>();
  CTMLLM_CHECK_GPU(T, ops::embedding(gw, gids), ops::embedding(w, ids));
  const auto dw = ops::embedding_backward(gdy, gids, V);
  CTMLLM_CHECK_GPU(T, dw, ops::embedding_backward(dy, ids, V));
  const auto first = dw.template to_device<Cpu>(), again = ops::embedding_backward(gdy, gids, V).template to_device<Cpu>();
  CHECK(std::memcmp(first.data(), again.data(), size_t(first.numel()) * sizeof(T)) == 0);
}

}  // namespace

TEST_CASE("cuda embedding and its backward match the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_embedding<decltype(t)>(seed); });
}

TEST_CASE("cuda embedding rejects an out-of-range id with the CPU's message", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const auto w = Tensor<float, Cpu>::zeros({10, 4}).to_device<Cuda>();
  const auto ids = Tensor<int64_t, Cpu>::from({3, 10, 2, -1}, {2, 2}).to_device<Cuda>();
  for (const bool backward : {false, true}) {
    std::string message;
    try {
      if (backward) ops::embedding_backward(Tensor<float, Cpu>::zeros({2, 2, 4}).to_device<Cuda>(), ids, 10);
      else ops::embedding(w, ids);
    } catch (const Error& e) {
      message = e.what();
    }
    INFO(message);
    CHECK(message.find("id 10 at index 1 (row-major)") != std::string::npos);
  }
}

TEST_CASE("cuda embedding and index_copy skip the device range check where the caller checked", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const auto w = Tensor<float, Cpu>::ones({10, 4}).to_device<Cuda>();
  const auto bad = Tensor<int64_t, Cpu>::from({3, 10}, {2}).to_device<Cuda>();
  const auto dst = Tensor<float, Cpu>::zeros({5, 4}).to_device<Cuda>();
  const auto src = Tensor<float, Cpu>::ones({2, 4}).to_device<Cuda>();
  CHECK_THROWS_AS(ops::embedding(w, bad), Error);
  CHECK_THROWS_AS(ops::index_copy_(dst, 0, bad, src), Error);
  const ops::IndicesCheckedByCaller checked;
  const auto y = ops::embedding(w, bad).to_device<Cpu>();
  CHECK(y.to_vector() == std::vector<float>{1, 1, 1, 1, 0, 0, 0, 0});
  ops::index_copy_(dst, 0, bad, src);  // row 10 is skipped, row 3 written
  const auto d = dst.to_device<Cpu>();
  CHECK(d.select(0, 3).to_vector() == std::vector<float>{1, 1, 1, 1});
  const std::vector<float> all = d.to_vector();
  CHECK(std::count(all.begin(), all.end(), 1.0f) == 4);
}
