#pragma once
// CPU kernel for concat: each input is copied into its slab of the output, whole contiguous rows at
// a time when the input is contiguous, element by element (any strides) otherwise.
#include <cstring>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"

namespace ctmllm::ops::impl {

// out = the xs joined along dim; out contiguous, xs of out's shape except along dim.
template <class T>
void concat(const std::vector<Tensor<T, Cpu>>& xs, int dim, const Tensor<T, Cpu>& out) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= out.size(d);
  for (int d = dim + 1; d < out.rank(); ++d) inner *= out.size(d);
  const int64_t row = out.size(dim) * inner;  // elements of one outer row of out
  int64_t offset = 0;                         // start of the current slab within a row
  for (const auto& x : xs) {
    const int64_t n = x.size(dim);
    if (x.is_contiguous()) {
      const T* src = x.data();
      T* dst = out.data() + offset * inner;
      const int64_t chunk = n * inner;
      parallel_for(0, outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(chunk, 1)), [&](int64_t lo, int64_t hi) {
        for (int64_t o = lo; o < hi; ++o) std::memcpy(dst + o * row, src + o * chunk, size_t(chunk) * sizeof(T));
      });
    } else {
      out.slice(dim, offset, offset + n).copy_from(x);
    }
    offset += n;
  }
}

}  // namespace ctmllm::ops::impl
