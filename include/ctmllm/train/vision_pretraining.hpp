#pragma once
// Stage 1 of the demo: supervised pretraining of a vision::ViT3D on labelled CT volumes (the
// synthetic phantoms' label maps and finding lists), the paper's "pretrain the encoder first"
// recipe in miniature. A ViT trained from scratch on the report loss alone collapses to "always
// normal"; this head makes every patch token say what it contains before the LLM reads them.
//
//   tokens [B, N, E] ─▶ patch_head Linear(E, 22) per token ─▶ logits z [B, N, 22]
//   presence s[b, k] = max over tokens of z[finding k] + presence_bias[k]
//   loss = CE(all patches) + finding · mean over kinds k of CE(patches of kind k) + presence · BCE(s, present)
//
// Findings fill about 3 % of the patches: with the plain patch loss a small ViT learns the organs
// and never predicts a finding (measured: 0 % of held-out finding patches after 300 steps). One
// term over all finding patches is ruled by the large kinds (an effusion covers dozens of patches,
// a nodule one to three): nodules and cysts stayed undetected after 1000 steps. So each kind's
// patches are averaged on their own (cross_entropy's ignore_index masks the rest), kinds equally.
//
// Patch class (kNumPatchClasses = 15 organs + 7 findings): finding kind k when the patch holds at
// least `finding_fraction` of that finding's voxels or is that full of it, or is the patch holding
// most of it; otherwise the patch's majority organ. Patches with a sliver of a finding stay organ
// patches: labelling them (fraction 0.1) taught the ViT to call normal liver "cyst".
//
// Presence is a multiple-instance max over the same head's finding logit. Its case-level loss
// pushes up the best candidate patch of a missed finding and pushes down the strongest
// false-positive patch of a healthy case (a separate max-pooled presence head stayed at the prior's
// loss for 300 steps), and it makes that maximum itself tell cases apart: stage 2's summary token
// reads exactly these maxima (projector/spp.hpp). Measured on the demo with the earlier margin form
// (finding logit minus the best organ logit, maxed): the raw maxima of the focal kinds moved by
// 0.2-1.4 between cases with and without the finding, against 4.5-5.8 for the effusions and
// splenomegaly, and stage 2 stated only the latter. The bias is the case-level threshold
// (calibrate_presence_bias sets it after training). Binary cross-entropy is the two-class
// cross_entropy over [0, s]. A fourth term, every token predicting which kinds its case holds,
// stayed at the prior's loss for whole demo runs and was dropped (docs/DEMO.md, "What limits it" 8).
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/loss.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/autograd/shape_ops.hpp"
#include "ctmllm/data/findings.hpp"
#include "ctmllm/nn/linear.hpp"
#include "ctmllm/ops/shape_ops.hpp"
#include "ctmllm/vision/preprocess.hpp"
#include "ctmllm/vision/vit3d.hpp"

namespace ctmllm::train {

inline constexpr int64_t kNumPatchClasses = data::label::kNumOrgans + data::kNumFindingKinds;

// Label-map value -> patch class: organs keep their id, finding kind k becomes kNumOrgans + k.
inline int64_t patch_class_of_label(uint8_t v) {
  if (v < data::label::kNumOrgans) return v;
  CTMLLM_CHECK(v >= data::label::kFirstFinding && v < data::label::kFirstFinding + data::kNumFindingKinds,
               "vision pretraining: label value ", int(v), " is neither an organ nor a finding");
  return data::label::kNumOrgans + (v - data::label::kFirstFinding);
}

// One training volume with its targets.
struct VisionExample {
  Tensor<float, Cpu> volume;                       // [1, 1, D, H, W], preprocessed
  Tensor<int64_t, Cpu> patch_classes;              // [N], patch grid order (d, h, w)
  std::array<bool, data::kNumFindingKinds> present{};
};

// The class of every patch of `grid` over a label map [z, y, x]. A label voxel belongs to the
// patch its position falls in proportionally (the preprocessing keeps the scan's extent on every
// axis, so this matches the ViT's patches for any depth resampling).
inline Tensor<int64_t, Cpu> patch_classes(const Tensor<uint8_t, Cpu>& labels, const std::array<int64_t, 3>& grid,
                                          double finding_fraction) {
  CTMLLM_CHECK(labels.defined() && labels.rank() == 3, "patch_classes: the label map must be [z, y, x], got ",
               labels.defined() ? labels.describe() : std::string("an undefined tensor"));
  CTMLLM_CHECK(finding_fraction > 0 && finding_fraction <= 1, "patch_classes: finding_fraction ", finding_fraction,
               " must be in (0, 1]");
  for (int a = 0; a < 3; ++a)
    CTMLLM_CHECK(grid[size_t(a)] > 0 && grid[size_t(a)] <= labels.size(a), "patch_classes: grid ",
                 Shape{grid[0], grid[1], grid[2]}, " does not fit the label map ", labels.describe());
  const Tensor<uint8_t, Cpu> l = labels.contiguous();
  const int64_t nz = l.size(0), ny = l.size(1), nx = l.size(2), n = grid[0] * grid[1] * grid[2];
  const int64_t c = kNumPatchClasses;
  std::vector<int64_t> counts(size_t(n * c), 0), voxels(size_t(n), 0), total(size_t(c), 0);
  const uint8_t* p = l.data();
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j)
      for (int64_t i = 0; i < nx; ++i) {
        const int64_t patch = ((k * grid[0] / nz) * grid[1] + j * grid[1] / ny) * grid[2] + i * grid[2] / nx;
        const int64_t cls = patch_class_of_label(p[(k * ny + j) * nx + i]);
        ++counts[size_t(patch * c + cls)];
        ++voxels[size_t(patch)];
        ++total[size_t(cls)];
      }
  auto share = [&](int64_t t, int64_t f) {
    return double(counts[size_t(t * c + f)]) / double(std::max<int64_t>(1, std::min(voxels[size_t(t)], total[size_t(f)])));
  };
  // Each finding's best patch counts whatever its share: a thin or spread-out finding (a bladder
  // wall reaches 0.14 at best) still labels one patch while the others need `finding_fraction`.
  std::vector<int64_t> top(size_t(c), -1);
  for (int64_t f = data::label::kNumOrgans; f < c; ++f)
    for (int64_t t = 0; t < n; ++t)
      if (counts[size_t(t * c + f)] > 0 && (top[size_t(f)] < 0 || share(t, f) > share(top[size_t(f)], f))) top[size_t(f)] = t;
  Tensor<int64_t, Cpu> out = Tensor<int64_t, Cpu>::empty({n});
  for (int64_t t = 0; t < n; ++t) {
    const int64_t* h = counts.data() + t * c;
    int64_t best = 0;
    double best_share = 0;
    for (int64_t f = data::label::kNumOrgans; f < c; ++f) {
      if (h[f] == 0 || (share(t, f) < finding_fraction && top[size_t(f)] != t)) continue;
      if (share(t, f) > best_share) best = f, best_share = share(t, f);
    }
    if (best_share == 0) best = std::max_element(h, h + data::label::kNumOrgans) - h;
    out.at(t) = best;
  }
  return out;
}

struct VisionExampleOptions {
  vision::CtPreprocessOptions preprocess{.size = data::kModelInputShape};
  double finding_fraction = 0.3;
};

// hu [z, y, x] in Hounsfield units with its label map (same grid) and ground-truth findings.
inline VisionExample make_vision_example(const Tensor<float, Cpu>& hu, const Tensor<uint8_t, Cpu>& labels,
                                         double z_spacing_mm, const std::vector<data::Finding>& findings,
                                         const std::array<int64_t, 3>& patch_size, const VisionExampleOptions& o = {}) {
  CTMLLM_CHECK(hu.defined() && labels.defined() && hu.shape() == labels.shape(),
               "make_vision_example: the CT and the label map must have the same shape, got ",
               hu.defined() ? hu.describe() : std::string("none"), " and ",
               labels.defined() ? labels.describe() : std::string("none"));
  std::array<int64_t, 3> grid{};
  for (int a = 0; a < 3; ++a) {
    CTMLLM_CHECK(o.preprocess.size[size_t(a)] % patch_size[size_t(a)] == 0, "make_vision_example: input size ",
                 o.preprocess.size[size_t(a)], " is not divisible by the patch ", patch_size[size_t(a)]);
    grid[size_t(a)] = o.preprocess.size[size_t(a)] / patch_size[size_t(a)];
  }
  VisionExample e{vision::preprocess_ct(hu, z_spacing_mm, o.preprocess), patch_classes(labels, grid, o.finding_fraction), {}};
  for (const data::Finding& f : findings) e.present[size_t(f.kind)] = true;
  return e;
}

// A stacked batch of examples[indices]: volumes [B, 1, D, H, W], patch classes [B·N], presence [B·K].
struct VisionBatch {
  Tensor<float, Cpu> volumes;
  Tensor<int64_t, Cpu> patch_classes, presence;
};

inline VisionBatch make_vision_batch(const std::vector<VisionExample>& examples, const std::vector<size_t>& indices) {
  CTMLLM_CHECK(!indices.empty(), "make_vision_batch: no examples");
  std::vector<Tensor<float, Cpu>> volumes;
  std::vector<Tensor<int64_t, Cpu>> classes;
  Tensor<int64_t, Cpu> presence = Tensor<int64_t, Cpu>::empty({int64_t(indices.size()) * data::kNumFindingKinds});
  for (size_t b = 0; b < indices.size(); ++b) {
    CTMLLM_CHECK(indices[b] < examples.size(), "make_vision_batch: index ", indices[b], " of ", examples.size());
    const VisionExample& e = examples[indices[b]];
    volumes.push_back(e.volume);
    classes.push_back(e.patch_classes);
    for (int k = 0; k < data::kNumFindingKinds; ++k)
      presence.at(int64_t(b) * data::kNumFindingKinds + k) = e.present[size_t(k)] ? 1 : 0;
  }
  return {ops::concat(volumes, 0), ops::concat(classes, 0), presence};
}

struct VisionLossWeights {
  double finding = 0.5;   // the finding-patch term, relative to the all-patch term (0.3 learns too slowly)
  double presence = 1.0;  // the presence term
};

template <class T, class D = Cpu>
struct VisionPretrainingLoss {
  autograd::Variable<T, D> total, patch, finding, presence;  // the weighted sum and its three terms
  Tensor<T, D> presence_logits;                              // [B, K]: > 0 means "present"
};

// The patch head on top of a ViT3D's final tokens, with its own parameters ("patch_head.*");
// train them together with the ViT's.
template <class T, class D = Cpu>
class VisionPretrainingHeads {
 public:
  using Var = autograd::Variable<T, D>;

  explicit VisionPretrainingHeads(int64_t hidden_size, VisionLossWeights weights = {})
      : patch_head_(params_, "patch_head", hidden_size, kNumPatchClasses),
        presence_bias_(params_.add("presence_bias", Tensor<T, D>::zeros({data::kNumFindingKinds}))),
        weights_(weights) {
    CTMLLM_CHECK(weights.finding >= 0 && weights.presence >= 0, "VisionPretrainingHeads: loss weights must be >= 0, got ",
                 weights.finding, " and ", weights.presence);
  }

  void init(Rng& rng) { patch_head_.init(rng); }
  autograd::Parameters<T, D>& parameters() { return params_; }
  const autograd::Parameters<T, D>& parameters() const { return params_; }

  // Patch-class logits [B, N, kNumPatchClasses] from tokens [B, N, E].
  Var patch_logits(const Var& tokens) const { return patch_head_(tokens); }
  // Presence logits [B, K] from patch logits [B, N, kNumPatchClasses].
  Var presence_logits(const Var& z) const {
    const Var findings = autograd::slice(z, 2, data::label::kNumOrgans, kNumPatchClasses);  // [B, N, K]
    return autograd::add(autograd::max(findings, 1).values, presence_bias_);
  }

  VisionPretrainingLoss<T, D> operator()(const vision::ViT3DOutput<T, D>& out, const VisionBatch& batch) const {
    const Var& tokens = out.tokens;
    const int64_t b = tokens.size(0), n = tokens.size(1), k = data::kNumFindingKinds;
    CTMLLM_CHECK(batch.patch_classes.numel() == b * n && batch.presence.numel() == b * k,
                 "VisionPretrainingHeads: targets for ", batch.patch_classes.numel(), " patches and ",
                 batch.presence.numel(), " presence flags, the tokens are ", tokens.value().describe());
    VisionPretrainingLoss<T, D> l;
    const Var z = patch_logits(tokens);
    const Var logits = autograd::reshape(z, {b * n, kNumPatchClasses});
    const Tensor<int64_t, D> classes = batch.patch_classes.template to_device<D>();
    l.patch = autograd::cross_entropy(logits, classes);
    std::vector<Var> per_kind;
    for (int64_t f = data::label::kNumOrgans; f < kNumPatchClasses; ++f) {
      Tensor<int64_t, Cpu> only = batch.patch_classes.clone();
      bool any = false;
      for (int64_t i = 0; i < only.numel(); ++i) {
        if (only.data()[i] != f) only.data()[i] = kIgnore;
        any = any || only.data()[i] == f;
      }
      if (any) per_kind.push_back(autograd::cross_entropy(logits, only.template to_device<D>(), kIgnore));
    }
    l.finding = per_kind.empty() ? Var(Tensor<T, D>::zeros({1})) : per_kind[0];
    for (size_t i = 1; i < per_kind.size(); ++i) l.finding = autograd::add(l.finding, per_kind[i]);
    if (per_kind.size() > 1) l.finding = autograd::mul_scalar(l.finding, 1.0 / double(per_kind.size()));
    const Var s = presence_logits(z);
    l.presence_logits = s.value();
    const Var zero(Tensor<T, D>::zeros({b * k, 1}));
    const Var two_class = autograd::concat(std::vector<Var>{zero, autograd::reshape(s, {b * k, 1})}, 1);
    l.presence = autograd::cross_entropy(two_class, batch.presence.template to_device<D>());
    l.total = autograd::add(autograd::add(l.patch, autograd::mul_scalar(l.finding, weights_.finding)),
                            autograd::mul_scalar(l.presence, weights_.presence));
    return l;
  }

 private:
  autograd::Parameters<T, D> params_;
  static constexpr int64_t kIgnore = -100;
  nn::Linear<T, D> patch_head_;
  Var presence_bias_;  // [K], starts at 0
  VisionLossWeights weights_;
};

}  // namespace ctmllm::train
