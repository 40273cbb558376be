// dropout and dropout_backward on the GPU against the CPU kernel for float32, bfloat16 and float16,
// bit for bit: both draw the same counter-based stream (core/rng.hpp runs on the device too), for
// several rates, seeds and stream offsets, on a strided input.
#include <cstring>

#include "ctmllm/ops/dropout.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class T>
bool same_bits(const Tensor<T, Cuda>& gpu, const Tensor<T, Cpu>& ref) {
  const Tensor<T, Cpu> host = gpu.template to_device<Cpu>();
  return host.shape() == ref.shape() && std::memcmp(host.data(), ref.data(), size_t(ref.numel()) * sizeof(T)) == 0;
}

template <class T>
void check_dropout(uint64_t seed) {
  Rng rng(seed);
  const auto x = random_normal<T>(rng, {77, 1000}).transpose(0, 1);  // strided [1000, 77]
  const auto dy = random_normal<T>(rng, {1000, 77});
  const auto gx = x.transpose(0, 1).contiguous().template to_device<Cuda>().transpose(0, 1);
  const auto gdy = dy.template to_device<Cuda>();
  for (const double p : {0.1, 0.5, 0.9}) {
    const uint64_t mask_seed = seed ^ 0x5eed, offset = (uint64_t(1) << 40) + uint64_t(p * 1000);
    INFO("p " << p);
    CHECK(same_bits(ops::dropout(gx, p, mask_seed, offset), ops::dropout(x, p, mask_seed, offset)));
    CHECK(same_bits(ops::dropout_backward(gdy, p, mask_seed, offset), ops::dropout_backward(dy, p, mask_seed, offset)));
  }
}

}  // namespace

TEST_CASE("cuda dropout and its backward match the CPU bit for bit", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_dropout<decltype(t)>(seed); });
}
