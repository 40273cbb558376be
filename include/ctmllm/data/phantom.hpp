#pragma once
// Procedural torso phantoms: a CT volume in Hounsfield units, its organ mask and its label map,
// rasterized from one sampled Anatomy (anatomy.hpp) on a configurable grid.
//
//   Phantom p = data::make_phantom({}, seed);   // 64x128x128 voxels at 5x3x3 mm
//   io::write_nifti("ct.nii.gz", p.ct, p.spacing, p.affine);
//
// Each voxel's value is the tissue's mean for this patient, plus a smooth texture, plus voxel
// noise (nearly Gaussian, see row_noise). Every random draw comes from a counter-based stream of
// the seed, and slices are independent, so a phantom is identical for any thread count.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/data/anatomy.hpp"
#include "ctmllm/data/findings.hpp"
#include "ctmllm/io/nifti.hpp"

namespace ctmllm::data {

struct PhantomConfig {
  std::array<int64_t, 3> shape{64, 128, 128};                              // z, y, x voxels (the tensor order)
  std::array<double, 3> spacing{3.0, 3.0, 5.0};                            // x, y, z mm (the NIfTI order)
  std::array<double, kNumFindingKinds> prevalence = default_prevalence();  // per kind, 0..1

  static constexpr std::array<double, kNumFindingKinds> default_prevalence() {
    std::array<double, kNumFindingKinds> p{};
    p.fill(0.35);
    return p;
  }
};

struct Phantom {
  Tensor<int16_t, Cpu> ct;          // [z, y, x] Hounsfield units
  Tensor<uint8_t, Cpu> organs;      // [z, y, x] organ ids (label::), the MLLM's segmentation-mask input
  Tensor<uint8_t, Cpu> labels;      // organ ids with each finding's voxels set to its finding id
  std::array<double, 3> spacing{};  // x, y, z mm
  io::Affine affine{};              // voxel (x, y, z) -> world mm, the frame of Finding::center_mm
  std::vector<Finding> findings;    // in kind order
  double contrast = 0;              // 0 non-contrast .. 1 portal venous
  double noise_sigma = 0;           // HU
};

// The scan's extent in mm (x, y, z), after checking that the grid can hold the anatomy.
inline std::array<double, 3> phantom_extent(const PhantomConfig& cfg) {
  for (int d = 0; d < 3; ++d) {
    CTMLLM_CHECK(cfg.shape[size_t(d)] >= 8 && cfg.shape[size_t(d)] <= 2048, "PhantomConfig: shape[", d,
                 "] = ", cfg.shape[size_t(d)], " must be within 8..2048 voxels");
    CTMLLM_CHECK(std::isfinite(cfg.spacing[size_t(d)]) && cfg.spacing[size_t(d)] > 0, "PhantomConfig: spacing[", d,
                 "] = ", cfg.spacing[size_t(d)], " must be a positive size in mm");
  }
  for (double p : cfg.prevalence)
    CTMLLM_CHECK(p >= 0 && p <= 1, "PhantomConfig: a prevalence of ", p, " is outside 0..1");
  const std::array<double, 3> extent{double(cfg.shape[2]) * cfg.spacing[0], double(cfg.shape[1]) * cfg.spacing[1],
                                     double(cfg.shape[0]) * cfg.spacing[2]};
  // The torso is about 330 x 230 mm at the default 384 mm field and scales with it; the finding
  // sizes do not, so a much smaller field would make them implausible.
  CTMLLM_CHECK(extent[0] >= 300 && extent[0] <= 600 && extent[1] >= 300 && extent[1] <= 600,
               "PhantomConfig: field of view ", extent[0], " x ", extent[1],
               " mm must be within 300..600 mm in x and y");
  CTMLLM_CHECK(extent[2] >= 240 && extent[2] <= 700, "PhantomConfig: scan length ", extent[2],
               " mm must be within 240..700 mm");
  return extent;
}

// The affine of the phantom grid: voxel centres in mm, x and y centred, z = 0 at the scan's bottom.
inline io::Affine phantom_affine(const PhantomConfig& cfg) {
  io::Affine a{};
  const double n[3] = {double(cfg.shape[2]), double(cfg.shape[1]), double(cfg.shape[0])};
  for (int d = 0; d < 3; ++d) {
    a[size_t(d)][size_t(d)] = cfg.spacing[size_t(d)];
    a[size_t(d)][3] = d < 2 ? (0.5 - n[d] / 2) * cfg.spacing[size_t(d)] : 0.5 * cfg.spacing[2];
  }
  a[3] = {0, 0, 0, 1};
  return a;
}

// Unit-variance noise for voxel row `row` (n voxels): one Philox block gives two voxels four
// 16-bit uniforms each, whose centred, scaled sum is close to Gaussian.
inline void row_noise(float* out, int64_t n, uint64_t row, uint64_t key) {
  const uint64_t first = row * uint64_t((n + 1) / 2);
  for (int64_t i = 0; i < n; i += 2) {
    const auto r = philox4x32(first + uint64_t(i / 2), key);
    for (int h = 0; h < 2; ++h) {
      const uint32_t a = r[size_t(2 * h)], b = r[size_t(2 * h + 1)];
      const float sum = float((a & 0xFFFF) + (a >> 16) + (b & 0xFFFF) + (b >> 16)) * (1.0f / 65536.0f);
      out[i + h] = (sum - 2.0f) * 1.7320508f;
    }
  }
}

inline Phantom make_phantom(const PhantomConfig& cfg, uint64_t seed) {
  const std::array<double, 3> extent = phantom_extent(cfg);
  const Anatomy a = sample_anatomy(extent, cfg.prevalence, seed);
  const int64_t nz = cfg.shape[0], ny = cfg.shape[1], nx = cfg.shape[2];
  const Shape shape{nz, ny, nx};
  Phantom p;
  p.ct = Tensor<int16_t, Cpu>::empty(shape);
  p.organs = Tensor<uint8_t, Cpu>::empty(shape);
  p.labels = Tensor<uint8_t, Cpu>::empty(shape);
  p.spacing = cfg.spacing;
  p.affine = phantom_affine(cfg);
  p.findings = a.findings;
  p.contrast = a.contrast;
  p.noise_sigma = a.noise_sigma;

  const uint64_t noise_key = derive_seed(seed, 6);
  int16_t* ct = p.ct.data();
  uint8_t* organs = p.organs.data();
  uint8_t* labels = p.labels.data();
  parallel_for(0, nz, 1, [&](int64_t z0, int64_t z1) {
    std::vector<float> noise(size_t(nx + 1));
    for (int64_t k = z0; k < z1; ++k) {
      const Slice s = a.slice_at(p.affine[2][2] * double(k) + p.affine[2][3]);
      const ValueNoise::Plane texture = a.organ_texture.plane(s.z);
      for (int64_t j = 0; j < ny; ++j) {
        row_noise(noise.data(), nx, uint64_t(k * ny + j), noise_key);
        const double y = p.affine[1][1] * double(j) + p.affine[1][3];
        for (int64_t i = 0; i < nx; ++i) {
          const double x = p.affine[0][0] * double(i) + p.affine[0][3];
          const int64_t index = (k * ny + j) * nx + i;
          const Voxel v = a.classify(x, y, s);
          const size_t t = size_t(v.tissue);
          float hu = a.hu[t] + a.noise_sigma * noise[size_t(i)];
          if (a.texture[t] != 0) hu += a.texture[t] * texture(x, y);
          ct[index] = int16_t(std::clamp(std::lround(hu), -1024L, 3071L));
          organs[index] = v.organ;
          labels[index] = v.label;
        }
      }
    }
  });
  return p;
}

}  // namespace ctmllm::data
