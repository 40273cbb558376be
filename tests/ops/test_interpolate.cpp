// interpolate (trilinear, area, nearest) against PyTorch fixtures and values, and its backward by
// finite differences.
#include <cmath>
#include <vector>

#include "ctmllm/autograd/interpolate.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;
using ops::InterpolateMode;
using ops::InterpolateOptions;

namespace {
void check_fixture(const char* file, const InterpolateOptions& o) {
  testing::Fixture f(file);
  const auto x = f.get("x");
  const double ey = rel_error(ops::interpolate(x, o), f.get("y"));
  const double ex = rel_error(ops::interpolate_backward(f.get("dy"), x.shape(), o), f.get("dx"));
  INFO(file << ": y " << ey << ", dx " << ex);
  CHECK(ey <= 1e-5);
  CHECK(ex <= 1e-5);
}

// x[0, 0, d, h, w] = sin(1 + 1.3 d + 0.7 h + 0.45 w), the input of the PyTorch values below.
Tensor<double, Cpu> wave(int64_t D, int64_t H, int64_t W) {
  Tensor<double, Cpu> x = Tensor<double, Cpu>::empty({1, 1, D, H, W});
  for (int64_t d = 0; d < D; ++d)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w) x(0, 0, d, h, w) = std::sin(1 + 1.3 * d + 0.7 * h + 0.45 * w);
  return x;
}
Tensor<double, Cpu> values(std::vector<double> v, const Shape& s) { return Tensor<double, Cpu>::from(std::span<const double>(v), s); }
}  // namespace

TEST_CASE("trilinear interpolate to a size matches PyTorch", "[ops][interpolate]") {
  testing::Fixture f("ops/interp_trilinear_size.safetensors");
  REQUIRE(f.meta("size") == "[8, 4, 6]");
  REQUIRE(f.meta("align_corners") == "false");
  check_fixture("ops/interp_trilinear_size.safetensors", {InterpolateMode::trilinear, std::array<int64_t, 3>{8, 4, 6}, {}, false});
}

TEST_CASE("trilinear interpolate by a scale factor maps coordinates with 1/scale_factor", "[ops][interpolate]") {
  // Position-table resampling: scale (n_new + 0.1) / n_old; H keeps its size and is copied.
  testing::Fixture f("ops/interp_trilinear_scale.safetensors");
  REQUIRE(f.meta("scale_factor") == "[2.025, 1.025, 1.525]");
  const std::array<double, 3> sf{(8 + 0.1) / 4, (4 + 0.1) / 4, (6 + 0.1) / 4};
  check_fixture("ops/interp_trilinear_scale.safetensors", {InterpolateMode::trilinear, {}, sf, false});
  // Mapping with in/out instead would give a different (wrong) answer: the test can tell them apart.
  const auto x = f.get("x");
  CHECK(rel_error(ops::interpolate(x, {InterpolateMode::trilinear, std::array<int64_t, 3>{8, 4, 6}, {}, false}), f.get("y")) > 1e-3);
}

TEST_CASE("area interpolate matches adaptive_avg_pool3d", "[ops][interpolate]") {
  REQUIRE(testing::Fixture("ops/resize_area.safetensors").meta("size") == "[8, 16, 12]");
  check_fixture("ops/resize_area.safetensors", {InterpolateMode::area, std::array<int64_t, 3>{8, 16, 12}, {}, false});
}

TEST_CASE("nearest interpolate matches PyTorch's legacy nearest", "[ops][interpolate]") {
  REQUIRE(testing::Fixture("ops/resize_nearest.safetensors").meta("size") == "[5, 6, 7]");
  check_fixture("ops/resize_nearest.safetensors", {InterpolateMode::nearest, std::array<int64_t, 3>{5, 6, 7}, {}, false});
}

TEST_CASE("interpolate matches PyTorch on align_corners and scale-factor cases", "[ops][interpolate]") {
  // F.interpolate(x, size=(3, 5, 2), mode="trilinear", align_corners=True) with x = wave(2, 3, 4)
  CHECK(rel_error(ops::interpolate(wave(2, 3, 4), {InterpolateMode::trilinear, std::array<int64_t, 3>{3, 5, 2}, {}, true}),
                  values({0.8414709848078965, 0.71147335279084434, 0.91656789763018254, 0.40146899751164078,
                          0.99166481045246857, 0.091464642232437193, 0.83356399550180971, -0.24004833825495325,
                          0.67546318055115095, -0.57156131874234373, 0.79358809849230838, 0.11234335206757248,
                          0.67999025387423817, -0.1547253077977167, 0.56639240925616785, -0.42179396766300592,
                          0.31960296453874842, -0.58967448067606554, 0.072813519821328998, -0.75755499368912516,
                          0.74570521217672026, -0.48678664865569937, 0.44341261011829375, -0.71091961310707419,
                          0.14112000805986721, -0.93505257755844906, -0.19435806642431286, -0.93930062309717788,
                          -0.52983614090849296, -0.94354866863590658},
                         {1, 1, 3, 5, 2})) <= 1e-12);
  // size=(1, 5, 3), align_corners=True: a single output along D samples index 0.
  CHECK(rel_error(ops::interpolate(wave(2, 3, 4), {InterpolateMode::trilinear, std::array<int64_t, 3>{1, 5, 3}, {}, true}),
                  values({0.8414709848078965, 0.96950653936250153, 0.71147335279084434, 0.91656789763018254,
                          0.82285331033624121, 0.40146899751164078, 0.99166481045246857, 0.67620008130998088,
                          0.091464642232437193, 0.83356399550180971, 0.37053312020481449, -0.24004833825495325,
                          0.67546318055115095, 0.064866159099648088, -0.57156131874234373},
                         {1, 1, 1, 5, 3})) <= 1e-12);
  // scale_factor=(0.6, 1.7, 1.3), trilinear, align_corners=False, x = wave(3, 4, 5)
  CHECK(rel_error(ops::interpolate(wave(3, 4, 5), {InterpolateMode::trilinear, {}, std::array<double, 3>{0.6, 1.7, 1.3}, false}),
                  values({0.80954906059750442, 0.79613209226025983, 0.71388193542733813, 0.55384034558361772,
                          0.32356701865508958, 0.047889807617724753, 0.77077878425671797, 0.69964236988520401,
                          0.56018905552069409, 0.35897664388091183, 0.10936077748853372, -0.1543511642740599,
                          0.71113220527089271, 0.55119664315434869, 0.323738471048934, 0.059186333569056546,
                          -0.22018728584462918, -0.46549112103065177, 0.46536724135445517, 0.25983427060930947,
                          0.0053090664604567434, -0.25221993640081758, -0.48753432201997265, -0.65020035746745264,
                          0.19087659451476266, -0.041517185027027795, -0.30106049070469715, -0.53060771172075039,
                          -0.70418947900070705, -0.77404859251649505, -0.14040398768459877, -0.35027010375607287,
                          -0.55830648137092576, -0.7081059041974882, -0.77859021321200683, -0.7352765687159134},
                         {1, 1, 1, 6, 6})) <= 1e-12);
  // scale_factor=(0.5, 0.75, 1.5), area (adaptive pooling to ⌊in·scale⌋), x = wave(3, 4, 5)
  CHECK(rel_error(ops::interpolate(wave(3, 4, 5), {InterpolateMode::area, {}, std::array<double, 3>{0.5, 0.75, 1.5}, false}),
                  values({0.22687910590877425, 0.12343232110258844, -0.085450866559125815, -0.19088726941465417,
                          -0.27732029147596848, -0.41397363920714558, -0.46419396487700815, -0.099446392209599985,
                          -0.1967664052803921, -0.36212927631639308, -0.43017213428160189, -0.45539010979194394,
                          -0.4579801332880537, -0.43535218127382147, -0.37900069817905729, -0.42442281670011089,
                          -0.46849262899603228, -0.46714032277090006, -0.41928284380601905, -0.28659141454660764,
                          -0.20175746425207727},
                         {1, 1, 1, 3, 7})) <= 1e-12);
}

TEST_CASE("nearest by a scale factor maps with 1/scale_factor even at equal or doubled size", "[ops][interpolate]") {
  // F.interpolate(wave(3, 4, 5), scale_factor=(2.3, 1.1, 0.7), mode="nearest") -> [6, 4, 3] reads, per axis,
  // D: 0 0 0 1 1 2 (not index >> 1), H: 0 0 1 2 (not a copy), W: 0 1 2 (not ⌊o·5/3⌋ = 0 1 3).
  const int64_t src_d[] = {0, 0, 0, 1, 1, 2}, src_h[] = {0, 0, 1, 2}, src_w[] = {0, 1, 2};
  const auto x = wave(3, 4, 5);
  const auto y = ops::interpolate(x, {InterpolateMode::nearest, {}, std::array<double, 3>{2.3, 1.1, 0.7}, false});
  REQUIRE(y.shape() == Shape{1, 1, 6, 4, 3});
  Tensor<double, Cpu> expect = Tensor<double, Cpu>::empty(y.shape());
  for (int64_t d = 0; d < 6; ++d)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t w = 0; w < 3; ++w) expect(0, 0, d, h, w) = x(0, 0, src_d[d], src_h[h], src_w[w]);
  CHECK(rel_error(y, expect) == 0.0);
  // PyTorch's values at (0, 0, 2) and (5, 3, 2).
  CHECK(std::abs(y(0, 0, 0, 0, 2) - 0.94630008768741447) <= 1e-15);
  CHECK(std::abs(y(0, 0, 5, 3, 2) - -0.37387666483023602) <= 1e-15);
}

TEST_CASE("interpolate backward passes finite differences", "[ops][interpolate][gradcheck]") {
  const InterpolateOptions cases[] = {
      {InterpolateMode::trilinear, std::array<int64_t, 3>{5, 3, 7}, {}, false},
      {InterpolateMode::trilinear, std::array<int64_t, 3>{2, 6, 3}, {}, true},
      {InterpolateMode::trilinear, {}, std::array<double, 3>{1.6, 0.7, 1.25}, false},
      {InterpolateMode::area, std::array<int64_t, 3>{2, 3, 3}, {}, false},
      {InterpolateMode::area, std::array<int64_t, 3>{5, 6, 7}, {}, false},
      {InterpolateMode::nearest, std::array<int64_t, 3>{6, 2, 5}, {}, false},
  };
  for (const auto& o : cases) {
    autograd::Variable<double> x(Rng(4).normal<double>({2, 2, 3, 4, 5}), true);
    const double err = testing::gradcheck([&o](const auto& in) { return autograd::interpolate(in[0], o); }, {x});
    CHECK(err <= 1e-7);
  }
}

TEST_CASE("interpolate rejects bad arguments", "[ops][interpolate]") {
  const auto x = Rng(1).normal<float>({1, 2, 4, 4, 4});
  const std::array<int64_t, 3> size{2, 2, 2};
  const std::array<double, 3> sf{2.0, 2.0, 2.0};
  CHECK_THROWS_AS(ops::interpolate(Rng(1).normal<float>({2, 4, 4, 4}), {InterpolateMode::trilinear, size, {}, false}),
                  ctmllm::Error);
  CHECK_THROWS_AS(ops::interpolate(x, {InterpolateMode::trilinear, size, sf, false}), ctmllm::Error);  // both
  CHECK_THROWS_AS(ops::interpolate(x, {InterpolateMode::trilinear, {}, {}, false}), ctmllm::Error);   // neither
  CHECK_THROWS_AS(ops::interpolate(x, {InterpolateMode::area, std::array<int64_t, 3>{2, 0, 2}, {}, false}), ctmllm::Error);
  CHECK_THROWS_AS(ops::interpolate(x, {InterpolateMode::area, std::array<int64_t, 3>{2, -3, 2}, {}, false}), ctmllm::Error);
  CHECK_THROWS_AS(ops::interpolate(x, {InterpolateMode::nearest, {}, std::array<double, 3>{1, -1, 1}, false}), ctmllm::Error);
  CHECK_THROWS_AS(ops::interpolate(x, {InterpolateMode::nearest, {}, std::array<double, 3>{1, 0.2, 1}, false}),
                  ctmllm::Error);  // ⌊4·0.2⌋ = 0
  CHECK_THROWS_AS(ops::interpolate(x, {InterpolateMode::nearest, size, {}, true}), ctmllm::Error);  // align_corners
  CHECK_THROWS_AS(ops::interpolate_backward(Rng(1).normal<float>({1, 2, 2, 2, 3}), x.shape(),
                                            {InterpolateMode::trilinear, size, {}, false}),
                  ctmllm::Error);
  CHECK_THROWS_AS(ops::interpolate_backward(Rng(1).normal<float>({1, 2, 2, 2, 2}), Shape{2, 4, 4, 4},
                                            {InterpolateMode::trilinear, size, {}, false}),
                  ctmllm::Error);
  try {
    ops::interpolate(x, {InterpolateMode::trilinear, size, sf, false});
    FAIL("no error");
  } catch (const ctmllm::Error& e) {
    CHECK(std::string(e.what()).find("interpolate: give exactly one of size and scale_factor") != std::string::npos);
  }
}

TEST_CASE("interpolate works on strided views", "[ops][interpolate]") {
  // Channels-last (read in place, C innermost) and a general permutation (read from a copy).
  const auto x = Rng(2).normal<float>({2, 5, 4, 3, 6}).permute({0, 4, 1, 2, 3});  // [2, 6, 5, 4, 3]
  const auto x_general = Rng(2).normal<float>({2, 5, 4, 3, 6}).permute({0, 4, 2, 1, 3});
  REQUIRE(ops::impl::is_channels_last_3d(x));
  REQUIRE(!x_general.is_contiguous());
  REQUIRE_FALSE(ops::impl::is_channels_last_3d(x_general));
  for (auto mode : {InterpolateMode::trilinear, InterpolateMode::area, InterpolateMode::nearest}) {
    const InterpolateOptions o{mode, std::array<int64_t, 3>{7, 2, 4}, {}, false};
    CHECK(rel_error(ops::interpolate(x, o), ops::interpolate(x.contiguous(), o)) == 0.0);
    CHECK(rel_error(ops::interpolate(x_general, o), ops::interpolate(x_general.contiguous(), o)) == 0.0);
  }
}
