#pragma once
// Region reports of a corpus, as `ctmllm eval` reads predictions and references:
//   {"case_id": {"chest": "...", "abdomen": "...", "pelvis": "..."}, ...}
// or, per case, an AMOS-MM report object {"findings": {"chest": ..., ...}, "impression": ...}
// (the impression is not scored). A missing region or null is an empty text; any other region
// name is an Error naming the file and case.
#include <array>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/json_file.hpp"

namespace ctmllm::eval {

inline constexpr std::array<const char*, 3> kReportRegions = {"chest", "abdomen", "pelvis"};

using RegionTexts = std::map<std::string, std::string>;     // region -> findings text
using RegionReports = std::map<std::string, RegionTexts>;   // case id -> its regions

inline RegionReports region_reports_from_json(const nlohmann::json& j, const std::string& source) {
  CTMLLM_CHECK(j.is_object(), source, ": expected an object {\"case_id\": {\"chest\": ..., \"abdomen\": ..., \"pelvis\": ...}}");
  RegionReports out;
  for (const auto& [id, value] : j.items()) {
    CTMLLM_CHECK(value.is_object(), source, ": case '", id, "' must be an object of region texts");
    const bool report_shape = value.contains("findings") && value["findings"].is_object();
    const nlohmann::json& regions = report_shape ? value["findings"] : value;
    if (report_shape)
      for (const auto& [key, _] : value.items())
        CTMLLM_CHECK(key == "findings" || key == "impression", source, ": case '", id, "': unknown key '", key, "'");
    RegionTexts& texts = out[id];
    for (const auto& [region, text] : regions.items()) {
      bool known = false;
      for (const char* r : kReportRegions) known = known || region == r;
      CTMLLM_CHECK(known, source, ": case '", id, "': unknown region '", region, "' (chest, abdomen or pelvis)");
      CTMLLM_CHECK(text.is_string() || text.is_null(), source, ": case '", id, "': ", region, " must be a string or null");
      texts[region] = text.is_string() ? text.get<std::string>() : "";
    }
  }
  return out;
}

inline RegionReports read_region_reports(const std::string& path) {
  return region_reports_from_json(text::read_json_file(path), path);
}

}  // namespace ctmllm::eval
