#pragma once
// The AMOS-MM report-generation layout (docs/SYNTHETIC_CT.md): a dataset JSON listing training and
// validation cases, each with a CT image, optionally a segmentation mask and a label map, and a
// report with findings per region. AMOS-MM itself ships one JSON ("training"/"validation" entries
// with "image" and an inline "labels": {"report": {"findings": {"chest", "abdomen", "pelvis"},
// "impression"}}); the synthetic writer keeps each report in its own file and adds the mask, the
// label map and the ground-truth finding list. The reader accepts both forms.
// Questions (questions.hpp) come the same two ways: AMOS-MM's VQA records hold them inline as
// "labels": {"qa": [...]} (its VQA JSON lists the same cases by "image": merge the "qa" lists into
// the report entries), the synthetic writer puts them in a per-case "question_list" file
// {"id", "qa": [...]}. A case that lists neither has no questions.
#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/data/findings.hpp"
#include "ctmllm/data/questions.hpp"
#include "ctmllm/data/report_writer.hpp"

namespace ctmllm::data {

// One case, with its file paths resolved against the dataset JSON's folder; optional files that
// the dataset does not list are empty strings.
struct AmosCase {
  std::string id;
  std::string image;                    // CT, .nii.gz in Hounsfield units
  std::string mask;                     // organ mask (the segmentation-mask input), optional
  std::string label;                    // organ + finding label map, optional
  std::string report;                   // report JSON, empty when the report was inline
  std::string finding_list;             // ground-truth finding list JSON, optional
  std::string question_list;            // question list JSON, empty when the questions were inline or absent
  std::array<std::string, 3> findings;  // report findings text per Region ("" when absent)
  std::string impression;
  std::vector<Question> questions;
  const std::string& region(Region r) const { return findings[size_t(r)]; }
};

struct AmosDataset {
  std::string root;  // the dataset JSON's folder
  std::vector<AmosCase> training, validation;
};

namespace detail {

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CTMLLM_CHECK(in.good(), path, ": cannot open JSON file");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  CTMLLM_CHECK(out.good(), path, ": cannot open for writing");
  out << text;
  out.close();
  CTMLLM_CHECK(out.good(), path, ": write failed");
}

}  // namespace detail

// The per-case question list: {"id": ..., "qa": [...]} (see questions.hpp).
inline void write_question_list(const std::string& path, const std::string& id, const std::vector<Question>& questions) {
  nlohmann::ordered_json j;
  j["id"] = id;
  j["qa"] = nlohmann::ordered_json::array();
  for (const Question& q : questions) j["qa"].push_back(question_to_json(q));
  detail::write_text(path, j.dump(2) + "\n");
}

inline std::vector<Question> read_question_list(const std::string& path) {
  const nlohmann::json j = detail::read_json(path);
  CTMLLM_CHECK(j.is_object() && j.contains("qa"), path, ": expected an object with a \"qa\" list");
  return questions_from_json(j["qa"], path);
}

namespace detail {

// A report object {"findings": {"chest": ..., "abdomen": ..., "pelvis": ...}, "impression": ...}
// into `c`. Regions may be missing or null (empty); other keys in "findings" are errors.
inline void parse_report(const nlohmann::json& r, const std::string& where, AmosCase& c) {
  CTMLLM_CHECK(r.is_object() && r.contains("findings") && r["findings"].is_object(), where,
               ": a report must be an object with a \"findings\" object");
  for (const auto& [key, value] : r["findings"].items()) {
    const Region region = [&] {
      try {
        return parse_region(key);
      } catch (const Error& e) {
        fail(where, ": ", e.what());
      }
    }();
    CTMLLM_CHECK(value.is_string() || value.is_null(), where, ": findings.", key, " must be a string or null");
    c.findings[size_t(region)] = value.is_string() ? value.get<std::string>() : "";
  }
  // The impression is a string, or per region (joined in region order).
  if (!r.contains("impression") || r["impression"].is_null()) return;
  const auto& imp = r["impression"];
  if (imp.is_string()) {
    c.impression = imp.get<std::string>();
    return;
  }
  CTMLLM_CHECK(imp.is_object(), where, ": impression must be a string, an object of region texts, or null");
  for (Region region : kRegions) {
    if (!imp.contains(region_name(region)) || imp[region_name(region)].is_null()) continue;
    CTMLLM_CHECK(imp[region_name(region)].is_string(), where, ": impression.", region_name(region),
                 " must be a string");
    c.impression += (c.impression.empty() ? "" : " ") + imp[region_name(region)].get<std::string>();
  }
}

inline std::string resolved(const std::filesystem::path& root, const std::string& p) {
  const std::filesystem::path path(p);
  return (path.is_absolute() ? path : root / path).lexically_normal().string();
}

inline AmosCase parse_case(const nlohmann::json& e, const std::filesystem::path& root, const std::string& where) {
  CTMLLM_CHECK(e.is_object() && e.contains("image") && e["image"].is_string(), where,
               ": each case needs an \"image\" path");
  AmosCase c;
  c.image = resolved(root, e["image"].get<std::string>());
  if (e.contains("id")) {
    CTMLLM_CHECK(e["id"].is_string(), where, ": \"id\" must be a string");
    c.id = e["id"].get<std::string>();
  } else {  // AMOS-MM names cases by their image file: amos_0001.nii.gz -> amos_0001
    std::string name = std::filesystem::path(c.image).filename().string();
    for (const char* ext : {".nii.gz", ".nii"})
      if (name.size() > std::string(ext).size() && name.ends_with(ext))
        name.resize(name.size() - std::string(ext).size());
    c.id = name;
  }
  const std::string at = where + " case " + c.id;
  auto optional_path = [&](const char* key, std::string& out) {
    if (!e.contains(key) || e[key].is_null()) return;
    CTMLLM_CHECK(e[key].is_string(), at, ": \"", key, "\" must be a path");
    out = resolved(root, e[key].get<std::string>());
  };
  optional_path("mask", c.mask);
  optional_path("label", c.label);
  optional_path("report", c.report);
  optional_path("finding_list", c.finding_list);
  optional_path("question_list", c.question_list);
  for (const std::string* p : {&c.image, &c.mask, &c.label, &c.report, &c.finding_list, &c.question_list})
    CTMLLM_CHECK(p->empty() || std::filesystem::is_regular_file(*p), at, ": missing file ", *p);
  const bool inline_qa = e.contains("labels") && e["labels"].is_object() && e["labels"].contains("qa");
  CTMLLM_CHECK(!inline_qa || c.question_list.empty(), at,
               ": give the questions inline (\"labels\": {\"qa\": ...}) or as a \"question_list\" file, not both");
  if (!c.question_list.empty()) c.questions = read_question_list(c.question_list);
  if (inline_qa) c.questions = questions_from_json(e["labels"]["qa"], at);
  if (!c.report.empty()) {
    parse_report(read_json(c.report), c.report, c);
  } else {
    CTMLLM_CHECK(e.contains("labels") && e["labels"].is_object() && e["labels"].contains("report"), at,
                 ": needs a \"report\" file or an inline \"labels\": {\"report\": ...}");
    parse_report(e["labels"]["report"], at, c);
  }
  return c;
}

}  // namespace detail

// Reads a dataset JSON and its reports; every file a case lists must exist (else an Error naming it).
inline AmosDataset read_amos_dataset(const std::string& dataset_json) {
  const nlohmann::json j = detail::read_json(dataset_json);
  CTMLLM_CHECK(j.is_object() && (j.contains("training") || j.contains("validation")), dataset_json,
               ": expected an object with \"training\" and/or \"validation\" case lists");
  AmosDataset d;
  const std::filesystem::path root = std::filesystem::path(dataset_json).parent_path();
  d.root = root.string();
  for (const char* split : {"training", "validation"}) {
    if (!j.contains(split)) continue;
    CTMLLM_CHECK(j[split].is_array(), dataset_json, ": \"", split, "\" must be a list of cases");
    auto& out = std::string(split) == "training" ? d.training : d.validation;
    for (const auto& e : j[split]) out.push_back(detail::parse_case(e, root, dataset_json));
  }
  return d;
}

inline nlohmann::ordered_json report_to_json(const Report& r) {
  nlohmann::ordered_json j;
  for (Region region : kRegions) j["findings"][region_name(region)] = r.region(region);
  j["impression"] = r.impression;
  return j;
}

inline void write_report_json(const std::string& path, const Report& r) {
  detail::write_text(path, report_to_json(r).dump(2) + "\n");
}

// The per-case ground-truth finding list: {"id": ..., "findings": [...]} (see finding_to_json).
inline void write_finding_list(const std::string& path, const std::string& id, const std::vector<Finding>& findings) {
  nlohmann::ordered_json j;
  j["id"] = id;
  j["findings"] = nlohmann::ordered_json::array();
  for (const Finding& f : findings) j["findings"].push_back(finding_to_json(f));
  detail::write_text(path, j.dump(2) + "\n");
}

inline std::vector<Finding> read_finding_list(const std::string& path) {
  const nlohmann::json j = detail::read_json(path);
  CTMLLM_CHECK(j.is_object() && j.contains("findings") && j["findings"].is_array(), path,
               ": expected an object with a \"findings\" list");
  std::vector<Finding> out;
  for (const auto& f : j["findings"]) out.push_back(finding_from_json(f, path));
  return out;
}

}  // namespace ctmllm::data
