// max/argmax along one dimension and max_backward on the GPU against the CPU kernels for float32,
// bfloat16 and float16, exactly: along the last dimension (a block per row, 3000 wide) and a middle
// one (a thread per column), on values with many ties (the first index wins) and NaNs (the first NaN
// wins).
#include <cmath>
#include <cstring>

#include "ctmllm/ops/reduce.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

// Small integers (ties everywhere) with NaNs at a few places.
template <class T>
Tensor<T, Cpu> tied_values(Rng& rng, const Shape& s) {
  Tensor<float, Cpu> x = rng.normal<float>(s, 0.0, 2.0);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = std::round(x.data()[i]);
  for (const int64_t i : {int64_t(7), x.numel() / 2, x.numel() / 2 + 3}) x.data()[i] = NAN;
  return x.to<T>();
}

template <class T>
bool same_bits(const Tensor<T, Cuda>& gpu, const Tensor<T, Cpu>& ref) {
  const Tensor<T, Cpu> host = gpu.template to_device<Cpu>();
  return host.shape() == ref.shape() && std::memcmp(host.data(), ref.data(), size_t(ref.numel()) * sizeof(T)) == 0;
}

template <class T>
void check_max(uint64_t seed) {
  Rng rng(seed);
  for (const Shape shape : {Shape{5, 3000}, Shape{4, 7, 9}})
    for (const int dim : {-1, 1})
      for (const bool keepdim : {false, true}) {
        INFO("shape " << shape << ", dim " << dim << (keepdim ? ", keepdim" : ""));
        const auto x = tied_values<T>(rng, shape);
        const auto gx = x.template to_device<Cuda>();
        const auto r = ops::max(x, dim, keepdim);
        const auto g = ops::max(gx, dim, keepdim);
        CHECK(same_bits(g.values, r.values));
        CHECK(same_bits(g.indices, r.indices));
        const auto dy = random_normal<T>(rng, r.values.shape());
        CHECK(same_bits(ops::max_backward(dy.template to_device<Cuda>(), g.indices, shape, dim, keepdim),
                        ops::max_backward(dy, r.indices, shape, dim, keepdim)));
      }
}

}  // namespace

TEST_CASE("cuda max, argmax and max_backward match the CPU exactly", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_max<decltype(t)>(seed); });
}
