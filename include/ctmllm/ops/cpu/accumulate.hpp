#pragma once
// dst += src for two CPU tensors of one shape (any strides): the gradient-accumulation primitive.
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops {

template <class T>
void accumulate(Cpu, const Tensor<T, Cpu>& dst, const Tensor<T, Cpu>& src) {
  T* d = dst.data();
  const T* s = src.data();
  for_each_strided<2>(dst.shape(), {dst.strides(), src.strides()}, [&](auto off, int64_t n, auto inc) {
    T* a = d + off[0];
    const T* b = s + off[1];
    if (inc[0] == 1 && inc[1] == 1) {
      for (int64_t i = 0; i < n; ++i) a[i] = cast<T>(acc_t<T>(a[i]) + acc_t<T>(b[i]));
    } else {
      for (int64_t i = 0; i < n; ++i) a[i * inc[0]] = cast<T>(acc_t<T>(a[i * inc[0]]) + acc_t<T>(b[i * inc[1]]));
    }
  });
}

}  // namespace ctmllm::ops
