#pragma once
// One synthetic patient: torso, organs and findings as analytic shapes in millimetres, sampled
// from a seed, and the tissue at any point (Anatomy::classify). phantom.hpp rasterizes it. Finding
// placement lives here because a candidate position is accepted only when the same classify()
// that draws the volume puts it inside its organ.
//
// Frame (RAS, the NIfTI world frame the phantom is written in): x towards the patient's right,
// y anterior, z superior; x and y centred on the scan, z from 0 at the bottom of the scan (pelvis)
// to `length` at the top (lung apices). In-plane sizes are adult-like (scaled by the field of
// view); craniocaudal positions are fractions of the scan length, so chest, abdomen and pelvis
// always fit the scan (a 320 mm scan compresses the torso to about 0.55 of an adult's length).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "ctmllm/data/findings.hpp"
#include "ctmllm/data/sampler.hpp"
#include "ctmllm/data/value_noise.hpp"

namespace ctmllm::data {

enum class Tissue : uint8_t {
  air,
  fat,
  muscle,
  lung,
  blood,
  myocardium,
  liver,
  spleen,
  kidney,
  urine,
  bladder_wall,
  cortical_bone,
  marrow,
  rib,
  disc,
  csf,
  airway,
  bowel,
  bowel_gas,
  effusion,
  cyst,
  stone,
  nodule,
  thickened_bladder_wall,
  count
};
inline constexpr int kNumTissues = int(Tissue::count);

// What one point of the phantom is: organ id, label-map id (the finding's id on finding voxels),
// and tissue (which sets the Hounsfield value).
struct Voxel {
  uint8_t organ = label::background;
  uint8_t label = label::background;
  Tissue tissue = Tissue::air;
};

// An ellipsoid rotated about z by `angle` (its x semi-axis points along (cos, sin) in the plane).
struct Ellipsoid {
  double cx = 0, cy = 0, cz = 0, rx = 1, ry = 1, rz = 1, c = 1, s = 0;

  static Ellipsoid make(double cx, double cy, double cz, double rx, double ry, double rz, double angle = 0) {
    return {cx, cy, cz, rx, ry, rz, std::cos(angle), std::sin(angle)};
  }
  // (u/rx)² + (v/ry)² + (w/rz)²: below 1 inside.
  double rho2(double x, double y, double z) const {
    const double dx = x - cx, dy = y - cy, dz = z - cz;
    const double u = c * dx + s * dy, v = -s * dx + c * dy;
    return (u * u) / (rx * rx) + (v * v) / (ry * ry) + (dz * dz) / (rz * rz);
  }
  bool contains(double x, double y, double z) const { return z > cz - rz && z < cz + rz && rho2(x, y, z) < 1.0; }
  // Distance from the point to the surface along the ray from the centre (wall thickness tests).
  double depth(double x, double y, double z) const {
    const double r = std::sqrt(rho2(x, y, z));
    const double d = std::sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz));
    return r > 0 ? d * (1.0 - r) / r : 1e9;
  }
  Ellipsoid grown(double d) const { return {cx, cy, cz, rx + d, ry + d, rz + d, c, s}; }
};

// Quantities of one axial slice that classify() would otherwise recompute per voxel.
struct Slice {
  double z = 0, t = 0;                     // height and its fraction of the scan length
  double body_a = 0, body_b = 0;           // body outline semi-axes (x, y)
  double fat_a = 0, fat_b = 0;             // inner edge of the subcutaneous fat
  double cav_a = 0, cav_b = 0, cav_y = 0;  // body cavity (inside the muscle wall), centre y
  double lung_a = 0, lung_b = 0;           // the lungs' outer ellipse (inside the ribs), apex-tapered
  double spine_y = 0;                      // vertebral body centre (moves back in the sacrum)
};

// An organ lying against the inside of the body wall (the spleen): a crescent in the curvilinear
// coordinates of the cavity ellipse, psi the angle around it (0 at the spine, pi/2 at the left flank,
// pi at the front) and depth the distance in from the wall. Inside when
// ((psi - psi_c)/psi_h)² + ((depth - depth_c)/half_thick)² + ((z - cz)/rz)² < 1.
struct WallCrescent {
  double psi_c = 1, psi_h = 0.4, depth_c = 12, half_thick = 10, cz = 0, rz = 1;
};

// Bladder wall sectors for focal thickening.
enum class WallSector : uint8_t { diffuse, posterior, left, right };

struct Anatomy {
  double width = 0, depth = 0, length = 0, scale = 1;  // scan extent (mm); in-plane patient scale
  // Body outline ellipse centred at (0, body_y); fat and muscle layers; the cavity sits
  // cavity_shift forward so that the posterior wall (back muscles) is thicker.
  double body_a = 0, body_b = 0, body_y = 0, waist = 0, belly = 0, fat = 0, muscle = 0, cavity_shift = 0;
  double spine_y = 0, vertebra_r = 0, canal_r = 0, vertebra_height = 0, vertebra_phase = 0;
  int ribs = 0;
  double rib_top = 0, rib_step = 0, rib_slope = 0, rib_half = 0, rib_band = 10;
  std::array<double, 2> dome_z{};  // diaphragm dome heights: [0] right, [1] left
  double dome_x = 0, dome_y = 0, dome_curvature = 0;
  double carina_z = 0, bifurcation_z = 0;
  double mediastinum_x = 0, mediastinum_w = 0;
  Ellipsoid heart, heart_blood, heart_sac, lung_exclusion;  // sac = heart unless pericardial effusion
  double aorta_x = 0, aorta_y = 0, aorta_r = 0, trachea_x = 0, trachea_y = 0, trachea_r = 0;
  Ellipsoid liver_right, liver_left, bladder;
  WallCrescent spleen;
  std::array<Ellipsoid, 2> kidneys;  // [0] right, [1] left
  double bladder_wall = 3;

  // Findings' geometry (present flags mirror `findings`).
  bool has_nodule = false, has_cyst = false, has_stone = false, splenomegaly = false;
  Ellipsoid nodule, cyst, stone;
  int nodule_side = 0, stone_side = 0;  // 0 right, 1 left
  std::array<bool, 2> effusion{};       // pleural effusion per side
  double effusion_depth = 0;
  std::array<double, 2> effusion_top{};
  double bladder_thickness = 0;  // 0: normal wall
  WallSector bladder_sector = WallSector::diffuse;

  std::array<float, kNumTissues> hu{};       // mean Hounsfield value per tissue
  std::array<float, kNumTissues> texture{};  // amplitude of the smooth texture per tissue (HU)
  float noise_sigma = 0;                     // voxel noise (HU)
  double contrast = 0;                       // 0 non-contrast .. 1 portal venous
  ValueNoise organ_texture, bowel_field, gas_field;
  std::vector<Finding> findings;

  static uint8_t lung_label(int side) { return side == 0 ? label::lung_right : label::lung_left; }
  static uint8_t kidney_label(int side) { return side == 0 ? label::kidney_right : label::kidney_left; }

  Slice slice_at(double z) const {
    Slice s;
    s.z = z;
    s.t = z / length;
    const double t = s.t;
    s.body_a = body_a * (1.0 - waist * std::exp(-sq((t - 0.42) / 0.12)) + 0.05 * std::exp(-sq((t - 0.12) / 0.08)));
    s.body_b = body_b * (1.0 + belly * std::exp(-sq((t - 0.35) / 0.15)));
    s.fat_a = s.body_a - fat;
    s.fat_b = s.body_b - fat;
    s.cav_a = s.fat_a - muscle;
    s.cav_b = s.fat_b - muscle - cavity_shift;
    s.cav_y = body_y + cavity_shift;
    // The lungs narrow to their apices over the top 14 % of the scan.
    const double apex = t > 0.86 ? std::sqrt(std::max(0.0, 1.0 - sq((t - 0.86) / 0.14))) : 1.0;
    s.lung_a = (s.cav_a - rib_band) * apex;
    s.lung_b = (s.cav_b - rib_band) * apex;
    s.spine_y = spine_y - scale * 22.0 * std::clamp((0.26 - t) / 0.14, 0.0, 1.0);
    return s;
  }

  // Height of the diaphragm under (x, y): two domes, lowest in the posterior recesses.
  double diaphragm_z(double x, double y) const {
    const int side = x >= 0 ? 0 : 1;
    const double dx = x - (side == 0 ? dome_x : -dome_x), dy = y - dome_y;
    const double drop = dome_curvature * (dx * dx + (dy < 0 ? 1.4 : 0.7) * dy * dy);
    return dome_z[size_t(side)] - std::min(drop, 0.12 * length);  // the recesses end above the kidneys
  }

  Voxel classify(double x, double y, double z) const { return classify(x, y, slice_at(z)); }

  Voxel classify(double x, double y, const Slice& s) const {
    const double z = s.z, dyb = y - body_y;
    if (sq(x / s.body_a) + sq(dyb / s.body_b) >= 1.0) return {label::background, label::background, Tissue::air};
    const double cav2 = sq(x / s.cav_a) + sq((y - s.cav_y) / s.cav_b);
    if (const Voxel b = bone(x, y, s, cav2); b.organ != label::background) return b;
    const Voxel fat_v{label::body, label::body, Tissue::fat}, muscle_v{label::body, label::body, Tissue::muscle};
    if (sq(x / s.fat_a) + sq(dyb / s.fat_b) >= 1.0) return fat_v;
    if (cav2 >= 1.0) return muscle_v;
    const double canal_y = s.spine_y - vertebra_r - 2 - canal_r;
    if (s.t > 0.06 && sq(x) + sq(y - canal_y) < sq(canal_r)) return {label::body, label::body, Tissue::csf};
    if (z >= diaphragm_z(x, y)) return chest(x, y, s, fat_v, muscle_v);
    // Back and psoas muscles beside the spine, below the diaphragm.
    const double para_y = canal_y - 8 * scale;
    if (sq((std::abs(x) - 38 * scale) / (26 * scale)) + sq((y - para_y) / (30 * scale)) < 1.0) return muscle_v;
    return abdomen(x, y, s, fat_v);
  }

  // Nodule lobe from its position: the upper ~45 % of each lung is the upper lobe, the anterior
  // middle band the right middle lobe (lingula on the left, reported as the left upper lobe).
  const char* lobe_at(double y, double z, int side) const {
    const double rel = (z - dome_z[size_t(side)]) / (length - dome_z[size_t(side)]);
    const bool anterior = y > body_y + cavity_shift;
    if (side == 0)
      return rel > 0.55 ? "right upper lobe" : (anterior && rel > 0.15 ? "right middle lobe" : "right lower lobe");
    return rel > 0.55 || (anterior && rel > 0.15) ? "left upper lobe" : "left lower lobe";
  }

  // The point of the cavity wall at angle psi on the left, and the wall's distance from the centre.
  static void wall_point(const Slice& s, double psi, double& x, double& y, double& radius) {
    x = -s.cav_a * std::sin(psi);
    y = s.cav_y - s.cav_b * std::cos(psi);
    radius = std::hypot(s.cav_a * std::sin(psi), s.cav_b * std::cos(psi));
  }
  // The point `depth` mm in from the wall at angle psi.
  static std::array<double, 2> inside_wall(const Slice& s, double psi, double depth) {
    double x, y, radius;
    wall_point(s, psi, x, y, radius);
    const double f = 1.0 - depth / radius;
    return {x * f, s.cav_y + (y - s.cav_y) * f};
  }
  // The angular span from psi_start over which the line `depth` in from the wall is `length` long
  // (stopping short of the front of the body).
  static double wall_span(const Slice& s, double psi_start, double depth, double length) {
    double psi = psi_start, run = 0;
    std::array<double, 2> p = inside_wall(s, psi, depth);
    while (run < length && psi < 2.85) {
      psi += 0.002;
      const std::array<double, 2> q = inside_wall(s, psi, depth);
      run += std::hypot(q[0] - p[0], q[1] - p[1]);
      p = q;
    }
    return psi - psi_start;
  }

 private:
  static double sq(double v) { return v * v; }

  Voxel bone(double x, double y, const Slice& s, double cav2) const {
    const double z = s.z, t = s.t;
    const Voxel cortical{label::spine, label::spine, Tissue::cortical_bone};
    if (t > 0.06) {
      const double d2 = sq(x) + sq(y - s.spine_y);
      if (d2 < sq(vertebra_r)) {
        const double phase =
            (z - vertebra_phase) / vertebra_height - std::floor((z - vertebra_phase) / vertebra_height);
        if (phase < 0.2 && t > 0.22) return {label::spine, label::spine, Tissue::disc};
        return {label::spine, label::spine, d2 > sq(vertebra_r - 3) ? Tissue::cortical_bone : Tissue::marrow};
      }
      const double canal_y = s.spine_y - vertebra_r - 2 - canal_r, dc2 = sq(x) + sq(y - canal_y);
      if (dc2 >= sq(canal_r) && dc2 < sq(canal_r + 5)) return cortical;  // vertebral arch
      if (std::abs(x) < 4 && y < canal_y - canal_r - 3 && y > canal_y - canal_r - 3 - 26 * scale) return cortical;
    }
    // Ribs: oblique bands in the outer rib_band of the cavity, descending towards the front.
    const double rib_low = std::min(dome_z[0], dome_z[1]) - 0.1 * length;
    if (z > rib_low && cav2 < 1.0) {
      const double r = std::sqrt(cav2), inner = 1.0 - rib_band / (0.5 * (s.cav_a + s.cav_b));
      if (r >= inner) {
        const double phi = std::atan2(std::abs(x), -(y - s.cav_y));  // 0 at the spine, pi at the sternum
        const Voxel rib{label::ribs, label::ribs, Tissue::rib};
        if (phi > 2.85 && z > std::max(dome_z[0], dome_z[1]) + 5 && z < length - 10) return rib;  // sternum
        if (phi > 0.3 && phi < 2.75) {
          const double k = std::round((rib_top - rib_slope * phi - z) / rib_step);
          if (k >= 0 && k < ribs && std::abs(z - (rib_top - k * rib_step - rib_slope * phi)) < rib_half) return rib;
        }
      }
    }
    if (t < 0.3) {
      const Voxel pelvic_c{label::pelvic_bones, label::pelvic_bones, Tissue::cortical_bone};
      const Voxel pelvic_m{label::pelvic_bones, label::pelvic_bones, Tissue::marrow};
      for (double side : {1.0, -1.0}) {
        if (t > 0.13 && t < 0.28) {  // iliac wing: a curved plate flaring upwards
          const double f = 0.75 + 0.25 * (t - 0.13) / 0.15;
          const double cx = side * scale * 60, cy = s.spine_y + scale * 12;
          const double e = sq((x - cx) / (scale * 58 * f)) + sq((y - cy) / (scale * 44 * f));
          if (e >= 0.72 && e < 1.0 && side * (x - cx) > -scale * 10 && y < cy + scale * 30)
            return e > 0.93 || e < 0.77 ? pelvic_c : pelvic_m;
        }
        if (t < 0.11) {  // femoral head in its acetabulum
          const double cx = side * scale * 86, cy = body_y + scale * 2, cz = 0.05 * length, r = scale * 22;
          const double d2 = sq(x - cx) + sq(y - cy) + sq(z - cz);
          if (d2 < sq(r)) return d2 > sq(r - 3) ? pelvic_c : pelvic_m;
          if (d2 > sq(r + 2) && d2 < sq(r + 7) && side * (x - cx) < 0) return pelvic_c;
        }
        if (t < 0.06) {  // pubic bone
          const double cx = side * scale * 20, cy = s.cav_y + s.cav_b - scale * 14;
          const double e = sq((x - cx) / (scale * 18)) + sq((y - cy) / (scale * 9));
          if (e < 1.0) return e > 0.6 ? pelvic_c : pelvic_m;
        }
      }
    }
    return {};
  }

  Voxel chest(double x, double y, const Slice& s, const Voxel& fat_v, const Voxel& muscle_v) const {
    const double z = s.z;
    if (heart_sac.contains(x, y, z)) {
      if (!heart.contains(x, y, z))
        return {label::heart, kind_label(FindingKind::pericardial_effusion), Tissue::effusion};
      return {label::heart, label::heart, heart_blood.contains(x, y, z) ? Tissue::blood : Tissue::myocardium};
    }
    if (z > bifurcation_z && sq(x - aorta_x) + sq(y - aorta_y) < sq(aorta_r))
      return {label::aorta, label::aorta, Tissue::blood};
    if (z > carina_z && sq(x - trachea_x) + sq(y - trachea_y) < sq(trachea_r))
      return {label::trachea, label::trachea, Tissue::airway};
    const double ly = y - s.cav_y;
    if (sq(x / (s.cav_a - rib_band)) + sq(ly / (s.cav_b - rib_band)) >= 1.0) return muscle_v;  // intercostal
    if (s.lung_a <= 0 || sq(x / s.lung_a) + sq(ly / s.lung_b) >= 1.0) return fat_v;
    if (std::abs(x - mediastinum_x) < mediastinum_w || lung_exclusion.contains(x, y, z)) return fat_v;
    if (z > bifurcation_z && sq(x - aorta_x) + sq(y - aorta_y) < sq(aorta_r + 3)) return fat_v;
    if (sq(x) + sq(y - s.spine_y) < sq(vertebra_r + 4)) return fat_v;
    const int side = x >= mediastinum_x ? 0 : 1;
    const uint8_t organ = lung_label(side);
    if (effusion[size_t(side)]) {
      const double post = s.cav_y - s.lung_b * std::sqrt(std::max(0.0, 1.0 - sq(x / s.lung_a)));
      const double top = effusion_top[size_t(side)], base = dome_z[size_t(side)];
      const double d = effusion_depth * std::sqrt(std::clamp((top - z) / (top - base), 0.0, 1.0));
      if (y - post < d) return {organ, kind_label(FindingKind::pleural_effusion), Tissue::effusion};
    }
    if (has_nodule && side == nodule_side && nodule.contains(x, y, z))
      return {organ, kind_label(FindingKind::lung_nodule), Tissue::nodule};
    return {organ, organ, Tissue::lung};
  }

  Voxel abdomen(double x, double y, const Slice& s, const Voxel& fat_v) const {
    const double z = s.z;
    for (int side = 0; side < 2; ++side) {
      if (!kidneys[size_t(side)].contains(x, y, z)) continue;
      const uint8_t organ = kidney_label(side);
      if (has_stone && side == stone_side && stone.contains(x, y, z))
        return {organ, kind_label(FindingKind::kidney_stone), Tissue::stone};
      return {organ, organ, Tissue::kidney};
    }
    if (in_spleen(x, y, s))
      return {label::spleen, splenomegaly ? kind_label(FindingKind::splenomegaly) : label::spleen, Tissue::spleen};
    if (liver_right.contains(x, y, z) || liver_left.contains(x, y, z)) {
      if (has_cyst && cyst.contains(x, y, z)) return {label::liver, kind_label(FindingKind::liver_cyst), Tissue::cyst};
      return {label::liver, label::liver, Tissue::liver};
    }
    if (z > bifurcation_z && sq(x - aorta_x) + sq(y - aorta_y) < sq(aorta_r))
      return {label::aorta, label::aorta, Tissue::blood};
    if (bladder.contains(x, y, z)) {
      const bool thick = bladder_thickness > 0 && in_sector(x, y);
      const double wall = thick ? bladder_thickness : bladder_wall;
      if (bladder.depth(x, y, z) >= wall) return {label::bladder, label::bladder, Tissue::urine};
      if (thick) return {label::bladder, kind_label(FindingKind::bladder_wall_thickening), Tissue::thickened_bladder_wall};
      return {label::bladder, label::bladder, Tissue::bladder_wall};
    }
    // Everything else in the abdomen and pelvis: bowel loops (some with gas) in fat.
    if (bowel_field(x, y, z) > 0.1f) {
      return {label::body, label::body, gas_field(x, y, z) > 0.45f ? Tissue::bowel_gas : Tissue::bowel};
    }
    return fat_v;
  }

  bool in_spleen(double x, double y, const Slice& s) const {
    const double dz = (s.z - spleen.cz) / spleen.rz;
    if (x >= 0 || dz * dz >= 1.0) return false;
    const double u = x / s.cav_a, v = (y - s.cav_y) / s.cav_b, rho = std::sqrt(u * u + v * v);
    const double psi = std::atan2(-u, -v);
    const double depth = (1.0 - rho) * std::hypot(s.cav_a * std::sin(psi), s.cav_b * std::cos(psi));
    return sq((psi - spleen.psi_c) / spleen.psi_h) + sq((depth - spleen.depth_c) / spleen.half_thick) + dz * dz < 1.0;
  }

  bool in_sector(double x, double y) const {
    const double dx = x - bladder.cx, dy = y - bladder.cy;
    switch (bladder_sector) {
      case WallSector::diffuse:
        return true;
      case WallSector::posterior:
        return dy < 0 && std::abs(dx) < -dy * 1.73;  // within 60 degrees of posterior
      case WallSector::left:
        return dx < 0 && std::abs(dy) < -dx * 1.43;  // within 55 degrees of left
      case WallSector::right:
        return dx > 0 && std::abs(dy) < dx * 1.43;
    }
    return false;
  }
};

namespace detail {

// Whether the finding ellipsoid `e`, grown by `margin` mm, lies where `ok(voxel)` holds: the
// centre and 26 points on its surface (the directions of a 3x3x3 neighbourhood) are tested.
template <class Ok>
bool fits(const Anatomy& a, const Ellipsoid& e, double margin, Ok&& ok) {
  for (int i = -1; i <= 1; ++i)
    for (int j = -1; j <= 1; ++j)
      for (int k = -1; k <= 1; ++k) {
        const double n = std::sqrt(double(i * i + j * j + k * k));
        const double f = n > 0 ? 1.0 / n : 0.0;
        if (!ok(a.classify(e.cx + i * f * (e.rx + margin), e.cy + j * f * (e.ry + margin),
                           e.cz + k * f * (e.rz + margin))))
          return false;
      }
  return true;
}

inline double round_tenth(double v) { return std::round(v * 10.0) / 10.0; }

// A slightly anisotropic ellipsoid whose largest diameter is `size`.
inline Ellipsoid blob(Sampler& s, double x, double y, double z, double size) {
  const double r = size / 2;
  const int longest = s.index(3);
  double radii[3];
  for (int d = 0; d < 3; ++d) radii[d] = d == longest ? r : r * s.uniform(0.88, 1.0);
  return Ellipsoid::make(x, y, z, radii[0], radii[1], radii[2]);
}

inline void place_nodule(Anatomy& a, Sampler& s) {
  const auto& k = kind_info(FindingKind::lung_nodule);
  const double size = round_tenth(s.uniform(k.min_size_mm, k.max_size_mm));
  const int first = s.index(2);
  for (int attempt = 0; attempt < 400; ++attempt) {
    const int side = attempt < 250 ? first : 1 - first;  // a lung full of effusion: try the other
    const double sign = side == 0 ? 1.0 : -1.0;
    const double z = s.uniform(a.dome_z[size_t(side)] - 10, a.length - 30);
    const Slice sl = a.slice_at(z);
    const double x = sign * s.uniform(a.mediastinum_w, std::max(a.mediastinum_w, sl.lung_a));
    const double y = s.uniform(sl.cav_y - sl.lung_b, sl.cav_y + sl.lung_b);
    const Ellipsoid e = blob(s, x, y, z, size);
    if (!fits(a, e, 2.0,
              [&](const Voxel& v) { return v.organ == Anatomy::lung_label(side) && v.tissue == Tissue::lung; }))
      continue;
    a.has_nodule = true;
    a.nodule = e;
    a.nodule_side = side;
    a.findings.push_back({FindingKind::lung_nodule,
                          organ_name(Anatomy::lung_label(side)),
                          side == 0 ? "right" : "left",
                          a.lobe_at(y, z, side),
                          size,
                          {x, y, z}});
    return;
  }
}

inline void place_pleural_effusion(Anatomy& a, Sampler& s) {
  const auto& k = kind_info(FindingKind::pleural_effusion);
  const double u = s.uniform(0, 1);
  a.effusion = {u < 0.35 || u >= 0.7, u >= 0.35};  // right, left, or both
  a.effusion_depth = round_tenth(s.uniform(k.min_size_mm, k.max_size_mm));
  for (int side = 0; side < 2; ++side)
    a.effusion_top[size_t(side)] = a.dome_z[size_t(side)] + a.effusion_depth * s.uniform(1.5, 2.5);
  const bool both = a.effusion[0] && a.effusion[1];
  const int side = a.effusion[0] ? 0 : 1;
  const Slice sl = a.slice_at(a.dome_z[size_t(side)]);
  const double x = both ? 0.0 : (side == 0 ? 0.5 : -0.5) * sl.lung_a;
  a.findings.push_back({FindingKind::pleural_effusion,
                        both ? "both pleural spaces" : (side == 0 ? "right pleural space" : "left pleural space"),
                        both ? "bilateral" : (side == 0 ? "right" : "left"),
                        "dependent",
                        a.effusion_depth,
                        {x, sl.cav_y - sl.lung_b + a.effusion_depth / 2, a.dome_z[size_t(side)]}});
}

inline void place_pericardial_effusion(Anatomy& a, Sampler& s) {
  const auto& k = kind_info(FindingKind::pericardial_effusion);
  const double thickness = round_tenth(s.uniform(k.min_size_mm, k.max_size_mm));
  a.heart_sac = a.heart.grown(thickness);
  a.lung_exclusion = a.heart_sac.grown(4);
  a.findings.push_back({FindingKind::pericardial_effusion,
                        "pericardium",
                        "",
                        "circumferential",
                        thickness,
                        {a.heart.cx, a.heart.cy, a.heart.cz}});
}

inline void place_liver_cyst(Anatomy& a, Sampler& s) {
  const auto& k = kind_info(FindingKind::liver_cyst);
  const double size = round_tenth(s.uniform(k.min_size_mm, k.max_size_mm));
  for (int attempt = 0; attempt < 400; ++attempt) {
    const Ellipsoid& lobe = s.chance(0.75) ? a.liver_right : a.liver_left;
    const double x = lobe.cx + lobe.rx * s.uniform(-0.7, 0.7), y = lobe.cy + lobe.ry * s.uniform(-0.7, 0.7);
    const double z = lobe.cz + lobe.rz * s.uniform(-0.7, 0.5);
    const Ellipsoid e = blob(s, x, y, z, size);
    if (!fits(a, e, 3.0, [](const Voxel& v) { return v.organ == label::liver && v.tissue == Tissue::liver; })) continue;
    a.has_cyst = true;
    a.cyst = e;
    const bool right = x >= 0;
    a.findings.push_back({FindingKind::liver_cyst,
                          "liver",
                          right ? "right" : "left",
                          right ? "right hepatic lobe" : "left hepatic lobe",
                          size,
                          {x, y, z}});
    return;
  }
}

inline void place_kidney_stone(Anatomy& a, Sampler& s) {
  const auto& k = kind_info(FindingKind::kidney_stone);
  const double size = round_tenth(s.uniform(k.min_size_mm, k.max_size_mm));
  const int side = s.index(2);
  const Ellipsoid& kid = a.kidneys[size_t(side)];
  for (int attempt = 0; attempt < 400; ++attempt) {
    const double x = kid.cx + kid.rx * s.uniform(-0.25, 0.25), y = kid.cy + kid.ry * s.uniform(-0.25, 0.25);
    const double z = kid.cz + kid.rz * s.uniform(-0.6, 0.6);
    const Ellipsoid e = blob(s, x, y, z, size);
    if (!fits(a, e, 1.0,
              [&](const Voxel& v) { return v.organ == Anatomy::kidney_label(side) && v.tissue == Tissue::kidney; }))
      continue;
    a.has_stone = true;
    a.stone = e;
    a.stone_side = side;
    const double rel = (z - kid.cz) / kid.rz;
    a.findings.push_back({FindingKind::kidney_stone,
                          organ_name(Anatomy::kidney_label(side)),
                          side == 0 ? "right" : "left",
                          rel > 0.25    ? "upper pole"
                          : rel < -0.25 ? "lower pole"
                                        : "interpolar region",
                          size,
                          {x, y, z}});
    return;
  }
}

// The spleen grows forwards along the flank, thicker and taller. Its reported length is measured
// along the wall through the same classify() that draws it.
inline void place_splenomegaly(Anatomy& a, Sampler& s) {
  const auto& k = kind_info(FindingKind::splenomegaly);
  WallCrescent& sp = a.spleen;
  const double target = s.uniform(k.min_size_mm + 10, k.max_size_mm - 5);
  const double start = sp.psi_c - sp.psi_h - 0.1;  // it reaches forwards, and a little backwards
  sp.half_thick *= s.uniform(1.3, 1.45);
  sp.depth_c = 2 + sp.half_thick;
  sp.cz -= 0.35 * sp.rz;
  sp.rz *= s.uniform(1.35, 1.5);
  const Slice mid = a.slice_at(sp.cz);
  sp.psi_h = Anatomy::wall_span(mid, start, sp.depth_c, target) / 2;
  sp.psi_c = start + sp.psi_h;
  a.splenomegaly = true;
  // Length of the spleen's centre line at its mid height, over the part classify() draws.
  double length = 0;
  std::array<double, 2> prev{};
  bool inside = false;
  for (int i = 0; i <= 400; ++i) {
    const std::array<double, 2> p = Anatomy::inside_wall(mid, start + 2 * sp.psi_h * i / 400.0, sp.depth_c);
    const bool now = a.classify(p[0], p[1], mid).organ == label::spleen;
    if (now && inside) length += std::hypot(p[0] - prev[0], p[1] - prev[1]);
    inside = now;
    prev = p;
  }
  const std::array<double, 2> c = Anatomy::inside_wall(mid, sp.psi_c, sp.depth_c);
  a.findings.push_back({FindingKind::splenomegaly, "spleen", "", "", round_tenth(length), {c[0], c[1], sp.cz}});
}

inline void place_bladder_thickening(Anatomy& a, Sampler& s) {
  const auto& k = kind_info(FindingKind::bladder_wall_thickening);
  a.bladder_thickness = round_tenth(s.uniform(k.min_size_mm, k.max_size_mm));
  a.bladder_sector = WallSector(s.index(4));
  static constexpr const char* kSide[] = {"", "", "left", "right"};
  static constexpr const char* kWhere[] = {"diffuse", "posterior wall", "left lateral wall", "right lateral wall"};
  const int w = int(a.bladder_sector);
  a.findings.push_back({FindingKind::bladder_wall_thickening,
                        "bladder",
                        kSide[w],
                        kWhere[w],
                        a.bladder_thickness,
                        {a.bladder.cx, a.bladder.cy, a.bladder.cz}});
}

}  // namespace detail

// A patient for `seed` in a scan of extent (x, y, z) mm. Each finding kind is present with its
// `prevalence`; a present focal finding that finds no room in 400 tries is left out (it never
// happens with the default geometry: tests/data_world checks it). Findings come in kind order.
inline Anatomy sample_anatomy(const std::array<double, 3>& extent_mm,
                              const std::array<double, kNumFindingKinds>& prevalence, uint64_t seed) {
  Anatomy a;
  a.width = extent_mm[0];
  a.depth = extent_mm[1];
  a.length = extent_mm[2];
  Sampler s(derive_seed(seed, 1));
  const double L = a.length;
  a.scale = std::min(a.width, a.depth) / 384.0 * s.uniform(0.9, 1.04);
  const double k = a.scale;
  a.body_a = k * s.uniform(155, 172);
  a.body_b = k * s.uniform(102, 118);
  a.body_y = k * s.uniform(-6, 6);
  a.waist = s.uniform(0.02, 0.08);
  a.belly = s.uniform(-0.04, 0.1);
  a.fat = k * s.uniform(8, 24);
  a.muscle = k * s.uniform(8, 12);
  a.cavity_shift = k * s.uniform(10, 14);
  a.spine_y = a.body_y - a.body_b + k * s.uniform(82, 92);
  a.vertebra_r = k * s.uniform(17, 21);
  a.canal_r = k * s.uniform(7, 9);
  a.vertebra_height = L * s.uniform(0.06, 0.07);
  a.vertebra_phase = s.uniform(0, a.vertebra_height);

  const double dia = L * s.uniform(0.56, 0.61);
  a.dome_z = {dia + s.uniform(4, 14), dia};
  a.dome_x = k * 70;
  a.dome_y = a.body_y + k * s.uniform(-10, 10);
  a.dome_curvature = 0.1 * L / (100.0 * 100.0);  // 10 % of the scan lower, 100 mm from a dome
  a.carina_z = L * s.uniform(0.8, 0.84);
  a.bifurcation_z = L * s.uniform(0.22, 0.26);
  a.ribs = 9;
  a.rib_half = 4;
  a.rib_step = (L - a.dome_z[1] + 0.1 * L) / (a.ribs - 0.5) * s.uniform(0.95, 1.05);
  a.rib_slope = 0.8 * a.rib_step;  // ribs drop about 2.5 spaces from back to front
  a.rib_top = L + a.rib_slope;
  a.mediastinum_x = -k * s.uniform(2, 8);
  a.mediastinum_w = k * s.uniform(22, 28);

  const double heart_x = -k * s.uniform(15, 28), heart_y = a.body_y + k * s.uniform(20, 32);
  const double heart_rz = L * s.uniform(0.12, 0.14);
  a.heart = Ellipsoid::make(heart_x, heart_y, a.diaphragm_z(heart_x, heart_y) + 0.7 * heart_rz, k * s.uniform(50, 58),
                            k * s.uniform(38, 45), heart_rz, -s.uniform(0.5, 0.8));
  a.heart_blood = a.heart.grown(-10 * k);
  a.heart_sac = a.heart;
  a.lung_exclusion = a.heart.grown(4);
  a.aorta_r = k * s.uniform(10, 13);
  a.aorta_x = -k * s.uniform(16, 22);
  a.aorta_y = a.spine_y + a.vertebra_r + a.aorta_r + 2;
  a.trachea_r = k * s.uniform(8, 10);
  a.trachea_x = 0;
  a.trachea_y = a.spine_y + a.vertebra_r + 32 * k;

  const double lx = k * s.uniform(45, 60), ly = a.body_y + k * s.uniform(-5, 15), lrz = L * s.uniform(0.17, 0.2);
  a.liver_right =
      Ellipsoid::make(lx, ly, a.diaphragm_z(lx, ly) - 0.45 * lrz, k * s.uniform(80, 95), k * s.uniform(75, 88), lrz);
  const double llx = -k * s.uniform(20, 35), lly = a.body_y + k * s.uniform(35, 50), llrz = L * s.uniform(0.07, 0.09);
  a.liver_left = Ellipsoid::make(llx, lly, a.diaphragm_z(llx, lly) - 0.55 * llrz, k * s.uniform(45, 60),
                                 k * s.uniform(28, 36), llrz);
  // Spleen: a crescent against the left posterolateral wall under the left dome, 90-120 mm long.
  {
    WallCrescent& sp = a.spleen;
    const double start = s.uniform(0.75, 0.95);
    sp.half_thick = k * s.uniform(10, 13);
    sp.depth_c = 2 + sp.half_thick;
    sp.rz = L * s.uniform(0.09, 0.11);
    const Slice sl = a.slice_at(a.dome_z[1] - sp.rz);
    sp.psi_h = Anatomy::wall_span(sl, start, sp.depth_c, k * s.uniform(90, 120)) / 2;
    sp.psi_c = start + sp.psi_h;
    const std::array<double, 2> c = Anatomy::inside_wall(sl, sp.psi_c, sp.depth_c);
    sp.cz = a.diaphragm_z(c[0], c[1]) - 0.6 * sp.rz;
  }
  const double kz = L * s.uniform(0.30, 0.34);
  for (int side = 0; side < 2; ++side) {
    const double sign = side == 0 ? 1.0 : -1.0;
    a.kidneys[size_t(side)] = Ellipsoid::make(
        sign * k * s.uniform(54, 62), a.spine_y + k * s.uniform(-2, 8), kz + side * L * s.uniform(0.0, 0.02),
        k * s.uniform(28, 33), k * s.uniform(23, 27), L * s.uniform(0.12, 0.14), sign * s.uniform(0.35, 0.6));
  }
  a.bladder = Ellipsoid::make(0, a.body_y + k * s.uniform(15, 25), L * s.uniform(0.11, 0.13), k * s.uniform(36, 48),
                              k * s.uniform(28, 36), L * s.uniform(0.085, 0.1));

  // Hounsfield values: enhancing organs interpolate between non-contrast and portal venous.
  a.contrast = s.chance(0.3) ? 0.0 : s.uniform(0.6, 1.0);
  const double c = a.contrast;
  auto set = [&](Tissue t, double hu, double texture) {
    a.hu[size_t(t)] = float(hu);
    a.texture[size_t(t)] = float(texture);
  };
  set(Tissue::air, -1000, 0);
  set(Tissue::fat, s.uniform(-110, -90), 8);
  set(Tissue::muscle, s.uniform(42, 52) + 10 * c, 6);
  set(Tissue::lung, s.uniform(-830, -770), 25);
  set(Tissue::blood, s.uniform(38, 46) + 140 * c, 4);
  set(Tissue::myocardium, s.uniform(40, 50) + 55 * c, 5);
  set(Tissue::liver, s.uniform(52, 65) + 45 * c, 7);
  set(Tissue::spleen, s.uniform(42, 52) + 70 * c, 6);
  set(Tissue::kidney, s.uniform(28, 38) + 120 * c, 10);
  set(Tissue::urine, s.uniform(2, 12), 2);
  set(Tissue::bladder_wall, s.uniform(35, 45) + 25 * c, 4);
  // A thickened wall is denser and enhances more than a normal one, as a hypertrophied or inflamed
  // wall does. At the wall's own HU, stage 1 confused a thickened posterior wall with the bowel
  // beside it, and stage 2 read the bladder wall in one of eight runs (docs/DEMO.md, "What limits it" 7).
  // No random draw: every other voxel of a phantom stays as it was.
  set(Tissue::thickened_bladder_wall, a.hu[size_t(Tissue::bladder_wall)] + 15 + 10 * c, 4);
  set(Tissue::cortical_bone, s.uniform(750, 950), 50);
  set(Tissue::marrow, s.uniform(300, 380), 30);
  set(Tissue::rib, s.uniform(420, 650), 50);
  set(Tissue::disc, s.uniform(70, 100), 8);
  set(Tissue::csf, s.uniform(5, 15), 2);
  set(Tissue::airway, -990, 5);
  set(Tissue::bowel, s.uniform(25, 40) + 20 * c, 12);
  set(Tissue::bowel_gas, -900, 30);
  set(Tissue::effusion, s.uniform(2, 22), 3);
  set(Tissue::cyst, s.uniform(0, 20), 2);
  set(Tissue::stone, s.uniform(350, 900), 60);
  set(Tissue::nodule, s.uniform(-40, 50), 8);
  a.noise_sigma = float(s.uniform(8, 18));

  const std::array<double, 3> lo{-a.width / 2, -a.depth / 2, 0.0}, hi{a.width / 2, a.depth / 2, L};
  a.organ_texture = ValueNoise(lo, hi, 16.0, derive_seed(seed, 2));
  a.bowel_field = ValueNoise(lo, hi, 22.0, derive_seed(seed, 3));
  a.gas_field = ValueNoise(lo, hi, 12.0, derive_seed(seed, 4));

  // Findings: presence from one stream, each kind's geometry from its own. Splenomegaly and the
  // effusions change organ shapes, so they go before the focal findings that must fit inside.
  Sampler presence(derive_seed(seed, 5));
  std::array<bool, kNumFindingKinds> present{};
  for (int i = 0; i < kNumFindingKinds; ++i) present[size_t(i)] = presence.uniform(0, 1) < prevalence[size_t(i)];
  auto stream = [&](FindingKind kind) { return Sampler(derive_seed(seed, 16 + uint64_t(kind))); };
  using enum FindingKind;
  const FindingKind order[] = {splenomegaly, pleural_effusion, pericardial_effusion,   lung_nodule,
                               liver_cyst,   kidney_stone,     bladder_wall_thickening};
  for (FindingKind kind : order) {
    if (!present[size_t(kind)]) continue;
    Sampler ks = stream(kind);
    switch (kind) {
      case lung_nodule:
        detail::place_nodule(a, ks);
        break;
      case pleural_effusion:
        detail::place_pleural_effusion(a, ks);
        break;
      case pericardial_effusion:
        detail::place_pericardial_effusion(a, ks);
        break;
      case liver_cyst:
        detail::place_liver_cyst(a, ks);
        break;
      case kidney_stone:
        detail::place_kidney_stone(a, ks);
        break;
      case splenomegaly:
        detail::place_splenomegaly(a, ks);
        break;
      case bladder_wall_thickening:
        detail::place_bladder_thickening(a, ks);
        break;
    }
  }
  std::stable_sort(a.findings.begin(), a.findings.end(),
                   [](const Finding& x, const Finding& y) { return x.kind < y.kind; });
  return a;
}

}  // namespace ctmllm::data
