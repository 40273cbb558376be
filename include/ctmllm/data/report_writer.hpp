#pragma once
// Ground-truth radiology reports for the synthetic world, in the style of AMOS-MM: findings text per
// region (chest, abdomen, pelvis) that states each finding with its location and size, and the
// normal organs as real reports do, plus a short impression. Every sentence is one of several
// templates chosen by the seed. Positive sentences carry a pattern of finding_table.hpp and no
// negation cue; absences are written as a cue before a pattern (or do not name the finding).
// An organ's finding sentences and its normal sentences never begin with the same word, and most
// finding sentences of an organ share their first word: the decision "finding or not" falls on the
// first word of the organ's sentence. Greedy decoding picks the likeliest next word, not the
// likeliest meaning: when "The urinary bladder wall is diffusely thickened" and "The urinary bladder
// wall is smooth" shared their start, a trained model's belief in a finding was split over many
// continuations and lost to the normal sentence (docs/SYNTHETIC_CT.md, "Report phrasing").
#include <array>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "ctmllm/data/findings.hpp"
#include "ctmllm/data/sampler.hpp"

namespace ctmllm::data {

struct Report {
  std::array<std::string, 3> findings;  // per Region, in kRegions order
  std::string impression;
  const std::string& region(Region r) const { return findings[size_t(r)]; }
};

// A size as reports write it: "2.4 cm" or "24 mm".
inline std::string size_text(double mm, bool cm) {
  char buf[32];
  if (cm)
    std::snprintf(buf, sizeof buf, "%.1f cm", mm / 10.0);
  else
    std::snprintf(buf, sizeof buf, "%d mm", int(std::lround(mm)));
  return buf;
}

namespace detail {

inline std::string replace_all(std::string s, std::string_view key, std::string_view value) {
  for (size_t at = s.find(key); at != std::string::npos; at = s.find(key, at + value.size()))
    s.replace(at, key.size(), value);
  return s;
}

inline std::string capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = char(s[0] - 'a' + 'A');
  return s;
}

// The clinical grade words of the sized findings.
inline const char* degree(const Finding& f) {
  switch (f.kind) {
    case FindingKind::pleural_effusion:
      return f.size_mm < 35 ? "small" : f.size_mm < 48 ? "moderate" : "large";
    case FindingKind::pericardial_effusion:
      return f.size_mm <= 20 ? "moderate" : "large";
    case FindingKind::splenomegaly:
      return f.size_mm < 150 ? "mild" : f.size_mm < 165 ? "moderate" : "marked";
    default:
      return "";
  }
}

// Writes sentences from templates: {size}, {loc}, {side}, {other}, {degree}, {wall} are filled
// from the finding; {Side} and {Degree} are the capitalized forms.
class Phrasing {
 public:
  explicit Phrasing(uint64_t seed) : s_(seed), cm_(s_.chance(0.5)) {}

  std::string pick(std::initializer_list<const char*> options) {
    return *(options.begin() + s_.index(int(options.size())));
  }
  std::string fill(std::string t, const Finding& f) {
    const std::string deg = degree(f), wall = replace_all(f.location, " wall", "");
    t = replace_all(t, "{size}", size_text(f.size_mm, cm_));
    t = replace_all(t, "{loc}", f.location);
    t = replace_all(t, "{side}", f.side);
    t = replace_all(t, "{Side}", capitalized(f.side));
    t = replace_all(t, "{other}", f.side == "left" ? "right" : "left");
    t = replace_all(t, "{degree}", deg);
    t = replace_all(t, "{Degree}", capitalized(deg));
    t = replace_all(t, "{wall}", wall);
    return t;
  }
  std::string say(std::initializer_list<const char*> options, const Finding& f) { return fill(pick(options), f); }
  std::string size(double mm) const { return size_text(mm, cm_); }

 private:
  Sampler s_;
  bool cm_;  // sizes in cm ("2.4 cm") or mm ("24 mm"), one style per report
};

inline std::string joined(const std::vector<std::string>& sentences) {
  std::string out;
  for (const auto& s : sentences) out += (out.empty() ? "" : " ") + s;
  return out;
}

inline std::vector<std::string> chest(Phrasing& p, const Finding* nodule, const Finding* pleural,
                                      const Finding* pericardial) {
  std::vector<std::string> out;
  out.push_back(p.pick({"The thorax is symmetrical.", "The chest is symmetric.", "The thoracic cage is symmetrical."}));
  out.push_back(p.pick({"The trachea and main bronchi are patent.", "The trachea and main bronchi are unobstructed.",
                        "The central airways are patent."}));
  if (!nodule && !pleural)
    out.push_back(p.pick(
        {"Both lungs are clear.", "The lung fields are clear bilaterally.", "The lungs are well aerated and clear."}));
  if (nodule)
    out.push_back(p.say(
        {"A solid nodule measuring {size} is seen in the {loc}.", "There is a {size} soft-tissue nodule in the {loc}.",
         "A well-circumscribed pulmonary nodule, approximately {size} in diameter, is present in the {loc}.",
         "In the {loc} there is a rounded nodular opacity measuring {size}."},
        *nodule));
  else
    out.push_back(p.pick({"No pulmonary nodules or masses are seen.", "No nodules are identified in either lung.",
                          "No suspicious pulmonary nodules are seen."}));
  if (pleural && pleural->side == "bilateral")
    out.push_back(p.say({"Bilateral {degree} pleural effusions are present, up to {size} deep.",
                         "There are {degree} bilateral pleural effusions with a maximal depth of {size}.",
                         "{Degree} pleural effusions are seen on both sides, measuring up to {size} in depth."},
                        *pleural));
  else if (pleural)
    out.push_back(p.say({"A {degree} {side} pleural effusion is present, with a maximal depth of {size}.",
                         "There is a {degree} {side}-sided pleural effusion measuring {size} in depth.",
                         "{Side} pleural effusion, {degree}, layering posteriorly with a depth of {size}."},
                        *pleural));
  else
    out.push_back(p.pick({"No pleural effusion is seen.", "The pleural spaces are clear, with no effusion.",
                          "No pleural effusion or pneumothorax is present."}));
  if (pericardial)
    out.push_back(p.say({"A {degree} pericardial effusion is present, measuring up to {size} in thickness.",
                         "There is a {degree} circumferential pericardial effusion with a maximal thickness of {size}.",
                         "Pericardial effusion is noted around the heart, up to {size} thick."},
                        *pericardial));
  else
    out.push_back(p.pick({"The heart is normal in size, without pericardial effusion.",
                          "Heart size is normal and there is no pericardial effusion.",
                          "The heart is not enlarged, and no pericardial effusion is seen."}));
  out.push_back(p.pick({"No enlarged mediastinal or hilar lymph nodes are seen.",
                        "The mediastinum is midline, without lymphadenopathy.",
                        "There is no mediastinal or hilar lymphadenopathy."}));
  out.push_back(p.pick({"The thoracic aorta is normal in caliber.", "The thoracic aorta is of normal caliber."}));
  out.push_back(p.pick({"The visualized ribs and thoracic spine are intact.",
                        "No destructive lesions are seen in the ribs or thoracic spine."}));
  return out;
}

inline std::vector<std::string> abdomen(Phrasing& p, const Finding* cyst, const Finding* stone, const Finding* spleen) {
  std::vector<std::string> out;
  if (cyst) {
    out.push_back(p.say({"There is a well-circumscribed cyst measuring {size} in the {loc}.",
                         "There is a {size} simple cyst in the {loc}.",
                         "There is a round low-attenuation lesion of {size} with fluid density in the {loc}, "
                         "consistent with a hepatic cyst.",
                         "In the {loc} there is a {size} cystic lesion with a thin wall."},
                        *cyst));
    out.push_back(p.pick({"The liver is otherwise normal in size and contour.", "The liver is otherwise unremarkable.",
                          "Otherwise the liver is normal in size."}));
  } else {
    out.push_back(p.pick({"The liver is normal in size and density, with no cysts or focal lesions.",
                          "Liver size and attenuation are normal, without a cyst or focal lesion.",
                          "No hepatic cyst or mass is seen, and the liver is normal in size."}));
  }
  if (spleen)
    out.push_back(p.say({"Splenomegaly is present, the spleen measuring {size} in length.",
                         "{Degree} splenomegaly is present, with a splenic length of {size}.",
                         "Splenomegaly is seen; the spleen measures {size} in length."},
                        *spleen));
  else
    out.push_back(p.pick({"The spleen is normal in size and density.", "There is no splenomegaly.",
                          "Spleen size is normal, without splenomegaly."}));
  if (stone) {
    out.push_back(p.say({"There is a {size} calculus in the {loc} of the {side} kidney.",
                         "There is a {size} dense stone in the {side} kidney, {loc}.",
                         "{Side} nephrolithiasis is present, with a {size} calculus in the {loc}."},
                        *stone));
    out.push_back(
        p.say({"The {other} kidney is normal in size and position.", "The {other} kidney is unremarkable."}, *stone));
    out.push_back(p.pick({"No hydronephrosis is seen.", "There is no hydronephrosis."}));
  } else {
    out.push_back(p.pick({"Both kidneys are normal in size and position, with no renal calculi or hydronephrosis.",
                          "No renal calculi or hydronephrosis are seen in either kidney.",
                          "The kidneys are normal in size, without stones or hydronephrosis."}));
  }
  out.push_back(p.pick({"The abdominal aorta is normal in caliber.", "No abdominal aortic aneurysm is seen."}));
  out.push_back(
      p.pick({"No enlarged retroperitoneal lymph nodes are seen.", "There is no retroperitoneal lymphadenopathy."}));
  out.push_back(p.pick({"No ascites is seen.", "There is no free fluid in the abdomen."}));
  return out;
}

inline std::vector<std::string> pelvis(Phrasing& p, const Finding* wall) {
  std::vector<std::string> out;
  if (wall && wall->location == "diffuse")
    out.push_back(p.say({"There is diffuse thickening of the urinary bladder wall, measuring up to {size}.",
                         "Diffuse bladder wall thickening is present, up to {size} thick.",
                         "There is circumferential thickening of the bladder wall, up to {size}."},
                        *wall));
  else if (wall)
    out.push_back(p.say({"Focal thickening of the {wall} bladder wall is seen, measuring up to {size}.",
                         "There is focal thickening of the {wall} wall of the bladder, up to {size}.",
                         "There is focal bladder wall thickening along the {wall} wall, measuring {size}."},
                        *wall));
  else
    out.push_back(
        p.pick({"The bladder is well distended, with no wall thickening.",
                "Bladder wall thickness is normal, with no thickening.", "No bladder wall thickening is seen."}));
  out.push_back(p.pick({"No free fluid is seen in the pelvis.", "There is no pelvic free fluid."}));
  out.push_back(p.pick({"No enlarged pelvic lymph nodes are seen.", "There is no pelvic lymphadenopathy."}));
  out.push_back(
      p.pick({"The pelvic bones and hip joints are intact.", "No destructive lesions are seen in the pelvic bones."}));
  return out;
}

inline std::string impression_line(Phrasing& p, const Finding& f) {
  switch (f.kind) {
    case FindingKind::lung_nodule:
      return p.fill("{size} pulmonary nodule in the {loc}.", f);
    case FindingKind::pleural_effusion:
      return p.fill(
          f.side == "bilateral" ? "{Degree} bilateral pleural effusions." : "{Degree} {side} pleural effusion.", f);
    case FindingKind::pericardial_effusion:
      return p.fill("{Degree} pericardial effusion.", f);
    case FindingKind::liver_cyst:
      return p.fill("Simple cyst in the {loc}.", f);
    case FindingKind::kidney_stone:
      return p.fill("{Side} renal calculus ({size}).", f);
    case FindingKind::splenomegaly:
      return p.fill("{Degree} splenomegaly.", f);
    case FindingKind::bladder_wall_thickening:
      return p.fill(
          f.location == "diffuse" ? "Diffuse bladder wall thickening." : "Focal thickening of the {wall} bladder wall.",
          f);
  }
  return "";
}

}  // namespace detail

// The report of a case with these findings (at most one per kind); `seed` picks the phrasing.
inline Report write_report(const std::vector<Finding>& findings, uint64_t seed) {
  const Finding* by_kind[kNumFindingKinds] = {};
  for (const Finding& f : findings) {
    CTMLLM_CHECK(!by_kind[size_t(f.kind)], "write_report: two findings of kind ", kind_name(f.kind),
                 " (the synthetic world has at most one per kind)");
    by_kind[size_t(f.kind)] = &f;
  }
  auto of = [&](FindingKind k) { return by_kind[size_t(k)]; };
  using enum FindingKind;
  detail::Phrasing p(seed);
  Report r;
  r.findings[size_t(Region::chest)] =
      detail::joined(detail::chest(p, of(lung_nodule), of(pleural_effusion), of(pericardial_effusion)));
  r.findings[size_t(Region::abdomen)] =
      detail::joined(detail::abdomen(p, of(liver_cyst), of(kidney_stone), of(splenomegaly)));
  r.findings[size_t(Region::pelvis)] = detail::joined(detail::pelvis(p, of(bladder_wall_thickening)));
  std::vector<std::string> lines;
  for (const Finding* f : by_kind)
    if (f) lines.push_back(detail::capitalized(detail::impression_line(p, *f)));
  r.impression = lines.empty() ? p.pick({"No significant abnormality in the chest, abdomen or pelvis.",
                                         "Normal CT of the chest, abdomen and pelvis."})
                               : detail::joined(lines);
  return r;
}

}  // namespace ctmllm::data
