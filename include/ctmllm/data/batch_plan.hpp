#pragma once
// BatchPlan: which cases, regions and augmentation seeds make up batch k of epoch e. Everything is
// a pure function of (seed, epoch, k) through the counter-based Rng, never of a stream's history,
// so any batch can be rebuilt on its own: a resumed run asks for batch index 4711 and gets what an
// uninterrupted run got there, and a prefetch thread may build batches ahead in any order.
//
//   epoch order:  a Fisher-Yates permutation of the trainable cases, seeded by (seed, epoch)
//   batch k:      order[k·B, (k+1)·B) (the last batch is shorter unless drop_last)
//   item j:       key = f(seed, epoch, k, j): its region (region_sampling.hpp), the seed of its
//                 augmentation stream (vision::augment_intensity), and, for a case with questions,
//                 whether it is a question-answer item (probability vqa_fraction) and which
//                 question (uniform)
// Cases without any findings text are left out of every epoch (nothing to describe), even when
// they have questions. With vqa_fraction 0 the plan is the same as without questions.
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/core/rng.hpp"
#include "ctmllm/data/amos.hpp"
#include "ctmllm/data/region_sampling.hpp"
#include "ctmllm/data/sampler.hpp"

namespace ctmllm::data {

struct PlannedItem {
  size_t case_index;  // into the case list the plan was built from
  Region region;      // the report region (drawn for every item; a question item does not use it)
  uint64_t augment_seed;  // seed of the item's own Rng stream (augmentation, or anything else per item)
  std::optional<size_t> question = std::nullopt;  // a question-answer item: index into the case's questions
};

class BatchPlan {
 public:
  // present[i]: which regions case i has findings for; region_weights: the draw when all three are;
  // question_counts[i]: how many questions case i has (empty: none has any).
  BatchPlan(std::vector<std::array<bool, 3>> present, int64_t batch_size, uint64_t seed, bool drop_last = false,
            RegionProbabilities region_weights = kPaperRegionWeights, std::vector<size_t> question_counts = {},
            double vqa_fraction = 0)
      : present_(std::move(present)), question_counts_(std::move(question_counts)), batch_size_(batch_size),
        seed_(seed), drop_last_(drop_last), region_weights_(region_weights), vqa_fraction_(vqa_fraction) {
    CTMLLM_CHECK(batch_size > 0, "BatchPlan: batch_size must be positive, got ", batch_size);
    check_region_weights(region_weights, "BatchPlan");
    CTMLLM_CHECK(vqa_fraction >= 0 && vqa_fraction <= 1, "BatchPlan: vqa_fraction must be in [0, 1], got ",
                 vqa_fraction);
    CTMLLM_CHECK(question_counts_.empty() || question_counts_.size() == present_.size(), "BatchPlan: ",
                 question_counts_.size(), " question counts for ", present_.size(), " cases");
    for (size_t i = 0; i < present_.size(); ++i)
      if (present_[i][0] || present_[i][1] || present_[i][2]) eligible_.push_back(i);
    CTMLLM_CHECK(!eligible_.empty(), "BatchPlan: none of the ", present_.size(), " cases has findings text");
    CTMLLM_CHECK(!drop_last || int64_t(eligible_.size()) >= batch_size, "BatchPlan: ", eligible_.size(),
                 " trainable cases make no full batch of ", batch_size, " with drop_last");
  }
  BatchPlan(const std::vector<AmosCase>& cases, int64_t batch_size, uint64_t seed, bool drop_last = false,
            RegionProbabilities region_weights = kPaperRegionWeights, double vqa_fraction = 0)
      : BatchPlan(presence_of(cases), batch_size, seed, drop_last, region_weights, question_counts_of(cases),
                  vqa_fraction) {}

  int64_t batch_size() const { return batch_size_; }
  uint64_t seed() const { return seed_; }
  int64_t num_cases() const { return int64_t(eligible_.size()); }  // trainable ones
  int64_t batches_per_epoch() const {
    const int64_t n = num_cases();
    return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
  }

  // The epoch's case order (indices into the original case list).
  std::vector<size_t> order(int64_t epoch) const {
    CTMLLM_CHECK(epoch >= 0, "BatchPlan: epoch must be >= 0, got ", epoch);
    std::vector<size_t> o = eligible_;
    const Rng rng(derive_seed(derive_seed(seed_, kOrderTag), uint64_t(epoch)));
    for (size_t i = o.size(); i > 1; --i) {
      const size_t j = std::min(i - 1, size_t(rng.uniform_at(i) * double(i)));
      std::swap(o[i - 1], o[j]);
    }
    return o;
  }

  std::vector<PlannedItem> batch(int64_t epoch, int64_t k) const {
    CTMLLM_CHECK(k >= 0 && k < batches_per_epoch(), "BatchPlan: batch ", k, " is outside the epoch's ",
                 batches_per_epoch(), " batches");
    const std::vector<size_t> o = order(epoch);
    const int64_t lo = k * batch_size_, hi = std::min<int64_t>(lo + batch_size_, int64_t(o.size()));
    const uint64_t batch_key = derive_seed(derive_seed(derive_seed(seed_, kItemTag), uint64_t(epoch)), uint64_t(k));
    std::vector<PlannedItem> items;
    for (int64_t j = lo; j < hi; ++j) {
      const uint64_t key = derive_seed(batch_key, uint64_t(j - lo));
      const size_t c = o[size_t(j)];
      const double u = Rng(derive_seed(key, 0)).uniform_at(0);
      const std::optional<Region> r = pick_region(region_probabilities(present_[c], region_weights_), u);
      PlannedItem item{c, *r, derive_seed(key, 1)};  // eligible cases always give a region
      // Its own stream: the region draws and augmentation seeds stay those of a plan without questions.
      const size_t n = question_counts_.empty() ? 0 : question_counts_[c];
      const Rng vqa(derive_seed(key, 2));
      if (n > 0 && vqa.uniform_at(0) < vqa_fraction_)
        item.question = std::min(n - 1, size_t(vqa.uniform_at(1) * double(n)));
      items.push_back(item);
    }
    return items;
  }
  // Batch number `index` counted from the start of training (epoch-major).
  std::vector<PlannedItem> batch(int64_t index) const {
    CTMLLM_CHECK(index >= 0, "BatchPlan: batch index must be >= 0, got ", index);
    return batch(index / batches_per_epoch(), index % batches_per_epoch());
  }

  static std::vector<std::array<bool, 3>> presence_of(const std::vector<AmosCase>& cases) {
    std::vector<std::array<bool, 3>> p;
    for (const AmosCase& c : cases) p.push_back(regions_present(c));
    return p;
  }
  static std::vector<size_t> question_counts_of(const std::vector<AmosCase>& cases) {
    std::vector<size_t> n;
    for (const AmosCase& c : cases) n.push_back(c.questions.size());
    return n;
  }

 private:
  static constexpr uint64_t kOrderTag = 1, kItemTag = 2;
  std::vector<std::array<bool, 3>> present_;
  std::vector<size_t> question_counts_;
  std::vector<size_t> eligible_;
  int64_t batch_size_;
  uint64_t seed_;
  bool drop_last_;
  RegionProbabilities region_weights_;
  double vqa_fraction_;
};

}  // namespace ctmllm::data
