// Synthetic CT phantoms: Hounsfield ranges per organ and finding, label-map consistency, finding
// extents at the model input resolution, determinism across runs and thread counts.
#include <algorithm>
#include <map>
#include <vector>

#include "ctmllm/data/phantom.hpp"
#include "support/catch.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using namespace ctmllm::data;

namespace {

PhantomConfig with_prevalence(double p) {
  PhantomConfig cfg;
  cfg.prevalence.fill(p);
  return cfg;
}

double median(std::vector<int16_t> v) {
  REQUIRE(!v.empty());
  std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Fraction of each model voxel covered by `id` in `labels`, by area interpolation (PyTorch's
// adaptive average pooling) to `out` = (z, y, x).
std::vector<float> coverage(const Tensor<uint8_t, Cpu>& labels, uint8_t id, const std::array<int64_t, 3>& out) {
  const int64_t in[3] = {labels.size(0), labels.size(1), labels.size(2)};
  std::vector<float> cov(size_t(out[0] * out[1] * out[2]));
  auto lo = [](int64_t i, int64_t n_in, int64_t n_out) { return i * n_in / n_out; };
  auto hi = [](int64_t i, int64_t n_in, int64_t n_out) { return ((i + 1) * n_in + n_out - 1) / n_out; };
  for (int64_t a = 0; a < out[0]; ++a)
    for (int64_t b = 0; b < out[1]; ++b)
      for (int64_t c = 0; c < out[2]; ++c) {
        int64_t hits = 0, total = 0;
        for (int64_t k = lo(a, in[0], out[0]); k < hi(a, in[0], out[0]); ++k)
          for (int64_t j = lo(b, in[1], out[1]); j < hi(b, in[1], out[1]); ++j)
            for (int64_t i = lo(c, in[2], out[2]); i < hi(c, in[2], out[2]); ++i) {
              hits += labels.at(k, j, i) == id;
              ++total;
            }
        cov[size_t((a * out[1] + b) * out[2] + c)] = float(hits) / float(total);
      }
  return cov;
}

}  // namespace

TEST_CASE("organs and findings have realistic Hounsfield values", "[data_world][phantom]") {
  // Organ voxels (finding voxels excluded) and finding voxels, over phantoms with half the findings.
  std::map<uint8_t, std::vector<int16_t>> by_label;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    const Phantom p = make_phantom(with_prevalence(0.5), seed);
    const int16_t* ct = p.ct.data();
    const uint8_t* labels = p.labels.data();
    for (int64_t i = 0; i < p.ct.numel(); ++i) by_label[labels[i]].push_back(ct[i]);
  }
  struct Range {
    uint8_t id;
    double lo, hi;
  };
  const Range ranges[] = {
      {label::background, -1024, -950},
      {label::body, -120, 60},  // fat, muscle and bowel
      {label::lung_right, -850, -700},
      {label::lung_left, -850, -700},
      {label::heart, 30, 200},
      {label::aorta, 30, 200},
      {label::liver, 45, 120},
      {label::spleen, 35, 130},
      {label::kidney_right, 20, 170},
      {label::kidney_left, 20, 170},
      {label::bladder, -5, 40},  // urine
      {label::spine, 300, 1000},
      {label::ribs, 300, 1000},
      {label::pelvic_bones, 300, 1000},
      {label::trachea, -1024, -900},
      {kind_label(FindingKind::lung_nodule), -60, 70},
      {kind_label(FindingKind::pleural_effusion), -10, 35},
      {kind_label(FindingKind::pericardial_effusion), -10, 35},
      {kind_label(FindingKind::liver_cyst), -10, 30},
      {kind_label(FindingKind::kidney_stone), 300, 1000},
      {kind_label(FindingKind::splenomegaly), 35, 130},
      {kind_label(FindingKind::bladder_wall_thickening), 35, 105},
  };
  for (const Range& r : ranges) {
    INFO("label " << int(r.id));
    const double m = median(by_label[r.id]);
    CHECK(m >= r.lo);
    CHECK(m <= r.hi);
  }
}

TEST_CASE("the label map marks findings inside their organs", "[data_world][phantom]") {
  for (uint64_t seed = 10; seed < 22; ++seed) {
    INFO("seed " << seed);
    const Phantom p = make_phantom(with_prevalence(1.0), seed);
    REQUIRE(p.findings.size() == size_t(kNumFindingKinds));  // placement always finds room
    std::map<uint8_t, const Finding*> by_id;
    for (const Finding& f : p.findings) by_id[f.label()] = &f;
    std::map<uint8_t, int64_t> count;
    int64_t bad_organ = 0, unlisted = 0, mismatched = 0, outside = 0;  // voxels breaking each rule
    const uint8_t* organs = p.organs.data();
    const uint8_t* labels = p.labels.data();
    for (int64_t i = 0; i < p.labels.numel(); ++i) {
      bad_organ += organs[i] >= label::kNumOrgans;
      if (labels[i] < label::kFirstFinding) {
        mismatched += labels[i] != organs[i];
        continue;
      }
      if (by_id.count(labels[i]) == 0) {
        ++unlisted;
        continue;
      }
      const auto allowed = finding_organs(*by_id[labels[i]]);
      outside += std::find(allowed.begin(), allowed.end(), organs[i]) == allowed.end();
      ++count[labels[i]];
    }
    CHECK(bad_organ == 0);
    CHECK(unlisted == 0);
    CHECK(mismatched == 0);
    CHECK(outside == 0);
    for (const Finding& f : p.findings) {
      INFO(kind_name(f.kind));
      CHECK(count[f.label()] > 0);
    }
  }
}

TEST_CASE("every finding spans the documented minimum of model voxels", "[data_world][phantom]") {
  const PhantomConfig cfg = with_prevalence(1.0);
  std::array<std::array<int64_t, 3>, kNumFindingKinds> smallest;
  for (auto& s : smallest) s = {1 << 20, 1 << 20, 1 << 20};
  for (uint64_t seed = 100; seed < 130; ++seed) {
    const Phantom p = make_phantom(cfg, seed);
    for (const Finding& f : p.findings) {
      // The core: model voxels at least half filled by the finding; its bounding box per axis.
      const std::vector<float> cov = coverage(p.labels, f.label(), kModelInputShape);
      std::array<int64_t, 3> lo{1 << 20, 1 << 20, 1 << 20}, hi{-1, -1, -1};
      for (int64_t a = 0; a < kModelInputShape[0]; ++a)
        for (int64_t b = 0; b < kModelInputShape[1]; ++b)
          for (int64_t c = 0; c < kModelInputShape[2]; ++c) {
            if (cov[size_t((a * kModelInputShape[1] + b) * kModelInputShape[2] + c)] < 0.5f) continue;
            const int64_t idx[3] = {a, b, c};
            for (int d = 0; d < 3; ++d)
              lo[size_t(d)] = std::min(lo[size_t(d)], idx[d]), hi[size_t(d)] = std::max(hi[size_t(d)], idx[d]);
          }
      for (int d = 0; d < 3; ++d)
        smallest[size_t(f.kind)][size_t(d)] =
            std::min(smallest[size_t(f.kind)][size_t(d)], hi[size_t(d)] - lo[size_t(d)] + 1);
    }
  }
  for (const auto& k : kFindingKinds) {
    const auto& s = smallest[size_t(k.kind)];
    INFO(k.name << ": smallest core extent (z, y, x) = " << s[0] << ", " << s[1] << ", " << s[2]);
    for (int d = 0; d < 3; ++d) CHECK(s[size_t(d)] >= kMinFindingModelVoxels[size_t(d)]);
  }
}

TEST_CASE("finding sizes lie in their documented ranges and splenomegaly is clearly larger", "[data_world][phantom]") {
  for (uint64_t seed = 200; seed < 240; ++seed) {
    const Anatomy a = sample_anatomy({384, 384, 320}, PhantomConfig::default_prevalence(), seed);
    for (const Finding& f : a.findings) {
      INFO(kind_name(f.kind) << " seed " << seed);
      CHECK(f.size_mm >= kind_info(f.kind).min_size_mm);
      CHECK(f.size_mm <= kind_info(f.kind).max_size_mm);
    }
  }
  // Spleen volume with and without splenomegaly, same patient otherwise.
  PhantomConfig normal = with_prevalence(0.0), enlarged = normal;
  enlarged.prevalence[size_t(FindingKind::splenomegaly)] = 1.0;
  for (uint64_t seed = 300; seed < 306; ++seed) {
    auto volume = [](const Phantom& p) {
      const auto v = p.organs.to_vector();
      return std::count(v.begin(), v.end(), label::spleen);
    };
    CHECK(double(volume(make_phantom(enlarged, seed))) > 2.0 * double(volume(make_phantom(normal, seed))));
  }
}

TEST_CASE("a phantom depends only on its seed, not on the thread count", "[data_world][phantom]") {
  const PhantomConfig cfg;
  const int threads = num_threads();
  set_num_threads(1);
  const Phantom a = make_phantom(cfg, 42);
  set_num_threads(std::max(2, threads));
  const Phantom b = make_phantom(cfg, 42);
  set_num_threads(threads);
  CHECK(a.ct.to_vector() == b.ct.to_vector());
  CHECK(a.organs.to_vector() == b.organs.to_vector());
  CHECK(a.labels.to_vector() == b.labels.to_vector());
  REQUIRE(a.findings.size() == b.findings.size());
  for (size_t i = 0; i < a.findings.size(); ++i)
    CHECK(finding_to_json(a.findings[i]) == finding_to_json(b.findings[i]));
  CHECK(make_phantom(cfg, 43).ct.to_vector() != a.ct.to_vector());
}

TEST_CASE("findings do not move the anatomy, prevalence 0 gives none", "[data_world][phantom]") {
  for (uint64_t seed = 50; seed < 54; ++seed) {
    const Phantom none = make_phantom(with_prevalence(0.0), seed), all = make_phantom(with_prevalence(1.0), seed);
    CHECK(none.findings.empty());
    const auto a = none.organs.to_vector(), b = all.organs.to_vector();
    int64_t differ = 0;  // the body outline and the spine are the same patient's
    for (size_t i = 0; i < a.size(); ++i)
      differ += ((a[i] == label::background) != (b[i] == label::background)) ||
                ((a[i] == label::spine) != (b[i] == label::spine));
    CHECK(differ == 0);
  }
}

TEST_CASE("the phantom grid and geometry are what the config says", "[data_world][phantom]") {
  PhantomConfig cfg;
  cfg.shape = {48, 96, 112};
  cfg.spacing = {3.5, 4.0, 6.0};
  const Phantom p = make_phantom(cfg, 1);
  CHECK(p.ct.shape() == Shape{48, 96, 112});
  CHECK(p.spacing == cfg.spacing);
  CHECK(p.affine[0][0] == 3.5);
  CHECK(p.affine[2][3] == 3.0);  // the first slice's centre lies half a slice above z = 0
  // The body fills about half the field, and the lungs sit above the liver, the liver above the bladder.
  const auto organs = p.organs.to_vector();
  const double outside = double(std::count(organs.begin(), organs.end(), label::background)) / double(organs.size());
  CHECK(outside > 0.3);
  CHECK(outside < 0.8);
  auto mean_slice = [&](uint8_t id) {
    double sum = 0, n = 0;
    for (size_t i = 0; i < organs.size(); ++i)
      if (organs[i] == id) sum += double(i / size_t(96 * 112)), ++n;
    return sum / n;
  };
  CHECK(mean_slice(label::lung_left) > mean_slice(label::liver));
  CHECK(mean_slice(label::liver) > mean_slice(label::bladder));
}

TEST_CASE("bad phantom configs are refused", "[data_world][phantom]") {
  PhantomConfig cfg;
  cfg.spacing = {1.0, 3.0, 5.0};  // a 128 mm field cannot hold a torso
  CHECK_THROWS_AS(make_phantom(cfg, 0), Error);
  cfg = {};
  cfg.spacing[2] = -5;
  CHECK_THROWS_AS(make_phantom(cfg, 0), Error);
  cfg = {};
  cfg.prevalence[0] = 1.5;
  CHECK_THROWS_AS(make_phantom(cfg, 0), Error);
}
