// Built only when ctmllm::cuda exists: a .cu file of a user's project that calls an op on Cuda tensors
// through the installed headers (ctmllm_enable_cuda_language() + ctmllm::cuda). With a GPU it
// compares gelu on the device with the CPU; without one it says so and succeeds.
#include <cmath>
#include <cstdio>

#include <ctmllm/core.hpp>
#include <ctmllm/ops/activation.hpp>

int main() {
  using namespace ctmllm;
  if (!Cuda::available()) {
    std::printf("cuda_ops: no usable GPU: skipped\n");
    return 0;
  }
  const auto x = Rng(3).normal<float>({4, 100});
  const auto gpu = ops::gelu(x.to_device<Cuda>()).to_device<Cpu>(), cpu = ops::gelu(x);
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double d = std::abs(double(gpu.data()[i]) - double(cpu.data()[i]));
    if (!(d <= worst)) worst = d;  // NaN stays
  }
  std::printf("cuda_ops: gelu on the GPU vs the CPU: max |diff| %g\n", worst);
  return worst <= 1e-5 ? 0 : 1;
}
