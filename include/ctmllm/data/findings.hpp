#pragma once
// The vocabulary of the synthetic CT world (docs/SYNTHETIC_CT.md): report regions, the label-map
// values of organs and findings, the finding kinds with their size ranges, and one finding as the
// generator records it (and as the per-case finding list JSON stores it).
//
// Sizes are chosen for the model input grid below: the demo's vision encoder sees a volume
// resized to 32x64x64, i.e. 10x6x6 mm voxels for the default 64x128x128 phantom at 5x3x3 mm.
// A finding only a voxel or two wide there is not learnable, so every focal finding is at least
// 24 mm across (>= 2 model voxels in z, >= 3 in y and x); tests/data_world checks it.
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/core/error.hpp"

namespace ctmllm::data {

// The three report sections of AMOS-MM, in report order.
enum class Region : uint8_t { chest, abdomen, pelvis };
inline constexpr std::array<Region, 3> kRegions = {Region::chest, Region::abdomen, Region::pelvis};

inline const char* region_name(Region r) {
  switch (r) {
    case Region::chest:
      return "chest";
    case Region::abdomen:
      return "abdomen";
    case Region::pelvis:
      return "pelvis";
  }
  return "?";
}

inline Region parse_region(std::string_view name) {
  for (Region r : kRegions)
    if (name == region_name(r)) return r;
  fail("unknown report region '", name, "' (expected chest, abdomen or pelvis)");
}

// Label-map values (uint8). The organ mask (the segmentation-mask input of the MLLM) holds organ
// ids only; the label map also overwrites each finding's voxels with the finding's id.
namespace label {
inline constexpr uint8_t background = 0, body = 1, lung_right = 2, lung_left = 3, heart = 4, aorta = 5, liver = 6,
                         spleen = 7, kidney_right = 8, kidney_left = 9, bladder = 10, spine = 11, ribs = 12,
                         pelvic_bones = 13, trachea = 14;
inline constexpr int kNumOrgans = 15;         // ids 0..14
inline constexpr uint8_t kFirstFinding = 21;  // finding kind k has id 21 + k
}  // namespace label

inline const char* organ_name(uint8_t id) {
  static constexpr const char* kNames[label::kNumOrgans] = {
      "background", "body",  "right lung",       "left lung",    "heart",
      "aorta",      "liver", "spleen",           "right kidney", "left kidney",
      "bladder",    "spine", "ribs and sternum", "pelvic bones", "trachea"};
  CTMLLM_CHECK(id < label::kNumOrgans, "organ_name: ", int(id), " is not an organ label (0..", label::kNumOrgans - 1,
               ")");
  return kNames[id];
}

enum class FindingKind : uint8_t {
  lung_nodule,
  pleural_effusion,
  pericardial_effusion,
  liver_cyst,
  kidney_stone,
  splenomegaly,
  bladder_wall_thickening,
};
inline constexpr int kNumFindingKinds = 7;

struct FindingKindInfo {
  FindingKind kind;
  const char* name;        // snake_case, as in JSON
  Region region;           // the report section that describes it
  const char* size_means;  // what Finding::size_mm measures
  double min_size_mm, max_size_mm;
};

inline constexpr std::array<FindingKindInfo, kNumFindingKinds> kFindingKinds = {{
    {FindingKind::lung_nodule, "lung_nodule", Region::chest, "diameter", 32, 44},
    {FindingKind::pleural_effusion, "pleural_effusion", Region::chest, "maximal depth", 25, 60},
    {FindingKind::pericardial_effusion, "pericardial_effusion", Region::chest, "maximal thickness", 14, 24},
    {FindingKind::liver_cyst, "liver_cyst", Region::abdomen, "diameter", 36, 60},
    {FindingKind::kidney_stone, "kidney_stone", Region::abdomen, "diameter", 30, 38},
    {FindingKind::splenomegaly, "splenomegaly", Region::abdomen, "spleen length", 130, 185},
    {FindingKind::bladder_wall_thickening, "bladder_wall_thickening", Region::pelvis, "wall thickness", 16, 24},
}};

inline const FindingKindInfo& kind_info(FindingKind k) { return kFindingKinds[size_t(k)]; }
inline const char* kind_name(FindingKind k) { return kind_info(k).name; }
inline uint8_t kind_label(FindingKind k) { return uint8_t(label::kFirstFinding + int(k)); }

inline FindingKind parse_finding_kind(std::string_view name) {
  for (const auto& k : kFindingKinds)
    if (name == k.name) return k.kind;
  fail("unknown finding kind '", name, "'");
}

// The model input grid the finding sizes were chosen for, and the extent (z, y, x) in model
// voxels that every finding reaches there: counting model voxels at least half filled by it.
inline constexpr std::array<int64_t, 3> kModelInputShape = {32, 64, 64};
inline constexpr std::array<int64_t, 3> kMinFindingModelVoxels = {3, 4, 4};

// One finding of one case.
struct Finding {
  FindingKind kind = FindingKind::lung_nodule;
  std::string organ;                  // "right lung", "left kidney", "bladder", ...
  std::string side;                   // "left", "right", "bilateral", or "" where laterality does not apply
  std::string location;               // "right upper lobe", "lower pole", "posterior wall", "diffuse", ...
  double size_mm = 0;                 // see FindingKindInfo::size_means; rounded to 0.1 mm
  std::array<double, 3> center_mm{};  // world x, y, z (RAS, the NIfTI affine's frame)

  Region region() const { return kind_info(kind).region; }
  uint8_t label() const { return kind_label(kind); }
};

// The organ ids (label::) a finding lies in: its voxels carry one of these in the organ mask.
inline std::vector<uint8_t> finding_organs(const Finding& f) {
  const bool right = f.side == "right", both = f.side == "bilateral";
  switch (f.kind) {
    case FindingKind::lung_nodule:
    case FindingKind::pleural_effusion:
      if (both) return {label::lung_right, label::lung_left};
      return {right ? label::lung_right : label::lung_left};
    case FindingKind::pericardial_effusion:
      return {label::heart};
    case FindingKind::liver_cyst:
      return {label::liver};
    case FindingKind::kidney_stone:
      return {right ? label::kidney_right : label::kidney_left};
    case FindingKind::splenomegaly:
      return {label::spleen};
    case FindingKind::bladder_wall_thickening:
      return {label::bladder};
  }
  return {};
}

inline nlohmann::ordered_json finding_to_json(const Finding& f) {
  nlohmann::ordered_json j;
  j["kind"] = kind_name(f.kind);
  j["region"] = region_name(f.region());
  j["organ"] = f.organ;
  j["side"] = f.side;
  j["location"] = f.location;
  j["size_mm"] = f.size_mm;
  j["label"] = f.label();
  j["center_mm"] = f.center_mm;
  return j;
}

// `where` names the file in errors.
inline Finding finding_from_json(const nlohmann::json& j, const std::string& where) {
  try {
    Finding f;
    f.kind = parse_finding_kind(j.at("kind").get<std::string>());
    f.organ = j.at("organ").get<std::string>();
    f.side = j.at("side").get<std::string>();
    f.location = j.at("location").get<std::string>();
    f.size_mm = j.at("size_mm").get<double>();
    f.center_mm = j.at("center_mm").get<std::array<double, 3>>();
    CTMLLM_CHECK(j.value("region", std::string(region_name(f.region()))) == region_name(f.region()),
                 "region does not match kind ", kind_name(f.kind));
    return f;
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": bad finding ", j.dump(), ": ", e.what());
  } catch (const Error& e) {
    fail(where, ": bad finding ", j.dump(), ": ", e.what());
  }
}

}  // namespace ctmllm::data
