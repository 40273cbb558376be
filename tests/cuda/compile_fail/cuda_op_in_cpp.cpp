// Must NOT compile (tests/CMakeLists.txt checks the compiler's message): an op on Cuda tensors from
// a plain C++ file, where the CUDA kernels are out of reach.
#include "ctmllm/core.hpp"
#include "ctmllm/ops/activation.hpp"

int main() {
  using namespace ctmllm;
  const auto x = Tensor<float, Cuda>::empty({1, 2, 3, 4});
  return int(ops::gelu(x).numel());
}
