// Device storage: host <-> device copies through cudaMalloc'd tensors. Built only with the CUDA
// toolkit (CTMLLM_WITH_CUDA); every case skips cleanly on a machine without a GPU.
#include "ctmllm/core.hpp"
#include "support/catch.hpp"

using namespace ctmllm;
using CudaTensor = Tensor<float, Cuda>;  // one name: template commas confuse the CHECK macros

TEST_CASE("cuda tensors round-trip through device memory", "[cuda][core]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const auto host = Rng(1).normal<float>({3, 5, 7});
  const auto dev = host.to_device<Cuda>();
  CHECK(dev.shape() == host.shape());
  const auto back = dev.to_device<Cpu>();
  CHECK(back.to_vector() == host.to_vector());
  const auto strided = host.transpose(0, 2).to_device<Cuda>().to_device<Cpu>();  // made contiguous on the way
  CHECK(strided.at(6, 4, 2) == host.at(2, 4, 6));
  CHECK(CudaTensor::full({4}, 2.5f).to_vector() == std::vector<float>(4, 2.5f));
}

TEST_CASE("cuda errors surface as ctmllm::Error", "[cuda][core]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const Shape huge{int64_t(1) << 40, 1024};  // 4 PiB
  CHECK_THROWS_AS(CudaTensor::empty(huge), Error);
}
