#pragma once
// Element offsets of N strided operands that share one shape (rank <= kMaxRank), for kernels over
// expanded (broadcast, stride 0) or otherwise non-contiguous views. Passed to kernels by value.
#include <cstdint>

#include "ctmllm/core/shape.hpp"

namespace ctmllm::ops::cuda_impl {

template <int N>
struct StridedOffsets {
  int rank = 0;
  int64_t sizes[kMaxRank] = {};
  int64_t strides[N][kMaxRank] = {};

  // Offsets (in elements) of the element with row-major index `linear` in each operand.
  __device__ void at(int64_t linear, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; --d) {
      if (d >= rank) continue;
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += i * strides[k][d];
    }
  }
};

// From the common shape and each operand's strides.
template <int N>
StridedOffsets<N> strided_offsets(const Shape& shape, const Shape (&strides)[N]) {
  StridedOffsets<N> s;
  s.rank = shape.rank();
  for (int d = 0; d < shape.rank(); ++d) {
    s.sizes[d] = shape[d];
    for (int k = 0; k < N; ++k) s.strides[k][d] = strides[k][d];
  }
  return s;
}

}  // namespace ctmllm::ops::cuda_impl
