#pragma once
// CT preprocessing as the paper trains and evaluates (PAPER.md, pipeline step 1), and its
// intensity augmentation:
//   HU [z, y, x] -> clip to [-160, 240] (level 40, width 400) -> per-volume min-max to [0, 1]
//   -> depth resampled to 5 mm slices (nearest; H and W kept) -> area resize to the model's size
//   -> [1, 1, D, H, W]
// Orientation: the volume is used as stored. io::read_nifti gives [z, y, x] = the NIfTI voxel axes
// (k, j, i) listed slowest first, so D is the third voxel axis (the slice axis, spacing pixdim[3]),
// H the second, W the first; nothing is flipped or reoriented (docs/VISION.md).
// Host-side data preparation in float; move the result with to<U>() / to_device<D>().
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/io/nifti.hpp"
#include "ctmllm/ops/interpolate.hpp"

namespace ctmllm::vision {

struct CtPreprocessOptions {
  double hu_min = -160.0, hu_max = 240.0;   // the clipping window
  double slice_mm = 5.0;                    // target slice spacing; 0 keeps the slices as they are
  std::array<int64_t, 3> size{32, 256, 256};  // the model's input D, H, W
};

// The source slice of each output slice when `slices` slices `spacing_mm` apart are resampled to
// `slice_mm`: round(slices · spacing / slice_mm) slices (at least 1), covering the same extent;
// output slice k takes the input slice whose slab holds its centre,
//   src(k) = min(slices − 1, ⌊(k + ½) · slice_mm / spacing⌋).
// Centre-aligned (PyTorch's "nearest-exact") rather than legacy "nearest"'s ⌊k · scale⌋, which
// always picks the first slice of each slab and shifts the volume by up to one output slice.
inline std::vector<int64_t> depth_resample_indices(int64_t slices, double spacing_mm, double slice_mm) {
  CTMLLM_CHECK(slices > 0, "depth_resample_indices: the volume has no slices");
  CTMLLM_CHECK(std::isfinite(spacing_mm) && spacing_mm > 0, "depth_resample_indices: slice spacing ", spacing_mm,
               " mm must be positive");
  CTMLLM_CHECK(std::isfinite(slice_mm) && slice_mm > 0, "depth_resample_indices: target spacing ", slice_mm,
               " mm must be positive");
  const int64_t out = std::max<int64_t>(1, std::llround(double(slices) * spacing_mm / slice_mm));
  std::vector<int64_t> src(static_cast<size_t>(out));
  for (int64_t k = 0; k < out; ++k)
    src[size_t(k)] = std::min(slices - 1, int64_t(std::floor((double(k) + 0.5) * slice_mm / spacing_mm)));
  return src;
}

// hu [z, y, x] in Hounsfield units, slices `z_spacing_mm` apart -> [1, 1, D, H, W] in [0, 1].
// A volume that is constant inside the window maps to zeros; NaN is an Error.
inline Tensor<float, Cpu> preprocess_ct(const Tensor<float, Cpu>& hu, double z_spacing_mm,
                                        const CtPreprocessOptions& o = {}) {
  CTMLLM_CHECK(hu.defined() && hu.rank() == 3 && hu.numel() > 0, "preprocess_ct: the volume must be a non-empty [z, y, x], got ",
               hu.defined() ? hu.describe() : std::string("an undefined tensor"));
  CTMLLM_CHECK(o.hu_min < o.hu_max, "preprocess_ct: the HU window [", o.hu_min, ", ", o.hu_max, "] is empty");
  for (int i = 0; i < 3; ++i)
    CTMLLM_CHECK(o.size[i] > 0, "preprocess_ct: the output size must be positive, got ",
                 Shape{o.size[0], o.size[1], o.size[2]});
  const Tensor<float, Cpu> src = hu.contiguous();
  const float* p = src.data();
  const int64_t n = src.numel();

  // Clip and find the range in one pass (fixed chunks, so the result does not depend on threads).
  Tensor<float, Cpu> clipped = Tensor<float, Cpu>::empty(src.shape());
  float* c = clipped.data();
  const float lo = float(o.hu_min), hi = float(o.hu_max);
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<float> mins(static_cast<size_t>(chunks)), maxs(static_cast<size_t>(chunks));
  std::vector<int64_t> nans(static_cast<size_t>(chunks), 0);
  parallel_for(0, chunks, 1, [&](int64_t a, int64_t b) {
    for (int64_t ch = a; ch < b; ++ch) {
      float mn = std::numeric_limits<float>::infinity(), mx = -mn;
      for (int64_t i = ch * kChunk; i < std::min(n, (ch + 1) * kChunk); ++i) {
        nans[size_t(ch)] += std::isnan(p[i]);
        c[i] = std::clamp(p[i], lo, hi);
        mn = std::min(mn, c[i]);
        mx = std::max(mx, c[i]);
      }
      mins[size_t(ch)] = mn;
      maxs[size_t(ch)] = mx;
    }
  });
  CTMLLM_CHECK(std::all_of(nans.begin(), nans.end(), [](int64_t k) { return k == 0; }), "preprocess_ct: the volume ",
               hu.describe(), " holds NaN");
  const float mn = *std::min_element(mins.begin(), mins.end()), mx = *std::max_element(maxs.begin(), maxs.end());
  const float inv = mx > mn ? 1.0f / (mx - mn) : 0.0f;

  // Depth resampling and min-max in one copy: slice k of the result is normalised slice src[k].
  const int64_t plane = src.size(1) * src.size(2);
  std::vector<int64_t> slices(static_cast<size_t>(src.size(0)));
  std::iota(slices.begin(), slices.end(), int64_t(0));
  if (o.slice_mm != 0) slices = depth_resample_indices(src.size(0), z_spacing_mm, o.slice_mm);
  const int64_t depth = int64_t(slices.size());
  Tensor<float, Cpu> resampled = Tensor<float, Cpu>::empty({1, 1, depth, src.size(1), src.size(2)});
  float* r = resampled.data();
  parallel_for(0, depth, 1, [&](int64_t a, int64_t b) {
    for (int64_t k = a; k < b; ++k) {
      const float* in = c + slices[size_t(k)] * plane;
      float* out = r + k * plane;
      for (int64_t i = 0; i < plane; ++i) out[i] = (in[i] - mn) * inv;
    }
  });

  ops::InterpolateOptions area;
  area.mode = ops::InterpolateMode::area;  // = adaptive average pooling to the size
  area.size = o.size;
  return ops::interpolate(resampled, area);
}

// A NIfTI CT (io::read_nifti): its data [z, y, x] and its z spacing (spacing[2] = pixdim[3]).
inline Tensor<float, Cpu> preprocess_ct(const io::NiftiImage& image, const CtPreprocessOptions& o = {}) {
  return preprocess_ct(image.data, image.spacing[2], o);
}

// A segmentation label map (TotalSegmentator's 117 classes, or the phantoms' organ mask) as the
// MLLM's second volume: the same depth resampling as the CT it belongs to, a nearest resize to the
// model's size (labels are never averaged), and label l entering as l / num_classes.
// `labels` [z, y, x] holds non-negative integers; anything else is an Error.
inline Tensor<float, Cpu> preprocess_label_map(const Tensor<float, Cpu>& labels, double z_spacing_mm, int64_t num_classes,
                                               const CtPreprocessOptions& o = {}) {
  CTMLLM_CHECK(labels.defined() && labels.rank() == 3 && labels.numel() > 0,
               "preprocess_label_map: the label map must be a non-empty [z, y, x]");
  CTMLLM_CHECK(num_classes > 0, "preprocess_label_map: num_classes must be positive");
  const Tensor<float, Cpu> src = labels.contiguous();
  std::vector<int64_t> slices(static_cast<size_t>(src.size(0)));
  std::iota(slices.begin(), slices.end(), int64_t(0));
  if (o.slice_mm != 0) slices = depth_resample_indices(src.size(0), z_spacing_mm, o.slice_mm);
  const int64_t plane = src.size(1) * src.size(2), depth = int64_t(slices.size());
  Tensor<float, Cpu> resampled = Tensor<float, Cpu>::empty({1, 1, depth, src.size(1), src.size(2)});
  const float scale = 1.0f / float(num_classes);
  for (int64_t k = 0; k < depth; ++k) {
    const float* in = src.data() + slices[size_t(k)] * plane;
    float* out = resampled.data() + k * plane;
    for (int64_t i = 0; i < plane; ++i) {
      CTMLLM_CHECK(in[i] >= 0 && in[i] == std::floor(in[i]), "preprocess_label_map: voxel value ", in[i],
                   " is not a label (a non-negative integer)");
      out[i] = in[i] * scale;
    }
  }
  ops::InterpolateOptions nearest;
  nearest.mode = ops::InterpolateMode::nearest;
  nearest.size = o.size;
  return ops::interpolate(resampled, nearest);
}
inline Tensor<float, Cpu> preprocess_label_map(const io::NiftiImage& image, int64_t num_classes,
                                               const CtPreprocessOptions& o = {}) {
  return preprocess_label_map(image.data, image.spacing[2], num_classes, o);
}

// The training augmentation (MONAI's RandScaleIntensity(0.1, p=0.5) then RandShiftIntensity(0.1,
// p=0.5), as M3D trains): with probability p_scale x·(1 + f), f ~ U(−scale, scale); then with
// probability p_shift x + s, s ~ U(−shift, shift). Values may leave [0, 1], as in MONAI.
struct IntensityAugmentOptions {
  double scale = 0.1, p_scale = 0.5;
  double shift = 0.1, p_shift = 0.5;
};

// Consumes four draws of `rng` (apply-scale, factor, apply-shift, offset), so a seeded stream gives
// the same augmentation on every run and thread count. Returns a new tensor.
inline Tensor<float, Cpu> augment_intensity(const Tensor<float, Cpu>& x, Rng& rng, const IntensityAugmentOptions& o = {}) {
  CTMLLM_CHECK(x.defined(), "augment_intensity: x is an undefined tensor");
  const uint64_t draw = rng.take(4);
  const bool do_scale = rng.uniform_at(draw) < o.p_scale, do_shift = rng.uniform_at(draw + 2) < o.p_shift;
  const float factor = do_scale ? float(1.0 + o.scale * (2.0 * rng.uniform_at(draw + 1) - 1.0)) : 1.0f;
  const float offset = do_shift ? float(o.shift * (2.0 * rng.uniform_at(draw + 3) - 1.0)) : 0.0f;
  Tensor<float, Cpu> y = x.clone();
  float* p = y.data();
  parallel_for(0, y.numel(), 1 << 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) p[i] = p[i] * factor + offset;
  });
  return y;
}

}  // namespace ctmllm::vision
