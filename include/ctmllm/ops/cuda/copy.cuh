#pragma once
// The device's strided copy (core/cuda/strided_copy.hpp): dst[i] = src[i] over two views of one
// shape with any strides (a transpose, a permuted or expanded view made contiguous, a slab written
// into a slice of a larger tensor). Elements move as unsigned integers of their size, so every
// element type copies bit for bit. Dimensions laid out one after the other in both views merge
// first (a permuted [B, S, H, D] view becomes three dimensions), which shortens the index arithmetic
// of every element.
#include "ctmllm/core/cuda/strided_copy.hpp"
#include "ctmllm/ops/cuda/launch.cuh"
#include "ctmllm/ops/cuda/strided.cuh"

namespace ctmllm::ops::cuda_impl {

template <class W>
__global__ void strided_copy_kernel(W* __restrict__ dst, const W* __restrict__ src, int64_t n, StridedOffsets<2> s) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    s.at(i, off);
    dst[off[0]] = src[off[1]];
  }
}

// Drops size-1 dimensions and merges each dimension into the one outside it when, in both operands,
// the outer stride is the inner stride times the inner size.
inline void coalesce(Shape& shape, Shape (&strides)[2]) {
  Shape sh, st[2];
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape[d] == 1) continue;
    const int last = sh.rank() - 1;
    if (last >= 0 && st[0][last] == strides[0][d] * shape[d] && st[1][last] == strides[1][d] * shape[d]) {
      sh[last] *= shape[d];
      st[0][last] = strides[0][d];
      st[1][last] = strides[1][d];
    } else {
      sh.push_back(shape[d]);
      st[0].push_back(strides[0][d]);
      st[1].push_back(strides[1][d]);
    }
  }
  shape = sh;
  strides[0] = st[0];
  strides[1] = st[1];
}

template <class W>
void launch_strided_copy_as(void* dst, const void* src, int64_t n, const StridedOffsets<2>& offsets) {
  strided_copy_kernel<<<grid_for(n), kThreads, 0, cuda::current_stream()>>>(static_cast<W*>(dst),
                                                                           static_cast<const W*>(src), n, offsets);
  cuda::check_launch("strided_copy_kernel");
}

inline void launch_strided_copy(void* dst, const Shape& dst_strides, const void* src, const Shape& src_strides,
                                const Shape& shape, size_t elem_bytes) {
  const int64_t n = shape.numel();
  if (n == 0) return;
  Shape merged = shape;
  Shape strides[2] = {dst_strides, src_strides};
  coalesce(merged, strides);
  const StridedOffsets<2> offsets = strided_offsets(merged, strides);
  switch (elem_bytes) {
    case 1: return launch_strided_copy_as<uint8_t>(dst, src, n, offsets);
    case 2: return launch_strided_copy_as<uint16_t>(dst, src, n, offsets);
    case 4: return launch_strided_copy_as<uint32_t>(dst, src, n, offsets);
    case 8: return launch_strided_copy_as<uint64_t>(dst, src, n, offsets);
    default: CTMLLM_CHECK(false, "strided copy: no kernel for elements of ", elem_bytes, " bytes");
  }
}

// Installs the launcher at program start, once per program (an inline variable), in every program
// with a .cu file that includes this header.
inline const bool strided_copy_installed = (cuda::strided_copy_launcher().store(&launch_strided_copy), true);

}  // namespace ctmllm::ops::cuda_impl
