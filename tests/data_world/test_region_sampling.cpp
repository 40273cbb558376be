// The training data pipeline: the paper's region rule (0.7/0.2/0.1 when all three regions are
// present, uniform among the present ones otherwise), the batch plan as a pure function of
// (seed, epoch, k) with or without question-answer items, the sample loader with seeded intensity
// augmentation, and the prefetch thread (order, forwarded errors, shutdown).
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "ctmllm/data/batch_plan.hpp"
#include "ctmllm/data/ct_samples.hpp"
#include "ctmllm/data/prefetch.hpp"
#include "ctmllm/data/region_sampling.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"

using namespace ctmllm;
using namespace ctmllm::data;
namespace fs = std::filesystem;

namespace {

AmosCase make_case(const std::string& id, const std::string& chest, const std::string& abdomen,
                   const std::string& pelvis) {
  AmosCase c;
  c.id = id;
  c.findings = {chest, abdomen, pelvis};
  return c;
}

// Region frequencies of `n` draws of the plan's items for the one case.
std::array<double, 3> frequencies(const std::array<bool, 3>& present, int n,
                                  const RegionProbabilities& weights = kPaperRegionWeights) {
  const BatchPlan plan(std::vector<std::array<bool, 3>>{present}, 1, 7, false, weights);
  std::array<double, 3> f{};
  for (int e = 0; e < n; ++e) f[size_t(plan.batch(e, 0)[0].region)] += 1.0 / n;
  return f;
}

}  // namespace

TEST_CASE("region probabilities follow the paper's rule, not a renormalisation", "[data][region]") {
  const auto all = region_probabilities({true, true, true});
  CHECK(all[size_t(Region::chest)] == 0.7);
  CHECK(all[size_t(Region::pelvis)] == 0.2);
  CHECK(all[size_t(Region::abdomen)] == 0.1);
  const auto chest_pelvis = region_probabilities({true, false, true});
  CHECK(chest_pelvis[size_t(Region::chest)] == 0.5);  // renormalising would give 0.78
  CHECK(chest_pelvis[size_t(Region::pelvis)] == 0.5);
  CHECK(chest_pelvis[size_t(Region::abdomen)] == 0.0);
  CHECK(region_probabilities({false, true, false})[size_t(Region::abdomen)] == 1.0);
  CHECK(!pick_region(region_probabilities({false, false, false}), 0.3));

  CHECK(regions_present(make_case("a", "Lungs clear.", "  \n", "")) == std::array<bool, 3>{true, false, false});
  CHECK(*pick_region(all, 0.0) == Region::chest);
  CHECK(*pick_region(all, 0.69) == Region::chest);
  CHECK(*pick_region(all, 0.75) == Region::abdomen);
  CHECK(*pick_region(all, 0.85) == Region::pelvis);
  CHECK_THROWS_AS(pick_region(all, 1.0), Error);
}

TEST_CASE("sampled regions have the rule's frequencies", "[data][region]") {
  const int n = 20000;  // binomial std <= 0.0035
  const auto all = frequencies({true, true, true}, n);
  CHECK(all[size_t(Region::chest)] == Approx(0.7).margin(0.015));
  CHECK(all[size_t(Region::pelvis)] == Approx(0.2).margin(0.015));
  CHECK(all[size_t(Region::abdomen)] == Approx(0.1).margin(0.015));
  const auto two = frequencies({false, true, true}, n);
  CHECK(two[size_t(Region::chest)] == 0.0);
  CHECK(two[size_t(Region::abdomen)] == Approx(0.5).margin(0.015));
  CHECK(two[size_t(Region::pelvis)] == Approx(0.5).margin(0.015));
}

TEST_CASE("region weights are a setting: other draws when all three are present, bad ones refused", "[data][region]") {
  const RegionProbabilities even{0.25, 0.25, 0.5};  // chest, abdomen, pelvis
  const auto all = frequencies({true, true, true}, 20000, even);
  CHECK(all[size_t(Region::chest)] == Approx(0.25).margin(0.015));
  CHECK(all[size_t(Region::abdomen)] == Approx(0.25).margin(0.015));
  CHECK(all[size_t(Region::pelvis)] == Approx(0.5).margin(0.015));
  // Cases missing a region still draw evenly among the ones they have.
  CHECK(region_probabilities({true, true, false}, even)[size_t(Region::chest)] == 0.5);
  const std::vector<std::array<bool, 3>> one{{true, true, true}};
  CHECK_THROWS_AS(BatchPlan(one, 1, 7, false, RegionProbabilities{0.5, 0.5, 0.5}), Error);
  CHECK_THROWS_AS(BatchPlan(one, 1, 7, false, RegionProbabilities{1.2, -0.2, 0.0}), Error);
}

TEST_CASE("batch plan: a pure function of (seed, epoch, k) covering each epoch once", "[data][plan]") {
  std::vector<AmosCase> cases;
  for (int i = 0; i < 11; ++i) cases.push_back(make_case(std::to_string(i), "c", i % 3 ? "a" : "", "p"));
  cases.push_back(make_case("empty", "", " ", ""));  // nothing to describe: never planned
  const BatchPlan plan(cases, 4, 123);
  CHECK(plan.num_cases() == 11);
  REQUIRE(plan.batches_per_epoch() == 3);
  CHECK(BatchPlan(cases, 4, 123, /*drop_last=*/true).batches_per_epoch() == 2);

  for (int64_t epoch : {0, 1, 5}) {
    std::multiset<size_t> seen;
    for (int64_t k = 0; k < plan.batches_per_epoch(); ++k)
      for (const PlannedItem& it : plan.batch(epoch, k)) {
        seen.insert(it.case_index);
        CHECK(regions_present(cases[it.case_index])[size_t(it.region)]);
      }
    CHECK(seen.size() == 11);
    CHECK(std::set<size_t>(seen.begin(), seen.end()).size() == 11);  // each case once per epoch
    CHECK(!seen.count(11));
  }
  CHECK(plan.batch(2, 2).size() == 3);  // the short last batch

  // The same batch from a fresh plan, by (epoch, k) or by global index, in any order.
  const BatchPlan again(cases, 4, 123);
  const auto a = plan.batch(4, 1), b = again.batch(4 * 3 + 1), c = again.batch(4, 1);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].case_index == b[i].case_index);
    CHECK(a[i].region == b[i].region);
    CHECK(a[i].augment_seed == b[i].augment_seed);
    CHECK(a[i].augment_seed == c[i].augment_seed);
  }
  // Epochs shuffle differently, other seeds differ, and augmentation seeds are distinct per item.
  CHECK(plan.order(0) != plan.order(1));
  CHECK(plan.order(0) != BatchPlan(cases, 4, 124).order(0));
  std::set<uint64_t> seeds;
  for (int64_t k = 0; k < 3; ++k)
    for (const auto& it : plan.batch(0, k)) seeds.insert(it.augment_seed);
  CHECK(seeds.size() == 11);

  CHECK_THROWS_AS(plan.batch(0, 3), Error);
  CHECK_THROWS_AS(BatchPlan(std::vector<AmosCase>{make_case("x", "", "", "")}, 1, 0), Error);
  CHECK_THROWS_AS(BatchPlan(cases, 0, 0), Error);
}

TEST_CASE("batch plan with questions: the vqa fraction's frequency, uniform questions, a pure function", "[data][plan]") {
  std::vector<AmosCase> cases;
  for (int i = 0; i < 8; ++i) cases.push_back(make_case(std::to_string(i), "c", "a", "p"));
  for (size_t i = 0; i < 4; ++i)  // cases 0-3 have i + 1 questions, 4-7 none
    for (size_t q = 0; q <= i; ++q) cases[i].questions.push_back({"Question " + std::to_string(q) + "?", "Yes.", {}, {}});
  const double fraction = 0.3;
  const BatchPlan plan(cases, 4, 17, false, kPaperRegionWeights, fraction), plain(cases, 4, 17);
  const int epochs = 4000;  // 16000 items of cases with questions: binomial std 0.0036
  int with_questions = 0, asked = 0;
  std::array<std::array<int, 4>, 4> picked{};  // [case][question]
  for (int64_t e = 0; e < epochs; ++e)
    for (int64_t k = 0; k < plan.batches_per_epoch(); ++k) {
      const auto items = plan.batch(e, k), base = plain.batch(e, k);
      REQUIRE(items.size() == base.size());
      for (size_t j = 0; j < items.size(); ++j) {
        const PlannedItem& it = items[j];
        // Questions draw from their own stream: regions and augmentation seeds are those of a plan without.
        REQUIRE(it.case_index == base[j].case_index);
        REQUIRE(it.region == base[j].region);
        REQUIRE(it.augment_seed == base[j].augment_seed);
        REQUIRE(!base[j].question);
        const size_t n = cases[it.case_index].questions.size();
        if (n == 0) {
          REQUIRE(!it.question);  // cases without questions always give report items
          continue;
        }
        ++with_questions;
        if (!it.question) continue;
        REQUIRE(*it.question < n);
        ++asked;
        ++picked[it.case_index][*it.question];
      }
    }
  CHECK(double(asked) / with_questions == Catch::Approx(fraction).margin(0.012));
  for (size_t c = 0; c < 4; ++c) {
    int total = 0;
    for (int n : picked[c]) total += n;
    for (size_t q = 0; q <= c; ++q) CHECK(double(picked[c][q]) / total == Catch::Approx(1.0 / double(c + 1)).margin(0.04));
  }
  // A fresh plan gives the same items, by (epoch, k) or by global index; fractions 0 and 1.
  const BatchPlan again(cases, 4, 17, false, kPaperRegionWeights, fraction);
  for (int64_t index : {0, 5, 77}) {
    const auto a = plan.batch(index), b = again.batch(index);
    for (size_t j = 0; j < a.size(); ++j) CHECK(a[j].question == b[j].question);
  }
  const BatchPlan always(cases, 4, 17, false, kPaperRegionWeights, 1.0);
  for (int64_t k = 0; k < always.batches_per_epoch(); ++k)
    for (const PlannedItem& it : always.batch(3, k)) CHECK(bool(it.question) == !cases[it.case_index].questions.empty());
  CHECK_THROWS_AS(BatchPlan(cases, 4, 17, false, kPaperRegionWeights, 1.5), Error);
  CHECK_THROWS_AS(BatchPlan(std::vector<std::array<bool, 3>>{{true, true, true}}, 1, 0, false, kPaperRegionWeights, {1, 2}, 0.5),
                  Error);
}

TEST_CASE("sample loader: preprocessed CT, seeded augmentation, region text", "[data][loader]") {
  const fs::path dir = testing::scratch_dir("loader");
  fs::create_directories(dir);
  Tensor<float, Cpu> hu = Tensor<float, Cpu>::empty({6, 8, 8});
  for (int64_t i = 0; i < hu.numel(); ++i) hu.data()[i] = float(-300 + (i * 37) % 700);
  io::write_nifti((dir / "ct.nii.gz").string(), hu, {2.0, 2.0, 5.0});
  std::vector<AmosCase> cases{make_case("ct", "Chest text.", "Abdomen text.", "")};
  cases[0].image = (dir / "ct.nii.gz").string();

  CtSampleOptions o;
  o.preprocess.size = {4, 4, 4};
  o.augment.reset();
  const CtSampleLoader plain(cases, o);
  o.augment = vision::IntensityAugmentOptions{0.1, 1.0, 0.1, 1.0};  // always both, so the draw shows
  const CtSampleLoader aug(cases, o);

  const BatchPlan plan(cases, 1, 5);
  const PlannedItem item = plan.batch(0, 0)[0];
  const CtSample s = plain.load(item);
  CHECK(s.case_id == "ct");
  CHECK(s.findings == cases[0].region(item.region));
  CHECK(s.image.shape() == Shape{1, 1, 4, 4, 4});
  const Tensor<float, Cpu> ref = vision::preprocess_ct(io::read_nifti(cases[0].image), o.preprocess);
  for (int64_t i = 0; i < ref.numel(); ++i) REQUIRE(s.image.data()[i] == ref.data()[i]);

  const CtSample x = aug.load(item), y = aug.load(item), z = aug.load(plan.batch(1, 0)[0]);
  Rng rng(item.augment_seed);
  const Tensor<float, Cpu> want = vision::augment_intensity(ref, rng, *o.augment);
  bool differs_from_plain = false, differs_across_epochs = false;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    REQUIRE(x.image.data()[i] == want.data()[i]);
    REQUIRE(y.image.data()[i] == x.image.data()[i]);
    differs_from_plain |= x.image.data()[i] != ref.data()[i];
    differs_across_epochs |= z.image.data()[i] != x.image.data()[i];
  }
  CHECK(differs_from_plain);
  CHECK(differs_across_epochs);

  std::vector<AmosCase> missing = cases;
  missing[0].image = (dir / "nope.nii.gz").string();
  CHECK_THROWS_WITH(CtSampleLoader(missing, o).load(item), Catch::Contains("case ct") && Catch::Contains("nope.nii.gz"));

  // A question item carries its question; a report item none.
  std::vector<AmosCase> asked = cases;
  asked[0].questions = {{"Is there a cyst?", "No.", Region::abdomen, {}}, {"Is there a stone?", "Yes.", {}, {}}};
  CHECK(!CtSampleLoader(asked, o).load(item).question);
  PlannedItem question_item = item;
  question_item.question = 1;
  const CtSample q = CtSampleLoader(asked, o).load(question_item);
  REQUIRE(q.question);
  CHECK(q.question->question == "Is there a stone?");
  question_item.question = 2;
  CHECK_THROWS_WITH(CtSampleLoader(asked, o).load(question_item), Catch::Contains("case ct has no question 2"));
  fs::remove_all(dir);
}

TEST_CASE("prefetcher: in order, bounded, errors forwarded, clean shutdown", "[data][prefetch]") {
  std::atomic<int64_t> made{0};
  {
    Prefetcher<int64_t> p([&](int64_t i) { ++made; return i * i; }, 5, 3, 20);
    for (int64_t i = 5; i < 20; ++i) REQUIRE(p.next() == i * i);
    CHECK(p.position() == 20);
    CHECK_THROWS_AS(p.next(), Error);
  }
  CHECK(made == 15);

  // Bounded: with a slow consumer the producer stays at most `depth` ahead.
  made = 0;
  {
    Prefetcher<int64_t> p([&](int64_t i) { ++made; return i; }, 0, 2);
    CHECK(p.next() == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(made <= 3);  // the one taken + 2 queued
  }  // destroyed while the producer waits on a full queue

  // A failure reaches the consumer at its index, after the good items before it, and sticks.
  Prefetcher<int64_t> f([](int64_t i) -> int64_t {
    CTMLLM_CHECK(i != 3, "bad batch ", i);
    return i;
  }, 0, 4);
  CHECK(f.next() == 0);
  CHECK(f.next() == 1);
  CHECK(f.next() == 2);
  CHECK_THROWS_WITH(f.next(), Catch::Contains("bad batch 3"));
  CHECK_THROWS_WITH(f.next(), Catch::Contains("bad batch 3"));

  // Shutdown while the producer is inside a slow make() call.
  {
    Prefetcher<int64_t> slow([](int64_t i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return i;
    }, 0, 1);
  }
}
