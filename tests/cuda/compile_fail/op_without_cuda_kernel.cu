// Must NOT compile (tests/CMakeLists.txt checks the compiler's message): an op family without CUDA
// kernels called on Cuda tensors, in a .cu file where every CUDA kernel there is can be reached.
#include "ctmllm/core.hpp"
#include "ctmllm/ops/activation.hpp"
#include "ctmllm/ops/rope.hpp"

int main() {
  using namespace ctmllm;
  const auto x = Tensor<float, Cuda>::empty({1, 2, 3, 4});
  return int(ops::rope(x, Tensor<int64_t, Cuda>::empty({3}), ops::RopeConfig{}).numel());
}
