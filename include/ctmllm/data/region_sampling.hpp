#pragma once
// The paper's region rule (PAPER.md, training protocol): each training step describes one report
// region per case, drawn chest 0.7 / pelvis 0.2 / abdomen 0.1 when all three regions have findings
// text, and uniformly among the regions present otherwise. Present means non-blank findings text.
// The weights for "all three present" are a setting (kPaperRegionWeights by default): the paper's
// favour the chest, where its AMOS-MM reports hold most findings; the synthetic world spreads its
// findings over the three regions, and the demo draws them evenly.
// Note the rule is not "renormalise 0.7/0.2/0.1 over the present ones": a case with chest and
// pelvis only gets 0.5/0.5, not 0.78/0.22.
#include <array>
#include <cmath>
#include <optional>
#include <string>

#include "ctmllm/core/error.hpp"
#include "ctmllm/data/amos.hpp"
#include "ctmllm/data/findings.hpp"

namespace ctmllm::data {

using RegionProbabilities = std::array<double, 3>;  // indexed by Region

inline bool has_findings_text(const std::string& s) { return s.find_first_not_of(" \t\r\n") != std::string::npos; }

inline std::array<bool, 3> regions_present(const AmosCase& c) {
  std::array<bool, 3> present{};
  for (Region r : kRegions) present[size_t(r)] = has_findings_text(c.region(r));
  return present;
}

inline constexpr RegionProbabilities kPaperRegionWeights = [] {
  RegionProbabilities p{};
  p[size_t(Region::chest)] = 0.7;
  p[size_t(Region::pelvis)] = 0.2;
  p[size_t(Region::abdomen)] = 0.1;
  return p;
}();

// An Error naming `source` unless the weights are >= 0 and sum to 1.
inline void check_region_weights(const RegionProbabilities& w, const std::string& source) {
  CTMLLM_CHECK(w[0] >= 0 && w[1] >= 0 && w[2] >= 0 && std::abs(w[0] + w[1] + w[2] - 1) < 1e-9, source,
               ": region weights must be >= 0 and sum to 1, got chest ", w[size_t(Region::chest)], ", abdomen ",
               w[size_t(Region::abdomen)], ", pelvis ", w[size_t(Region::pelvis)]);
}

// All zeros when no region is present (such a case has nothing to train on).
inline RegionProbabilities region_probabilities(const std::array<bool, 3>& present,
                                                const RegionProbabilities& all_present = kPaperRegionWeights) {
  const int n = int(present[0]) + int(present[1]) + int(present[2]);
  RegionProbabilities p{};
  if (n == 3) {
    p = all_present;
  } else {
    for (size_t i = 0; i < 3; ++i) p[i] = present[i] ? 1.0 / n : 0.0;
  }
  return p;
}

// The region a uniform draw u in [0, 1) selects (inverse CDF in Region order); nullopt when every
// probability is zero.
inline std::optional<Region> pick_region(const RegionProbabilities& p, double u) {
  CTMLLM_CHECK(u >= 0 && u < 1, "pick_region: the draw must lie in [0, 1), got ", u);
  std::optional<Region> last;
  double cdf = 0;
  for (Region r : kRegions) {
    if (p[size_t(r)] <= 0) continue;
    cdf += p[size_t(r)];
    last = r;
    if (u < cdf) return r;
  }
  return last;  // rounding left u above the total: the last present region
}

}  // namespace ctmllm::data
