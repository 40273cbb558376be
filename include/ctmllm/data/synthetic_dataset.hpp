#pragma once
// Writes a synthetic AMOS-MM dataset: phantoms (phantom.hpp) with their reports (report_writer.hpp)
// in the layout of amos.hpp, readable with read_amos_dataset(dir + "/dataset.json").
//
//   dir/dataset.json          case lists ("training", "validation") and what generated them
//   dir/finding_table.json    the labeller's finding table (finding_table.hpp)
//   dir/imagesTr/<id>.nii.gz  CT, int16 HU          (imagesVa/ for validation, likewise below)
//   dir/masksTr/<id>.nii.gz   organ mask, uint8      (the MLLM's segmentation-mask input)
//   dir/labelsTr/<id>.nii.gz  label map, uint8       (organs + findings: vision pretraining)
//   dir/reportsTr/<id>.json   {"findings": {"chest", "abdomen", "pelvis"}, "impression"}
//   dir/findingsTr/<id>.json  ground-truth finding list
//   dir/questionsTr/<id>.json yes/no questions with their answers (question_writer.hpp)
//
// Case i (0-based over training then validation) uses seed derive_seed(seed, i), so a dataset is
// byte-identical for a seed whatever the thread count; cases are generated in parallel.
#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/data/amos.hpp"
#include "ctmllm/data/finding_table.hpp"
#include "ctmllm/data/phantom.hpp"
#include "ctmllm/data/question_writer.hpp"
#include "ctmllm/data/report_writer.hpp"
#include "ctmllm/io/nifti.hpp"

namespace ctmllm::data {

struct SyntheticDatasetConfig {
  int training = 160;
  int validation = 40;
  uint64_t seed = 0;
  PhantomConfig phantom;
  int gzip_level = 1;  // the noise barely compresses better at higher levels, which cost 3x the time
};

// How many cases of each split carry each finding kind.
struct SyntheticDatasetSummary {
  std::array<int, kNumFindingKinds> training{}, validation{};
  int training_without_findings = 0, validation_without_findings = 0;
};

inline std::string case_id(int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "phantom_%04d", index + 1);
  return buf;
}

inline SyntheticDatasetSummary write_synthetic_dataset(const std::string& dir, const SyntheticDatasetConfig& cfg) {
  CTMLLM_CHECK(cfg.training >= 0 && cfg.validation >= 0 && cfg.training + cfg.validation <= 9999,
               "write_synthetic_dataset: ", cfg.training, " training and ", cfg.validation,
               " validation cases (each >= 0, at most 9999 together)");
  phantom_extent(cfg.phantom);  // validates the grid before any file is written
  namespace fs = std::filesystem;
  const fs::path root(dir);
  for (const char* sub : {"imagesTr", "masksTr", "labelsTr", "reportsTr", "findingsTr", "questionsTr", "imagesVa",
                          "masksVa", "labelsVa", "reportsVa", "findingsVa", "questionsVa"}) {
    std::error_code ec;
    fs::create_directories(root / sub, ec);
    CTMLLM_CHECK(!ec, (root / sub).string(), ": cannot create folder: ", ec.message());
  }
  const int n = cfg.training + cfg.validation;
  std::vector<std::vector<Finding>> findings(static_cast<size_t>(n));
  io::NiftiWriteOptions image_opts, mask_opts;
  image_opts.gzip_level = mask_opts.gzip_level = cfg.gzip_level;
  mask_opts.intent_code = 1002;  // NIFTI_INTENT_LABEL
  parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const uint64_t seed = derive_seed(cfg.seed, uint64_t(i));
      const Phantom p = make_phantom(cfg.phantom, seed);
      const std::string id = case_id(int(i)), s = i < cfg.training ? "Tr" : "Va";
      io::write_nifti((root / ("images" + s) / (id + ".nii.gz")).string(), p.ct, p.spacing, p.affine, image_opts);
      io::write_nifti((root / ("masks" + s) / (id + ".nii.gz")).string(), p.organs, p.spacing, p.affine, mask_opts);
      io::write_nifti((root / ("labels" + s) / (id + ".nii.gz")).string(), p.labels, p.spacing, p.affine, mask_opts);
      write_report_json((root / ("reports" + s) / (id + ".json")).string(),
                        write_report(p.findings, derive_seed(seed, 7)));
      write_finding_list((root / ("findings" + s) / (id + ".json")).string(), id, p.findings);
      write_question_list((root / ("questions" + s) / (id + ".json")).string(), id,
                          write_questions(p.findings, derive_seed(seed, 8)));
      findings[size_t(i)] = p.findings;
    }
  });

  SyntheticDatasetSummary summary;
  nlohmann::ordered_json j;
  j["name"] = "ctmllm synthetic AMOS-MM";
  j["description"] = "Procedural chest-abdomen-pelvis CT phantoms with ground-truth reports (docs/SYNTHETIC_CT.md)";
  j["seed"] = cfg.seed;
  j["shape"] = cfg.phantom.shape;
  j["spacing"] = cfg.phantom.spacing;
  j["model_input_shape"] = kModelInputShape;
  for (const auto& k : kFindingKinds) j["prevalence"][k.name] = cfg.phantom.prevalence[size_t(k.kind)];
  for (int id = 0; id < label::kNumOrgans; ++id) j["labels"][std::to_string(id)] = organ_name(uint8_t(id));
  for (const auto& k : kFindingKinds) j["labels"][std::to_string(kind_label(k.kind))] = k.name;
  j["finding_table"] = "finding_table.json";
  j["numTraining"] = cfg.training;
  j["numValidation"] = cfg.validation;
  j["training"] = nlohmann::ordered_json::array();
  j["validation"] = nlohmann::ordered_json::array();
  for (int i = 0; i < n; ++i) {
    const bool train = i < cfg.training;
    const std::string id = case_id(i), s = train ? "Tr" : "Va";
    nlohmann::ordered_json e;
    e["id"] = id;
    e["image"] = "images" + s + "/" + id + ".nii.gz";
    e["mask"] = "masks" + s + "/" + id + ".nii.gz";
    e["label"] = "labels" + s + "/" + id + ".nii.gz";
    e["report"] = "reports" + s + "/" + id + ".json";
    e["finding_list"] = "findings" + s + "/" + id + ".json";
    e["question_list"] = "questions" + s + "/" + id + ".json";
    j[train ? "training" : "validation"].push_back(std::move(e));
    auto& counts = train ? summary.training : summary.validation;
    for (const Finding& f : findings[size_t(i)]) ++counts[size_t(f.kind)];
    if (findings[size_t(i)].empty())
      ++(train ? summary.training_without_findings : summary.validation_without_findings);
  }
  detail::write_text((root / "dataset.json").string(), j.dump(2) + "\n");
  detail::write_text((root / "finding_table.json").string(), finding_table_json().dump(2) + "\n");
  return summary;
}

}  // namespace ctmllm::data
