#pragma once
// The learned absolute position table of the 3D ViT, resampled for volumes of another size.
//
// The table [1, N, E] holds one row per patch of the pretraining grid (d, h, w), row-major. For a
// grid (d', h', w') it is viewed as a volume [1, E, d, h, w] and resampled trilinearly
// (align_corners = false), in one of two ways:
//  - size:  F.interpolate(size = (d', h', w')): the exact grid; at the native grid the table itself.
//  - scale: F.interpolate(scale_factor = (n' + 0.1) / n per axis), the rule of the published M3D code,
//           which it applies at every size. The +0.1 makes ⌊n · s⌋ = n' despite rounding; the
//           coordinates then map with 1/s, not n/n', so the result differs slightly from `size`.
//           (At the native grid both equal the table: PyTorch copies an axis whose size is kept.)
// Built from autograd ops, so the table's gradient flows back through the resampling.
#include <array>
#include <string>

#include "ctmllm/autograd/interpolate.hpp"
#include "ctmllm/autograd/shape_ops.hpp"

namespace ctmllm::vision {

enum class PositionResample { size, scale };

inline PositionResample parse_position_resample(const std::string& name, const std::string& source) {
  if (name == "size") return PositionResample::size;
  if (name == "scale") return PositionResample::scale;
  fail(source, ": unknown position_resample '", name, "' (use 'size' or 'scale')");
}

// table [1, d·h·w, E] on grid `from` -> [1, d'·h'·w', E] on grid `to`.
template <class T, class D>
autograd::Variable<T, D> resample_position_table(const autograd::Variable<T, D>& table, std::array<int64_t, 3> from,
                                                 std::array<int64_t, 3> to, PositionResample mode) {
  const int64_t n = from[0] * from[1] * from[2];
  CTMLLM_CHECK(table.rank() == 3 && table.size(0) == 1 && table.size(1) == n, "resample_position_table: table ",
               table.value().describe(), " does not hold the ", n, " rows of grid ", Shape{from[0], from[1], from[2]});
  for (int i = 0; i < 3; ++i)
    CTMLLM_CHECK(to[i] > 0, "resample_position_table: target grid ", Shape{to[0], to[1], to[2]}, " has an empty axis");
  if (to == from && mode == PositionResample::size) return table;
  const int64_t e = table.size(2);
  ops::InterpolateOptions opts;  // trilinear, align_corners = false
  if (mode == PositionResample::size) {
    opts.size = to;
  } else {
    opts.scale_factor = std::array<double, 3>{};
    for (int i = 0; i < 3; ++i) (*opts.scale_factor)[i] = (double(to[i]) + 0.1) / double(from[i]);
  }
  // [1, N, E] -> [1, d, h, w, E] -> [1, E, d, h, w]
  const auto volume = autograd::permute(autograd::reshape(table, {1, from[0], from[1], from[2], e}), {0, 4, 1, 2, 3});
  const auto resampled = autograd::interpolate(volume, opts);  // [1, E, d', h', w']
  CTMLLM_CHECK(resampled.size(2) == to[0] && resampled.size(3) == to[1] && resampled.size(4) == to[2],
               "resample_position_table: the scale rule gave grid ", resampled.shape(), " instead of ",
               Shape{to[0], to[1], to[2]});
  return autograd::reshape(autograd::permute(resampled, {0, 2, 3, 4, 1}), {1, to[0] * to[1] * to[2], e});
}

}  // namespace ctmllm::vision
