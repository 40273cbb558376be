#pragma once
// CPU kernels for concat (each input copied into its slab of the output, whole contiguous rows at a
// time when the input is contiguous, element by element, any strides, otherwise) and index_copy.
#include <algorithm>
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

// Every index must lie in [0, rows); the first that does not is an Error naming it and its position.
inline void check_index_copy_rows(const Tensor<int64_t, Cpu>& index, int64_t rows) {
  const int64_t* p = index.data();
  for (int64_t i = 0; i < index.numel(); ++i)
    CTMLLM_CHECK(p[i] >= 0 && p[i] < rows, "index_copy_: index ", p[i], " at position ", i, " is outside [0, ", rows,
                 ") along the destination's dimension");
}

// dst.select(dim, index[i]) = src.select(dim, i); dst, index and src contiguous.
template <class T>
void index_copy(const Tensor<T, Cpu>& dst, int dim, const Tensor<int64_t, Cpu>& index, const Tensor<T, Cpu>& src) {
  const int64_t rows = dst.size(dim), n = index.numel();
  check_index_copy_rows(index, rows);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= dst.size(d);
  for (int d = dim + 1; d < dst.rank(); ++d) inner *= dst.size(d);
  const int64_t* idx = index.data();
  parallel_for(0, outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(n * inner, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o)
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(dst.data() + (o * rows + idx[i]) * inner, src.data() + (o * n + i) * inner, size_t(inner) * sizeof(T));
  });
}

}  // namespace ctmllm::ops::impl
