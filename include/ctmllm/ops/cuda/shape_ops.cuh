#pragma once
// concat on the GPU (the Tensor<T, Cuda> overload of ops/cpu/shape_ops.hpp's): each input goes into
// its slab of the output through the device's strided copy (copy.cuh), one launch per input, any
// input strides and any element type.
#include <vector>

#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cuda/copy.cuh"

namespace ctmllm::ops::impl {

// out = the xs joined along dim; out contiguous, xs of out's shape except along dim.
template <class T>
void concat(const std::vector<Tensor<T, Cuda>>& xs, int dim, const Tensor<T, Cuda>& out) {
  int64_t offset = 0;
  for (const auto& x : xs) {
    const Tensor<T, Cuda> slab = out.slice(dim, offset, offset + x.size(dim));
    cuda_impl::launch_strided_copy(slab.data(), slab.strides(), x.data(), x.strides(), slab.shape(), sizeof(T));
    offset += x.size(dim);
  }
}

}  // namespace ctmllm::ops::impl
