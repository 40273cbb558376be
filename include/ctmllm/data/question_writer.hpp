#pragma once
// Ground-truth questions for the synthetic world (docs/SYNTHETIC_CT.md "Questions"): per case, one
// yes/no question per finding kind, phrased by one of a few templates chosen by the seed, answered
// "Yes." or "No." from the case's finding list and tagged with the kind's region; then the default
// focused-inference fluid question (augment::FocusedInferenceConfig::defaults()), so a model trained
// on them answers `ctmllm report --focused` as asked. synthetic_focused_questions() is the focused
// inference config of this world: one question per kind, its "yes" sentence a positive finding.
#include <array>
#include <initializer_list>
#include <string>
#include <vector>

#include "ctmllm/augment/focused_inference.hpp"
#include "ctmllm/data/findings.hpp"
#include "ctmllm/data/questions.hpp"
#include "ctmllm/data/sampler.hpp"

namespace ctmllm::data {

namespace detail {

struct KindQuestions {
  std::array<const char*, 3> phrasings;  // the first is the focused-inference question
  const char* sentence;                  // a positive statement (the labeller finds the kind in it)
};

inline const KindQuestions& kind_questions(FindingKind k) {
  static const std::array<KindQuestions, kNumFindingKinds> table = {{
      {{"Is there a nodule in either lung?", "Are any pulmonary nodules present?",
        "Does either lung contain a nodule?"},
       "A pulmonary nodule is present."},
      {{"Is there a pleural effusion?", "Is there fluid in either pleural space?",
        "Does the patient have a pleural effusion?"},
       "A pleural effusion is present."},
      {{"Is there a pericardial effusion?", "Is there fluid around the heart?", "Does the pericardium contain fluid?"},
       "A pericardial effusion is present."},
      {{"Does the liver contain a cyst?", "Is there a hepatic cyst?", "Is a cystic lesion seen in the liver?"},
       "A cyst is present in the liver."},
      {{"Is there a kidney stone?", "Does either kidney contain a calculus?", "Is there evidence of nephrolithiasis?"},
       "A renal calculus is present."},
      {{"Is the spleen enlarged?", "Is there splenomegaly?", "Is the spleen larger than normal?"},
       "Splenomegaly is present."},
      {{"Is the bladder wall thickened?", "Is there bladder wall thickening?",
        "Does the urinary bladder show wall thickening?"},
       "Bladder wall thickening is present."},
  }};
  return table[size_t(k)];
}

inline const char* yes_no(bool yes) { return yes ? "Yes." : "No."; }

}  // namespace detail

// The questions of a case with these findings; `seed` picks the phrasing.
inline std::vector<Question> write_questions(const std::vector<Finding>& findings, uint64_t seed) {
  std::array<bool, kNumFindingKinds> present{};
  for (const Finding& f : findings) present[size_t(f.kind)] = true;
  Sampler s(seed);
  std::vector<Question> out;
  for (const auto& k : kFindingKinds) {
    const auto& phrasings = detail::kind_questions(k.kind).phrasings;
    const char* phrasing = phrasings[size_t(s.index(int(phrasings.size())))];
    out.push_back({phrasing, detail::yes_no(present[size_t(k.kind)]), k.region, {}});
  }
  // The defaults' other chest question (patchy, linear or high-density lung opacities) is left out:
  // whether this world's round nodules count as such opacities is a judgement the data should not make.
  const std::string fluid = augment::FocusedInferenceConfig::defaults().region("chest").questions.front().question;
  using enum FindingKind;
  out.push_back({fluid, detail::yes_no(present[size_t(pleural_effusion)] || present[size_t(pericardial_effusion)]),
                 Region::chest, {}});
  return out;
}

// Focused inference for this world: the default system prompts, and per region one question per
// finding kind whose "yes" puts a positive sentence of that kind in front of the region's report.
inline augment::FocusedInferenceConfig synthetic_focused_questions() {
  augment::FocusedInferenceConfig c = augment::FocusedInferenceConfig::defaults();
  for (auto& [name, region] : c.regions) region.questions.clear();
  for (const auto& k : kFindingKinds) {
    const detail::KindQuestions& q = detail::kind_questions(k.kind);
    c.regions.at(region_name(k.region)).questions.push_back({q.phrasings[0], q.sentence});
  }
  return c;
}

}  // namespace ctmllm::data
