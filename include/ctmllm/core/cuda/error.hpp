#pragma once
// CUDA runtime errors as ctmllm::Error: every runtime call goes through check() (or the
// CTMLLM_CUDA_CHECK macro, which names the call itself), and every kernel launch is followed by
// check_launch(), since a bad launch configuration is only reported by cudaGetLastError.
#include <cuda_runtime_api.h>

#include "ctmllm/core/error.hpp"

namespace ctmllm::cuda {

inline void check(cudaError_t e, const char* what) {
  CTMLLM_CHECK(e == cudaSuccess, "CUDA error in ", what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

// After a <<<...>>> launch: the launch's own error (bad configuration, too many resources), which
// also clears it so that it is not reported again by an unrelated later call.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

}  // namespace ctmllm::cuda

#define CTMLLM_CUDA_CHECK(call) ::ctmllm::cuda::check((call), #call)
