#pragma once
// The device-side strided copy as seen from plain C++. Its kernel is CUDA C++ (ops/cuda/copy.cuh),
// and this library is header-only, so a .cpp file cannot launch it; instead the kernel's launcher is
// installed here at program start by any .cu file that includes an op front (ops/backend.hpp pulls
// copy.cuh in there), and Tensor<T, Cuda>::copy_from / contiguous() / to_device<Cpu>() use it from
// every file of that program. A program with no such .cu file has no kernel to launch: its strided
// device copies gather through the host (correct, slow).
#include <atomic>
#include <cstddef>

#include "ctmllm/core/shape.hpp"

namespace ctmllm::cuda {

// Copies the elements of a view (src, src_strides) into a view (dst, dst_strides) of the same
// shape, on the current device's stream; elem_bytes is 1, 2, 4 or 8. Strides are in elements.
using StridedCopyFn = void (*)(void* dst, const Shape& dst_strides, const void* src, const Shape& src_strides,
                               const Shape& shape, size_t elem_bytes);

// The installed launcher, or null (a function-local static: installing it from another file's static
// initialiser cannot come before it exists).
inline std::atomic<StridedCopyFn>& strided_copy_launcher() {
  static std::atomic<StridedCopyFn> fn{nullptr};
  return fn;
}

}  // namespace ctmllm::cuda
