#pragma once
// Shared by the GPU op tests: each compares an op on Cuda tensors with the same op on the CPU (the
// reference) for float32, bfloat16 and float16, on inputs drawn fresh each run (the seed is printed
// on failure), with every new device block NaN-filled first so that an output element a kernel
// never writes fails the comparison (rel_error counts NaN as an infinite error).
#include <cmath>
#include <random>

#include "ctmllm/core.hpp"
#include "ctmllm/core/cuda/allocator.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"

namespace ctmllm::testing {

// ‖gpu − ref‖ / ‖ref‖ allowed per element type: float32 arithmetic, or the rounding of one 16-bit
// result (bfloat16 keeps 8 significant bits, float16 11).
template <class T>
inline constexpr double gpu_tolerance = std::is_same_v<T, float> ? 1e-5 : std::is_same_v<T, bf16> ? 1e-2 : 5e-3;

// Turns on NaN-filling of new device blocks for the scope of a test.
struct PoisonDeviceMemory {
  PoisonDeviceMemory() { cuda::poison_new_blocks() = true; }
  ~PoisonDeviceMemory() { cuda::poison_new_blocks() = false; }
  PoisonDeviceMemory(const PoisonDeviceMemory&) = delete;
  PoisonDeviceMemory& operator=(const PoisonDeviceMemory&) = delete;
};

inline uint64_t fresh_seed() { return (uint64_t(std::random_device{}()) << 32) | std::random_device{}(); }

// Normal(0, std) values in T (drawn in float, rounded once).
template <class T>
Tensor<T, Cpu> random_normal(Rng& rng, const Shape& s, double std = 1.0) {
  return rng.normal<float>(s, 0.0, std).to<T>();
}

// Runs f(T{}, seed) for float, bfloat16 and float16 on one fresh seed (printed on failure), with
// new device blocks poisoned.
template <class F>
void for_each_dtype(F&& f) {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  PoisonDeviceMemory poison;
  f(float{}, seed);
  f(bf16{}, seed);
  f(ctmllm::half{}, seed);  // qualified: CUDA's headers declare a global half too
}

template <class T>
double gpu_error(const Tensor<T, Cuda>& gpu, const Tensor<T, Cpu>& ref) {
  REQUIRE(gpu.shape() == ref.shape());
  return rel_error(gpu.template to_device<Cpu>(), ref);
}

// Attention's row logsumexps: −inf exactly where the CPU's are (queries that see no key), the rest
// within float tolerance.
inline void check_lse(const Tensor<float, Cuda>& gpu, const Tensor<float, Cpu>& ref) {
  Tensor<float, Cpu> g = gpu.to_device<Cpu>().clone(), r = ref.clone();
  int64_t mismatched = 0;
  for (int64_t i = 0; i < r.numel(); ++i) {
    const bool gi = g.data()[i] == -INFINITY, ri = r.data()[i] == -INFINITY;
    mismatched += gi != ri;
    if (gi && ri) g.data()[i] = r.data()[i] = 0.0f;
  }
  CHECK(mismatched == 0);
  const double err = rel_error(g, r);
  INFO("lse: relative error " << err);
  CHECK(err <= gpu_tolerance<float>);
}

}  // namespace ctmllm::testing

// Checks a GPU result against its CPU reference within T's tolerance, naming the dtype.
#define CTMLLM_CHECK_GPU(T, gpu, ref)                                         \
  do {                                                                        \
    const double err_ = ::ctmllm::testing::gpu_error((gpu), (ref));          \
    INFO(#gpu << " (" << ::ctmllm::dtype_name(::ctmllm::dtype_v<T>) << "): relative error " << err_); \
    CHECK(err_ <= ::ctmllm::testing::gpu_tolerance<T>);                       \
  } while (0)
