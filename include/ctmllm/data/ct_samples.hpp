#pragma once
// CtSampleLoader: turns planned items (batch_plan.hpp) into model-ready samples: the case's CT read
// from NIfTI and preprocessed to the model grid (vision::preprocess_ct), then, for training, the
// seeded intensity augmentation (vision::augment_intensity) drawn from the item's own stream, and
// the findings text of the item's region, or the item's question. Tokenising the prompt and answer
// is the model's part.
// With mask_classes set, the case's segmentation mask (AmosCase::mask) comes along as the MLLM's
// second volume (vision::preprocess_label_map on the same grid; never augmented: labels are not
// intensities).
//
// Preprocessed volumes can be kept in memory (cache = true): preprocessing dominates the loading
// time and the synthetic demo's volumes are small; a full AMOS-MM run (32x256x256 floats = 8 MiB a
// case, 1,287 cases) should leave it off. load() may be called from several threads.
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ctmllm/core/rng.hpp"
#include "ctmllm/data/amos.hpp"
#include "ctmllm/data/batch_plan.hpp"
#include "ctmllm/io/nifti.hpp"
#include "ctmllm/vision/preprocess.hpp"

namespace ctmllm::data {

struct CtSample {
  std::string case_id;
  Region region;
  Tensor<float, Cpu> image;  // [1, 1, D, H, W]
  std::string findings;      // the region's reference findings text
  Tensor<float, Cpu> mask;   // [1, 1, D, H, W] when CtSampleOptions::mask_classes is set
  std::optional<Question> question;  // a question-answer sample: it trains on this instead of findings
};

struct CtSampleOptions {
  vision::CtPreprocessOptions preprocess;
  std::optional<vision::IntensityAugmentOptions> augment = vision::IntensityAugmentOptions{};  // nullopt: none
  bool cache = true;
  std::optional<int64_t> mask_classes;  // load the segmentation mask with this many classes; nullopt: no mask
};

class CtSampleLoader {
 public:
  CtSampleLoader(std::vector<AmosCase> cases, CtSampleOptions options)
      : cases_(std::move(cases)), options_(std::move(options)) {}

  const std::vector<AmosCase>& cases() const { return cases_; }

  CtSample load(const PlannedItem& item) const {
    CTMLLM_CHECK(item.case_index < cases_.size(), "CtSampleLoader: case index ", item.case_index, " is outside the ",
                 cases_.size(), " cases");
    const AmosCase& c = cases_[item.case_index];
    Tensor<float, Cpu> image = volume(item.case_index, false);
    if (options_.augment) {
      Rng rng(item.augment_seed);
      image = vision::augment_intensity(image, rng, *options_.augment);
    }
    CTMLLM_CHECK(!item.question || *item.question < c.questions.size(), "CtSampleLoader: case ", c.id, " has no question ",
                 item.question.value_or(0));
    return CtSample{c.id, item.region, std::move(image), c.region(item.region),
                    options_.mask_classes ? volume(item.case_index, true) : Tensor<float, Cpu>(),
                    item.question ? std::optional(c.questions[*item.question]) : std::nullopt};
  }
  std::vector<CtSample> load(const std::vector<PlannedItem>& items) const {
    std::vector<CtSample> out;
    for (const PlannedItem& item : items) out.push_back(load(item));
    return out;
  }

 private:
  // The preprocessed, unaugmented CT or mask volume (shared with the cache: callers never write into it).
  Tensor<float, Cpu> volume(size_t i, bool mask) const {
    if (options_.cache) {
      std::lock_guard lock(mutex_);
      if (auto it = cache_.find({i, mask}); it != cache_.end()) return it->second;
    }
    Tensor<float, Cpu> v = [&] {
      try {
        if (!mask) return vision::preprocess_ct(io::read_nifti(cases_[i].image), options_.preprocess);
        CTMLLM_CHECK(!cases_[i].mask.empty(), "the dataset lists no segmentation mask (\"mask\") for it");
        return vision::preprocess_label_map(io::read_nifti(cases_[i].mask), *options_.mask_classes, options_.preprocess);
      } catch (const Error& e) {
        fail("case ", cases_[i].id, ": ", e.what());
      }
    }();
    if (options_.cache) {
      std::lock_guard lock(mutex_);
      cache_.emplace(std::pair{i, mask}, v);
    }
    return v;
  }

  std::vector<AmosCase> cases_;
  CtSampleOptions options_;
  mutable std::mutex mutex_;
  mutable std::map<std::pair<size_t, bool>, Tensor<float, Cpu>> cache_;  // (case, is the mask)
};

}  // namespace ctmllm::data
