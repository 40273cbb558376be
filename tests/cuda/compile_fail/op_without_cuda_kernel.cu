// Must NOT compile (tests/CMakeLists.txt checks the compiler's message): an op family without CUDA
// kernels called on Cuda tensors, in a .cu file where every CUDA kernel there is can be reached.
#include "ctmllm/core.hpp"
#include "ctmllm/ops/activation.hpp"
#include "ctmllm/ops/conv3d.hpp"

int main() {
  using namespace ctmllm;
  const auto x = Tensor<float, Cuda>::empty({1, 2, 3, 4, 5}), w = Tensor<float, Cuda>::empty({4, 2, 1, 1, 1});
  return int(ops::conv3d(x, w).numel());
}
