// Must NOT compile (tests/CMakeLists.txt checks the compiler's message): an op front still marked
// CPU-only (CTMLLM_CPU_ONLY, the state of a new op before its CUDA kernels exist, docs/ADDING_AN_OP.md)
// called on Cuda tensors, in a .cu file where every CUDA kernel there is can be reached.
#include "ctmllm/core.hpp"
#include "ctmllm/ops/backend.hpp"

template <class T, class D>
ctmllm::Tensor<T, D> cpu_only_op(const ctmllm::Tensor<T, D>& x) {
  CTMLLM_CPU_ONLY(D, "cpu_only_op");
  return x;
}

int main() {
  using namespace ctmllm;
  const auto x = Tensor<float, Cuda>::empty({1, 2, 3, 4, 5});
  return int(cpu_only_op(x).numel());
}
