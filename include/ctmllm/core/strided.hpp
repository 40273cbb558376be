#pragma once
// Walks the elements of one or more strided tensors that share a shape, innermost dimension last:
// f(offsets, n, inner_strides) is called once per contiguous run of the innermost dimension, with
// each operand's element offset at the start of the run. Elementwise ops and copies build on this.
#include <array>
#include <cstdint>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/shape.hpp"

namespace ctmllm {

template <size_t N, class F>
void for_each_strided(const Shape& shape, const std::array<Shape, N>& strides, F&& f) {
  const int r = shape.rank();
  if (shape.numel() == 0) return;
  if (r == 0) {
    std::array<int64_t, N> off{}, inner{};
    f(off, int64_t(1), inner);
    return;
  }
  const int64_t inner_n = shape[r - 1];
  std::array<int64_t, N> inner{};
  for (size_t k = 0; k < N; ++k) inner[k] = strides[k][r - 1];
  const int64_t outer = shape.numel() / inner_n;
  // Rows are independent; split them across threads when there is enough work.
  parallel_for(0, outer, std::max<int64_t>(1, 32768 / std::max<int64_t>(inner_n, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      std::array<int64_t, N> off{};
      int64_t rem = row;
      for (int d = r - 2; d >= 0; --d) {
        const int64_t i = rem % shape[d];
        rem /= shape[d];
        for (size_t k = 0; k < N; ++k) off[k] += i * strides[k][d];
      }
      f(off, inner_n, inner);
    }
  });
}

}  // namespace ctmllm
