// Built only when ctmllm::cuda exists: compiles and links the CUDA device type as a user would.
// With a GPU it round-trips a tensor through device memory and compares; without one (no device,
// or no driver: cudaGetDeviceCount fails) it says so and succeeds.
#include <cstdio>
#include <vector>

#include <ctmllm/core.hpp>

int main() {
  using namespace ctmllm;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (!Cuda::available()) {
    std::printf("cuda_probe: no usable GPU (cudaGetDeviceCount: %s, %d devices): skipped device checks\n",
                e == cudaSuccess ? "ok" : cudaGetErrorName(e), n);
    return 0;
  }
  Rng rng(7);
  const auto host = rng.uniform<float>({3, 4, 5}, -1.0, 1.0);
  const auto dev = host.to_device<Cuda>();
  const auto back = dev.to_device<Cpu>();
  const bool ok = back.to_vector() == host.to_vector() && dev.select(0, 2).select(0, 3).select(0, 4).item() == host.at(2, 3, 4);
  std::printf("cuda_probe: %d GPU(s); host -> device -> host round trip %s\n", n, ok ? "matches" : "MISMATCHES");
  return ok ? 0 : 1;
}
