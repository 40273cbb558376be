// AMOS-MM layout: a synthetic dataset written and read back (images, masks, label maps, reports,
// finding lists, questions), byte-identical for a seed whatever the thread count, the AMOS-MM
// inline-report form, and ctmllm::Error naming the path for missing or malformed files.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "ctmllm/data/amos.hpp"
#include "ctmllm/data/synthetic_dataset.hpp"
#include "ctmllm/io/nifti.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::message_of;
using testing::scratch_dir;
using namespace ctmllm::data;
namespace fs = std::filesystem;

namespace {

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

SyntheticDatasetConfig small_config(uint64_t seed) {
  SyntheticDatasetConfig cfg;
  cfg.training = 3;
  cfg.validation = 2;
  cfg.seed = seed;
  cfg.phantom.shape = {40, 96, 96};
  cfg.phantom.spacing = {4.0, 4.0, 7.0};
  cfg.phantom.prevalence.fill(0.5);
  return cfg;
}

}  // namespace

TEST_CASE("a synthetic dataset reads back as the phantoms and reports that made it", "[data_world][amos]") {
  const std::string dir = scratch_dir("roundtrip");
  const SyntheticDatasetConfig cfg = small_config(7);
  const SyntheticDatasetSummary summary = write_synthetic_dataset(dir, cfg);
  const AmosDataset d = read_amos_dataset(dir + "/dataset.json");
  REQUIRE(d.training.size() == 3);
  REQUIRE(d.validation.size() == 2);
  std::array<int, kNumFindingKinds> train_counts{};
  for (int i = 0; i < 5; ++i) {
    const AmosCase& c = i < 3 ? d.training[size_t(i)] : d.validation[size_t(i - 3)];
    INFO(c.id);
    CHECK(c.id == case_id(i));
    CHECK(c.image.ends_with(std::string(i < 3 ? "imagesTr/" : "imagesVa/") + c.id + ".nii.gz"));
    const uint64_t seed = derive_seed(cfg.seed, uint64_t(i));
    const Phantom p = make_phantom(cfg.phantom, seed);

    const io::NiftiImage ct = io::read_nifti(c.image);
    CHECK(ct.header.datatype == io::nifti_type::kInt16);
    CHECK(ct.data.shape() == Shape{40, 96, 96});
    CHECK(ct.spacing == std::array<double, 3>{4.0, 4.0, 7.0});
    CHECK(ct.axcodes == "RAS");
    CHECK(ct.affine[0][3] == Catch::Approx(p.affine[0][3]));
    CHECK(ct.data.to_vector() == p.ct.to<float>().to_vector());
    const io::NiftiImage mask = io::read_nifti(c.mask), labels = io::read_nifti(c.label);
    CHECK(mask.header.datatype == io::nifti_type::kUInt8);
    CHECK(mask.header.intent_code == 1002);
    CHECK(mask.data.to_vector() == p.organs.to<float>().to_vector());
    CHECK(labels.data.to_vector() == p.labels.to<float>().to_vector());

    const Report r = write_report(p.findings, derive_seed(seed, 7));
    CHECK(c.findings == r.findings);
    CHECK(c.impression == r.impression);
    const std::vector<Finding> listed = read_finding_list(c.finding_list);
    REQUIRE(listed.size() == p.findings.size());
    for (size_t k = 0; k < listed.size(); ++k) CHECK(finding_to_json(listed[k]) == finding_to_json(p.findings[k]));
    CHECK(c.question_list.ends_with(std::string(i < 3 ? "questionsTr/" : "questionsVa/") + c.id + ".json"));
    const std::vector<Question> asked = write_questions(p.findings, derive_seed(seed, 8));
    REQUIRE(c.questions.size() == asked.size());
    for (size_t k = 0; k < asked.size(); ++k) CHECK(question_to_json(c.questions[k]) == question_to_json(asked[k]));
    if (i < 3)
      for (const Finding& f : listed) ++train_counts[size_t(f.kind)];
  }
  CHECK(summary.training == train_counts);
  const auto table = nlohmann::ordered_json::parse(bytes_of(fs::path(dir) / "finding_table.json"));
  CHECK(table == finding_table_json());
  fs::remove_all(dir);
}

TEST_CASE("a dataset is byte-identical for a seed, whatever the thread count", "[data_world][amos]") {
  const std::string a = scratch_dir("det_a"), b = scratch_dir("det_b"), c = scratch_dir("det_c");
  const int threads = num_threads();
  set_num_threads(1);
  write_synthetic_dataset(a, small_config(3));
  set_num_threads(std::max(2, threads));
  write_synthetic_dataset(b, small_config(3));
  set_num_threads(threads);
  write_synthetic_dataset(c, small_config(4));
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(a)) {
    if (!entry.is_regular_file()) continue;
    const fs::path rel = fs::relative(entry.path(), a);
    INFO(rel.string());
    CHECK(bytes_of(entry.path()) == bytes_of(fs::path(b) / rel));
    ++files;
  }
  CHECK(files == 2 + 5 * 6);
  CHECK(bytes_of(fs::path(a) / "imagesTr/phantom_0001.nii.gz") !=
        bytes_of(fs::path(c) / "imagesTr/phantom_0001.nii.gz"));
  for (const auto& d : {a, b, c}) fs::remove_all(d);
}

TEST_CASE("the reader accepts AMOS-MM's inline reports", "[data_world][amos]") {
  const std::string dir = scratch_dir("inline");
  fs::create_directories(fs::path(dir) / "imagesTr");
  const Phantom p = make_phantom({}, 1);
  io::write_nifti(dir + "/imagesTr/amos_0001.nii.gz", p.ct, p.spacing, p.affine);
  std::ofstream(dir + "/dataset.json") << R"({"training": [{"image": "imagesTr/amos_0001.nii.gz",
      "labels": {"report": {"findings": {"chest": "Both lungs are clear.", "abdomen": null, "pelvis": "No free fluid."},
                            "impression": {"chest": "Normal chest.", "pelvis": "Normal pelvis."}}}}]})";
  const AmosDataset d = read_amos_dataset(dir + "/dataset.json");
  REQUIRE(d.training.size() == 1);
  CHECK(d.validation.empty());
  const AmosCase& c = d.training[0];
  CHECK(c.id == "amos_0001");
  CHECK(c.mask.empty());
  CHECK(c.region(Region::chest) == "Both lungs are clear.");
  CHECK(c.region(Region::abdomen).empty());
  CHECK(c.region(Region::pelvis) == "No free fluid.");
  CHECK(c.impression == "Normal chest. Normal pelvis.");
  fs::remove_all(dir);
}

TEST_CASE("missing and malformed files raise an Error naming the path", "[data_world][amos]") {
  const std::string dir = scratch_dir("errors");
  write_synthetic_dataset(dir, small_config(9));
  const std::string json = dir + "/dataset.json";

  for (const char* file : {"masksTr/phantom_0002.nii.gz", "imagesVa/phantom_0005.nii.gz", "reportsTr/phantom_0001.json",
                           "labelsVa/phantom_0004.nii.gz", "findingsTr/phantom_0003.json",
                           "questionsVa/phantom_0005.json"}) {
    const fs::path victim = fs::path(dir) / file, saved = victim.string() + ".saved";
    fs::rename(victim, saved);
    const std::string msg = message_of([&] { read_amos_dataset(json); });
    INFO(msg);
    CHECK(msg.find(victim.string()) != std::string::npos);
    CHECK(msg.find("missing") != std::string::npos);
    fs::rename(saved, victim);
  }
  CHECK(message_of([&] { read_amos_dataset(dir + "/nope.json"); }).find(dir + "/nope.json") != std::string::npos);

  const std::string report = dir + "/reportsTr/phantom_0001.json";
  std::ofstream(report) << R"({"findings": {"chest": "x", "head": "y"}})";
  CHECK(message_of([&] { read_amos_dataset(json); }).find(report) != std::string::npos);
  std::ofstream(report) << "{not json";
  CHECK(message_of([&] { read_amos_dataset(json); }).find("invalid JSON") != std::string::npos);

  const std::string list = dir + "/findingsTr/phantom_0002.json";
  std::ofstream(list) << R"({"findings": [{"kind": "brain_tumour"}]})";
  CHECK(message_of([&] { read_finding_list(list); }).find(list) != std::string::npos);
  fs::remove_all(dir);
}
