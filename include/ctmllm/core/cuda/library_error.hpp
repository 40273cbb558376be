#pragma once
// cuBLAS(Lt) and cuDNN status codes as ctmllm::Error, with the libraries' own status strings.
#include <cublasLt.h>
#include <cudnn.h>

#include "ctmllm/core/error.hpp"

namespace ctmllm::cuda {

inline void check(cublasStatus_t s, const char* what) {
  CTMLLM_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuBLAS error in ", what, ": ", cublasGetStatusName(s), " (",
               cublasGetStatusString(s), ")");
}

inline void check(cudnnStatus_t s, const char* what) {
  CTMLLM_CHECK(s == CUDNN_STATUS_SUCCESS, "cuDNN error in ", what, ": ", cudnnGetErrorString(s));
}

}  // namespace ctmllm::cuda
