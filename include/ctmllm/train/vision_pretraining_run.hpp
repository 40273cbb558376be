#pragma once
// Running stage 1 (vision_pretraining.hpp's objective): labelled examples from an AMOS-MM-layout
// dataset, the training loop (AdamW, warm-up + cosine, intensity augmentation, shuffled epochs),
// the presence thresholds calibrated on training cases, and held-out detection scores per finding
// kind. Used by `ctmllm demo` and examples/pretrain_vision.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/data/amos.hpp"
#include "ctmllm/eval/findings.hpp"
#include "ctmllm/io/nifti.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/schedule.hpp"
#include "ctmllm/train/vision_pretraining.hpp"

namespace ctmllm::train {

// Examples of every case: the CT, its label map and finding list (cases without them are an Error).
inline std::vector<VisionExample> load_vision_examples(const std::vector<data::AmosCase>& cases,
                                                       const std::array<int64_t, 3>& patch_size,
                                                       const VisionExampleOptions& o = {}) {
  std::vector<VisionExample> out(cases.size());
  parallel_for(0, int64_t(cases.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const data::AmosCase& c = cases[size_t(i)];
      CTMLLM_CHECK(!c.label.empty() && !c.finding_list.empty(), "vision pretraining: case ", c.id,
                   " has no label map or finding list");
      const io::NiftiImage ct = io::read_nifti(c.image);
      out[size_t(i)] = make_vision_example(ct.data, io::read_nifti(c.label).data.to<uint8_t>(), ct.spacing[2],
                                           data::read_finding_list(c.finding_list), patch_size, o);
    }
  });
  return out;
}

// Runs the encoder and the heads over `examples` in batches without gradients; `fn(indices, patch
// logits [B, N, C], presence logits [B, K], batch)` sees each batch.
template <class T, class Fn>
void for_each_detection_batch(const vision::ViT3D<T>& vit, const VisionPretrainingHeads<T>& heads,
                              const std::vector<VisionExample>& examples, int batch, Fn&& fn) {
  CTMLLM_CHECK(!examples.empty() && batch > 0, "vision detection: no examples or a batch of ", batch);
  autograd::NoGradGuard no_grad;
  for (size_t i = 0; i < examples.size(); i += size_t(batch)) {
    std::vector<size_t> idx(std::min(examples.size(), i + size_t(batch)) - i);
    std::iota(idx.begin(), idx.end(), i);
    const VisionBatch b = make_vision_batch(examples, idx);
    const auto z = heads.patch_logits(vit.forward(autograd::Variable<T>(b.volumes.template to<T>())).tokens);
    fn(idx, z.value().template to<float>(), heads.presence_logits(z).value().template to<float>(), b);
  }
}

// The threshold with the best F1 over (score, truth) pairs when "score > threshold" means yes: halfway
// between the two scores the best cut separates (ties are never split); with no positive pair, one
// above the highest score so nothing fires.
inline double best_f1_threshold(std::vector<std::pair<float, bool>> v) {
  CTMLLM_CHECK(!v.empty(), "best_f1_threshold: no scores");
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  const double positives = double(std::count_if(v.begin(), v.end(), [](const auto& e) { return e.second; }));
  size_t best_n = 0;  // the cut after the n best scores
  double best_f1 = 0, tp = 0;
  for (size_t n = 1; n <= v.size() && positives > 0; ++n) {
    tp += v[n - 1].second;
    if (n < v.size() && v[n].first == v[n - 1].first) continue;
    const double f1 = 2 * tp / (double(n) + positives);
    if (f1 > best_f1) best_f1 = f1, best_n = n;
  }
  return best_n == 0           ? double(v.front().first) + 1
         : best_n == v.size()  ? double(v.back().first) - 1
                               : 0.5 * (double(v[best_n - 1].first) + double(v[best_n].first));
}

// Each kind's (presence logit, present) pairs over a set of examples.
using PresenceScores = std::array<std::vector<std::pair<float, bool>>, data::kNumFindingKinds>;

struct PresenceCalibration {
  std::array<double, data::kNumFindingKinds> shift{};  // what was added to each kind's bias
  PresenceScores scores;                                // the presence logits after the shift
};

// Sets each kind's presence bias so that "logit > 0" is the case-level threshold with the best F1
// on `examples` (the training cases; their order does not matter), and returns the shifts with the
// shifted scores (the demo seeds its projector from them without running the encoder again). The
// bias is learned with the encoder, but Adam moves it about one learning rate per step while the
// maxima it offsets span several units, so after a short run it lags (measured on the demo: a
// stone presence F1 of 0.63 at the learned bias, 0.81 at the best threshold on the same scores).
// A kind that no example has is set to never fire on them.
template <class T>
PresenceCalibration calibrate_presence_bias(const vision::ViT3D<T>& vit, VisionPretrainingHeads<T>& heads,
                                            const std::vector<VisionExample>& examples, int batch = 8) {
  constexpr int K = data::kNumFindingKinds;
  PresenceCalibration c;
  for_each_detection_batch(vit, heads, examples, batch,
                           [&](const std::vector<size_t>& idx, const Tensor<float>&, const Tensor<float>& s, const VisionBatch&) {
                             for (size_t j = 0; j < idx.size(); ++j)
                               for (int k = 0; k < K; ++k)
                                 c.scores[size_t(k)].push_back({s.at(int64_t(j), k), examples[idx[j]].present[size_t(k)]});
                           });
  Tensor<T> bias = heads.parameters().get("presence_bias").value();
  for (int k = 0; k < K; ++k) {
    c.shift[size_t(k)] = -best_f1_threshold(c.scores[size_t(k)]);
    bias.at(k) = T(double(bias.at(k)) + c.shift[size_t(k)]);
    for (auto& e : c.scores[size_t(k)]) e.first = float(double(e.first) + c.shift[size_t(k)]);
  }
  return c;
}

struct VisionPretrainingOptions {
  int steps = 300, batch = 8, warmup = 20;
  double lr = 1e-3, weight_decay = 0.05;
  uint64_t seed = 1;
  bool augment = true;
  // After training, each kind's presence threshold is set to its best F1 on the first this many
  // training examples (calibrate_presence_bias); 0 keeps the learned bias.
  int calibrate_on = 256;
  // Called every `log_every` steps with the step and the mean of each loss term since the last call.
  int log_every = 20;
  std::function<void(int step, double patch, double finding, double presence)> on_log;
};

struct VisionPretrainingResult {
  double first_loss = 0, last_loss = 0;  // means over the first and the last tenth of the steps
  double seconds = 0;
  PresenceCalibration calibration;       // empty scores when calibrate_on is 0
};

// Trains the ViT and the heads together on `training`.
template <class T>
VisionPretrainingResult pretrain_vision(vision::ViT3D<T>& vit, VisionPretrainingHeads<T>& heads,
                                        const std::vector<VisionExample>& training, const VisionPretrainingOptions& o) {
  CTMLLM_CHECK(o.steps > 0 && o.batch > 0 && o.warmup >= 0 && o.log_every > 0,
               "pretrain_vision: steps, batch and log_every must be positive, warmup >= 0");
  CTMLLM_CHECK(!training.empty(), "pretrain_vision: no training examples");
  auto params = vit.parameters().trainable();
  for (const auto& p : heads.parameters().trainable()) params.push_back(p);
  AdamW<T> opt(params, {.lr = o.lr, .weight_decay = o.weight_decay});
  const Schedule schedule(ScheduleKind::cosine, o.warmup, o.steps);
  Rng shuffle_rng(data::derive_seed(o.seed, 1)), aug_rng(data::derive_seed(o.seed, 2));
  std::vector<size_t> order(training.size());
  std::iota(order.begin(), order.end(), size_t(0));
  size_t cursor = order.size();
  const int window = std::max(1, o.steps / 10);
  VisionPretrainingResult r;
  double sums[3] = {0, 0, 0};
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < o.steps; ++step) {
    std::vector<size_t> idx;
    while (int(idx.size()) < o.batch) {
      if (cursor == order.size()) {  // a new epoch: a Fisher-Yates shuffle from one block of draws
        const uint64_t base = shuffle_rng.take(order.size());
        for (size_t i = order.size(); i > 1; --i)
          std::swap(order[i - 1], order[size_t(shuffle_rng.uniform_at(base + i - 1) * double(i)) % i]);
        cursor = 0;
      }
      idx.push_back(order[cursor++]);
    }
    VisionBatch b = make_vision_batch(training, idx);
    if (o.augment) b.volumes = vision::augment_intensity(b.volumes, aug_rng);
    opt.set_lr_factor(schedule(step + 1));
    const auto loss = heads(vit.forward(autograd::Variable<T>(b.volumes.template to<T>())), b);
    loss.total.backward();
    opt.step();
    opt.zero_grad();
    const double l = double(loss.total.value().item());
    CTMLLM_CHECK(std::isfinite(l), "pretrain_vision: the loss is ", l, " at step ", step + 1, "; lower the learning rate");
    if (step < window) r.first_loss += l / window;
    if (step >= o.steps - window) r.last_loss += l / window;
    sums[0] += double(loss.patch.value().item());
    sums[1] += double(loss.finding.value().item());
    sums[2] += double(loss.presence.value().item());
    if ((step + 1) % o.log_every == 0) {
      if (o.on_log) o.on_log(step + 1, sums[0] / o.log_every, sums[1] / o.log_every, sums[2] / o.log_every);
      sums[0] = sums[1] = sums[2] = 0;
    }
  }
  if (o.calibrate_on > 0) {
    const std::vector<VisionExample> subset(training.begin(),
                                            training.begin() + std::min<ptrdiff_t>(o.calibrate_on, ptrdiff_t(training.size())));
    r.calibration = calibrate_presence_bias(vit, heads, subset);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

struct DetectionResult {
  eval::FindingScores scores;  // per finding kind: presence logit > 0 against the finding list
  double patch_accuracy = 0;   // patches classed right, over all held-out patches
  std::array<double, data::kNumFindingKinds> finding_patch_accuracy{};  // per kind, over its patches
};

template <class T>
DetectionResult evaluate_detection(const vision::ViT3D<T>& vit, const VisionPretrainingHeads<T>& heads,
                                   const std::vector<VisionExample>& held_out, int batch = 8) {
  std::vector<std::vector<bool>> predicted, reference;
  int64_t patches = 0, right = 0;
  std::array<int64_t, data::kNumFindingKinds> kind_patches{}, kind_right{};
  for_each_detection_batch(vit, heads, held_out, batch, [&](const std::vector<size_t>& idx, const Tensor<float>& classes,
                                                            const Tensor<float>& presence, const VisionBatch& b) {
    for (int64_t r = 0; r < classes.size(0) * classes.size(1); ++r) {
      const float* row = classes.data() + r * kNumPatchClasses;
      const int64_t guess = std::max_element(row, row + kNumPatchClasses) - row, truth = b.patch_classes.at(r);
      ++patches;
      right += guess == truth;
      if (truth >= data::label::kNumOrgans) {
        ++kind_patches[size_t(truth - data::label::kNumOrgans)];
        kind_right[size_t(truth - data::label::kNumOrgans)] += guess == truth;
      }
    }
    for (size_t j = 0; j < idx.size(); ++j) {
      predicted.emplace_back();
      reference.emplace_back();
      for (int k = 0; k < data::kNumFindingKinds; ++k) {
        predicted.back().push_back(double(presence.at(int64_t(j), k)) > 0);
        reference.back().push_back(held_out[idx[j]].present[size_t(k)]);
      }
    }
  });
  std::vector<std::string> kinds;
  for (const auto& k : data::kFindingKinds) kinds.push_back(k.name);
  DetectionResult d;
  d.scores = eval::score_finding_labels(kinds, predicted, reference);
  d.patch_accuracy = double(right) / double(std::max<int64_t>(1, patches));
  for (size_t k = 0; k < kind_patches.size(); ++k)
    d.finding_patch_accuracy[k] = double(kind_right[k]) / double(std::max<int64_t>(1, kind_patches[k]));
  return d;
}

}  // namespace ctmllm::train
