// The device's strided copy (ops/cuda/copy.cuh) against the same copies on the CPU, bit for bit:
// contiguous() of transposed, permuted, sliced and expanded views, copy_from into a strided
// destination, to_device<Cpu> of a strided view, concat / split_backward and index_copy_ on the GPU,
// and zeros set on the device, for float and 16-bit float elements and for the integer ids and
// masks that ride along with them; in-place writes (copy_from, add_, index_copy_, convert_) whose
// source overlaps the destination.
#include <cstring>

#include "ctmllm/ops/elementwise.hpp"
#include "ctmllm/ops/optim.hpp"
#include "ctmllm/ops/shape_ops.hpp"
#include "cuda/gpu_check.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

// Random values of T: normal floats, or small integers.
template <class T>
Tensor<T, Cpu> random_values(Rng& rng, const Shape& s) {
  if constexpr (is_floating_v<T>) return random_normal<T>(rng, s);
  else return rng.uniform<float>(s, 0.0, 100.0).to<T>();
}

// The same shape and the same bytes.
template <class T>
bool same_bits(const Tensor<T, Cuda>& gpu, const Tensor<T, Cpu>& ref) {
  const Tensor<T, Cpu> host = gpu.template to_device<Cpu>(), r = ref.contiguous();
  return host.shape() == r.shape() && std::memcmp(host.data(), r.data(), size_t(r.numel()) * sizeof(T)) == 0;
}

template <class T>
void check_views(uint64_t seed) {
  INFO(dtype_name(dtype_v<T>));
  Rng rng(seed);
  const auto x = random_values<T>(rng, {3, 5, 4, 7});
  const auto g = x.template to_device<Cuda>();
  CHECK(same_bits(g.transpose(0, 3).contiguous(), x.transpose(0, 3)));
  CHECK(same_bits(g.permute({0, 2, 1, 3}).contiguous(), x.permute({0, 2, 1, 3})));  // [B, S, H, D] -> [B, H, S, D]
  CHECK(same_bits(g.slice(1, 1, 5, 2).slice(3, 2, 7).contiguous(), x.slice(1, 1, 5, 2).slice(3, 2, 7)));
  CHECK(same_bits(g.select(2, 3).contiguous(), x.select(2, 3)));
  const auto row = random_values<T>(rng, {1, 7});
  CHECK(same_bits(row.template to_device<Cuda>().expand({6, 7}).contiguous(), row.expand({6, 7})));
  // Straight to the host: made contiguous on the device first.
  CHECK(same_bits(g.transpose(1, 2), x.transpose(1, 2)));
  // Into a strided destination: only the slice changes.
  const auto base = random_values<T>(rng, {3, 9, 7});
  const auto src = random_values<T>(rng, {7, 3, 4}).permute({1, 2, 0});
  const auto gbase = base.template to_device<Cuda>();
  gbase.slice(1, 2, 9, 2).copy_from(src.template to_device<Cuda>().permute({1, 2, 0}));
  base.slice(1, 2, 9, 2).copy_from(src);
  CHECK(same_bits(gbase, base));
}

template <class T>
void check_concat(uint64_t seed) {
  INFO(dtype_name(dtype_v<T>));
  Rng rng(seed);
  const auto a = random_values<T>(rng, {4, 3, 6}), b = random_values<T>(rng, {4, 5, 6});
  const auto c_storage = random_values<T>(rng, {6, 2, 4});
  const auto c = c_storage.permute({2, 1, 0});  // a strided [4, 2, 6] input
  const auto ga = a.template to_device<Cuda>(), gb = b.template to_device<Cuda>();
  const auto gc = c_storage.template to_device<Cuda>().permute({2, 1, 0});
  CHECK(same_bits(ops::concat(std::vector{ga, gb, gc}, 1), ops::concat(std::vector{a, b, c}, 1)));
  CHECK(same_bits(ops::concat(std::vector{ga, ga}, 0), ops::concat(std::vector{a, a}, 0)));
  CHECK(same_bits(ops::concat(std::vector{gb, ga}, -2), ops::concat(std::vector{b, a}, -2)));
  // split_backward with a missing piece: zeros, then the other pieces copied into their slices.
  const std::vector<int64_t> sizes{3, 5};
  CHECK(same_bits(ops::split_backward(std::vector{ga, Tensor<T, Cuda>()}, Shape{4, 8, 6}, sizes, 1),
                  ops::split_backward(std::vector{a, Tensor<T, Cpu>()}, Shape{4, 8, 6}, sizes, 1)));
}

template <class T>
void check_index_copy(uint64_t seed) {
  INFO(dtype_name(dtype_v<T>));
  Rng rng(seed);
  const auto dst = random_values<T>(rng, {3, 4, 9, 5});
  const auto src = random_values<T>(rng, {3, 5, 4, 2}).permute({0, 2, 3, 1});  // a strided [3, 4, 2, 5]
  const auto gdst = dst.template to_device<Cuda>();
  const auto gsrc = src.template to_device<Cuda>();  // contiguous on the device
  ops::index_copy_(gdst, 2, Tensor<int64_t, Cpu>::from({7, 2}, {2}).template to_device<Cuda>(), gsrc);
  ops::index_copy_(dst, 2, Tensor<int64_t, Cpu>::from({7, 2}, {2}), src);
  CHECK(same_bits(gdst, dst));
  CHECK(same_bits(Tensor<T, Cuda>::zeros({7, 3}), Tensor<T, Cpu>::zeros({7, 3})));  // over the poison
}

}  // namespace

TEST_CASE("cuda strided copies of views match the CPU bit for bit", "[cuda][core]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  PoisonDeviceMemory poison;
  REQUIRE(Cuda::strided_copy_available());  // installed by ops/backend.hpp in this .cu file
  check_views<float>(seed);
  check_views<bf16>(seed);
  check_views<ctmllm::half>(seed);  // qualified: CUDA's headers declare a global half too
  check_views<int64_t>(seed);
  check_views<uint8_t>(seed);
}

TEST_CASE("cuda concat and split_backward match the CPU bit for bit", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  PoisonDeviceMemory poison;
  check_concat<float>(seed);
  check_concat<bf16>(seed);
  check_concat<ctmllm::half>(seed);
  check_concat<int64_t>(seed);
}

TEST_CASE("cuda index_copy_ and device zeros match the CPU bit for bit", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  PoisonDeviceMemory poison;
  check_index_copy<float>(seed);
  check_index_copy<bf16>(seed);
  check_index_copy<ctmllm::half>(seed);
  check_index_copy<int64_t>(seed);
  const auto rows = Tensor<float, Cuda>::zeros({4, 2});
  CHECK_THROWS_WITH(ops::index_copy_(rows, 0, Tensor<int64_t, Cpu>::from({1, 4}, {2}).to_device<Cuda>(),
                                     Tensor<float, Cuda>::zeros({2, 2})),
                    Catch::Contains("index 4 at position 1 is outside [0, 4)"));
}

TEST_CASE("cuda in-place writes read an overlapping source as it was, as on the CPU", "[cuda][ops]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const PoisonDeviceMemory poison;
  Rng rng(fresh_seed());
  const auto host = rng.normal<float>({64, 48});
  // Each case runs on a CPU copy and a GPU copy of the same matrix, then compares them bit for bit.
  const auto check = [&](const char* what, auto&& op) {
    INFO(what);
    const auto cpu = host.clone();
    const auto gpu = host.to_device<Cuda>();
    op(cpu);
    op(gpu);
    CHECK(rel_error(gpu.to_device<Cpu>(), cpu) == 0.0);
  };
  check("copy_from, rows shifted by one (contiguous)",
        [](const auto& t) { t.slice(0, 1, 64).copy_from(t.slice(0, 0, 63)); });
  check("copy_from, a square block transposed in place", [](const auto& t) {
    const auto block = t.slice(1, 0, 48).slice(0, 0, 48);
    block.copy_from(block.transpose(0, 1));
  });
  check("add_, rows shifted by one", [](const auto& t) { ops::add_(t.slice(0, 1, 64), t.slice(0, 0, 63)); });
  check("add_, a row broadcast over its matrix", [](const auto& t) { ops::add_(t, t.select(0, 5)); });
  check("index_copy_ from its own rows", [](const auto& t) {
    using Dev = typename std::decay_t<decltype(t)>::device_type;
    const auto index = Tensor<int64_t, Cpu>::from({1, 2, 3}, {3}).template to_device<Dev>();
    ops::index_copy_(t, 0, index, t.slice(0, 0, 3));
  });
  check("convert_ from its own shifted elements", [](const auto& t) {
    const auto flat = t.reshape({64 * 48});
    ops::convert_(std::vector{flat.slice(0, 7, 64 * 48)}, std::vector{flat.slice(0, 0, 64 * 48 - 7)}, 0.5);
  });
}
