#pragma once
// Which backend's kernels an op front can reach in this translation unit. The CPU kernels always;
// the CUDA kernels are CUDA C++ (ops/cuda/*.cuh), visible only in files that nvcc compiles with
// ctmllm::cuda linked. A front calling an op on a device without reachable kernels fails to compile
// with one of these messages, never at run time.
#include <type_traits>

#include "ctmllm/core/device.hpp"
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
#include "ctmllm/ops/cuda/copy.cuh"  // installs the device's strided copy for the whole program
#endif

namespace ctmllm::ops {

template <class D>
inline constexpr bool has_kernels_v = std::is_same_v<D, Cpu>
#if defined(CTMLLM_WITH_CUDA) && defined(__CUDACC__)
                                      || std::is_same_v<D, Cuda>
#endif
    ;

}  // namespace ctmllm::ops

// In a front whose op family has CUDA kernels.
#define CTMLLM_REQUIRE_KERNELS(D, op)                                                                         \
  static_assert(::ctmllm::ops::has_kernels_v<D>, op                                                           \
                ": ops on Cuda tensors run CUDA C++ kernels: call them from a .cu file compiled by nvcc with " \
                "ctmllm::cuda (docs/GPU.md)")
// In a front whose op family has no CUDA kernels yet.
#define CTMLLM_CPU_ONLY(D, op) \
  static_assert(std::is_same_v<D, ::ctmllm::Cpu>, op ": no CUDA kernel yet (docs/GPU.md lists the ops that run on the GPU)")
