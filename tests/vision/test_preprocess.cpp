// vision::preprocess_ct on a real head CT (tests/data/head_ct.nii.gz: 256×256×108 voxels, int16 HU,
// 0.957×0.957×1.5 mm) and the intensity augmentation. Expected values were read with nibabel:
// voxel (z=55, y=128, x=128) holds 19 HU; the clipped volume spans exactly [-160, 240].
#include <cmath>

#include "ctmllm/io/nifti.hpp"
#include "ctmllm/vision/preprocess.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using Catch::Matchers::WithinAbs;

namespace {
const io::NiftiImage& head_ct() {
  static const io::NiftiImage image = io::read_nifti(testing::data_path("head_ct.nii.gz"));
  return image;
}
std::pair<float, float> range(const Tensor<float>& t) {
  const auto v = t.to_vector();
  return {*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
}
}  // namespace

TEST_CASE("depth resampling to 5 mm picks the slice under each new slice's centre", "[vision]") {
  // 108 slices of 1.5 mm = 162 mm -> round(32.4) = 32 slices of 5 mm; centre k at (k + ½)·5 mm.
  const auto src = vision::depth_resample_indices(108, 1.5, 5.0);
  REQUIRE(src.size() == 32);
  CHECK(src[0] == 1);    // 2.5 mm lies in slice 1 ([1.5, 3) mm)
  CHECK(src[1] == 5);    // 7.5 mm
  CHECK(src[16] == 55);  // 82.5 mm
  CHECK(src[31] == 105); // 157.5 mm
  // Thick slices repeat; the last index never passes the end; tiny volumes keep one slice.
  CHECK(vision::depth_resample_indices(3, 7.5, 5.0) == std::vector<int64_t>{0, 1, 1, 2, 2});
  CHECK(vision::depth_resample_indices(1, 0.5, 5.0) == std::vector<int64_t>{0});
  CHECK_THROWS_AS(vision::depth_resample_indices(10, 0.0, 5.0), Error);
  CHECK_THROWS_AS(vision::depth_resample_indices(10, 1.0, -5.0), Error);
}

TEST_CASE("preprocess_ct on a real head CT: shape, range, values, determinism", "[vision]") {
  const auto& ct = head_ct();
  REQUIRE(ct.data.shape() == Shape{108, 256, 256});
  CHECK_THAT(ct.spacing[2], WithinAbs(1.5, 1e-6));
  CHECK(ct.data.at(55, 128, 128) == 19.0f);

  // At 32×256×256 the area resize is the identity here (32 slices after resampling), so each value
  // is the normalised HU of the picked slice: (19 + 160) / 400 = 0.4475 at (k=16 <- z=55, 128, 128).
  const auto x = vision::preprocess_ct(ct);
  REQUIRE(x.shape() == Shape{1, 1, 32, 256, 256});
  const auto [lo, hi] = range(x);
  CHECK(lo == 0.0f);
  CHECK(hi == 1.0f);
  CHECK_THAT(x.at(0, 0, 16, 128, 128), WithinAbs(0.4475, 1e-6));
  for (int64_t y : {0, 77, 255})
    for (int64_t xi : {3, 128, 250}) {
      const float hu = std::clamp(ct.data.at(105, y, xi), -160.0f, 240.0f);
      CHECK_THAT(x.at(0, 0, 31, y, xi), WithinAbs((hu + 160.0) / 400.0, 1e-6));
    }
  CHECK(testing::max_abs_diff(vision::preprocess_ct(ct), x) == 0.0);

  // A smaller model size averages blocks (area): at 16×128×128 each voxel is a 2×2×2 mean.
  vision::CtPreprocessOptions small;
  small.size = {16, 128, 128};
  const auto s = vision::preprocess_ct(ct, small);
  REQUIRE(s.shape() == Shape{1, 1, 16, 128, 128});
  double mean = 0;
  for (int dz = 0; dz < 2; ++dz)
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) mean += x.at(0, 0, 16 + dz, 128 + dy, 128 + dx) / 8.0;
  CHECK_THAT(s.at(0, 0, 8, 64, 64), WithinAbs(mean, 1e-6));
  CHECK_THAT(s.at(0, 0, 8, 64, 64), WithinAbs(0.455, 1e-5));  // PyTorch's F.interpolate(mode="area")
}

TEST_CASE("preprocess_ct: constant volumes, kept slices, bad input", "[vision][errors]") {
  vision::CtPreprocessOptions keep;
  keep.slice_mm = 0;
  keep.size = {4, 8, 8};
  const auto flat = vision::preprocess_ct(Tensor<float>::full({4, 8, 8}, 1000.0f), 2.0, keep);
  CHECK(range(flat) == std::pair<float, float>{0.0f, 0.0f});
  auto ramp = Tensor<float>::empty({4, 2, 2});
  for (int64_t i = 0; i < ramp.numel(); ++i) ramp.data()[i] = float(-400 + 40 * i);
  keep.size = {4, 2, 2};
  const auto r = vision::preprocess_ct(ramp, 2.0, keep);
  CHECK(r.at(0, 0, 0, 0, 0) == 0.0f);    // -400 clips to -160, the minimum
  CHECK(r.at(0, 0, 3, 1, 1) == 1.0f);    // 200 is the maximum inside the window
  CHECK_THAT(r.at(0, 0, 2, 0, 0), WithinAbs((-80.0 + 160.0) / 360.0, 1e-6));

  CHECK_THROWS_AS(vision::preprocess_ct(Tensor<float>::zeros({8, 8}), 1.0), Error);
  CHECK_THROWS_AS(vision::preprocess_ct(Tensor<float>::zeros({4, 8, 8}), 0.0), Error);
  auto nan = Tensor<float>::zeros({4, 8, 8});
  nan.at(1, 2, 3) = std::nanf("");
  CHECK_THROWS_AS(vision::preprocess_ct(nan, 1.0), Error);
  vision::CtPreprocessOptions bad;
  bad.hu_min = 240;
  bad.hu_max = -160;
  CHECK_THROWS_AS(vision::preprocess_ct(Tensor<float>::zeros({4, 8, 8}), 1.0, bad), Error);
}

TEST_CASE("intensity augmentation: seeded, ±0.1, each half the time", "[vision]") {
  const auto x = Tensor<float>::full({1, 1, 2, 2, 2}, 0.5f);
  Rng a(11), b(11);
  for (int i = 0; i < 5; ++i)
    CHECK(testing::max_abs_diff(vision::augment_intensity(x, a), vision::augment_intensity(x, b)) == 0.0);
  // Over many draws: 0.5·(1 + f) + s stays within [0.5·0.9 − 0.1, 0.5·1.1 + 0.1], and the four cases
  // (none, scale, shift, both) all occur about a quarter of the time.
  Rng rng(5);
  int unchanged = 0;
  float lo = 1, hi = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const float v = vision::augment_intensity(x, rng).at(0, 0, 1, 1, 1);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    unchanged += v == 0.5f;
  }
  CHECK(lo >= 0.35f - 1e-6f);
  CHECK(lo < 0.37f);
  CHECK(hi <= 0.65f + 1e-6f);
  CHECK(hi > 0.63f);
  CHECK(std::abs(unchanged / double(n) - 0.25) < 0.03);
  // Probability 0 never changes anything; the input is never modified.
  vision::IntensityAugmentOptions off;
  off.p_scale = off.p_shift = 0;
  CHECK(testing::max_abs_diff(vision::augment_intensity(x, rng, off), x) == 0.0);
  CHECK(x.at(0, 0, 0, 0, 0) == 0.5f);
}
