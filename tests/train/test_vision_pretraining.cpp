// Stage-1 vision pretraining: patch classes from label maps, examples and batches from phantoms,
// the presence logits, the heads' loss gradient (float64 finite differences), a tiny ViT whose loss
// falls, and the calibrated presence thresholds.
#include <array>
#include <set>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/data/phantom.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/vision_pretraining_run.hpp"
#include "support/catch.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using train::kNumPatchClasses;

namespace {

data::PhantomConfig every_kind() {
  data::PhantomConfig cfg;
  cfg.prevalence.fill(1.0);
  return cfg;
}

// Examples of the phantoms of `seeds` on a 16x32x32 grid, and a one-block ViT for them.
constexpr std::array<int64_t, 3> kTinyGrid = {16, 32, 32};

std::vector<train::VisionExample> tiny_examples(const data::PhantomConfig& cfg, uint64_t first, uint64_t last) {
  train::VisionExampleOptions o;
  o.preprocess.size = kTinyGrid;
  std::vector<train::VisionExample> examples;
  for (uint64_t seed = first; seed < last; ++seed) {
    const data::Phantom p = data::make_phantom(cfg, seed);
    examples.push_back(train::make_vision_example(p.ct.to<float>(), p.labels, p.spacing[2], p.findings, {4, 8, 8}, o));
  }
  return examples;
}

vision::ViT3DConfig tiny_vit() {
  vision::ViT3DConfig cfg;
  cfg.img_size = kTinyGrid;
  cfg.patch_size = {4, 8, 8};
  cfg.hidden_size = 32;
  cfg.num_layers = 1;
  cfg.num_heads = 2;
  cfg.mlp_dim = 64;
  return cfg;
}

}  // namespace

TEST_CASE("patch classes: majority organ, or a finding holding enough of the patch or of itself",
          "[train][vision_pretraining]") {
  // 4x4x4 label map, 2x2x2 grid: patches of 2x2x2 voxels (8 each).
  Tensor<uint8_t, Cpu> l = Tensor<uint8_t, Cpu>::full({4, 4, 4}, data::label::body);
  const uint8_t nodule = data::kind_label(data::FindingKind::lung_nodule);
  const uint8_t cyst = data::kind_label(data::FindingKind::liver_cyst);
  for (int64_t k = 0; k < 2; ++k)  // patch (0, 0, 0): 6 liver voxels, 2 body
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < 2; ++i) l.at(k, j, i) = (k == 1 && j == 1) ? data::label::body : data::label::liver;
  l.at(0, 0, 2) = cyst;  // patch (0, 0, 1): 1 of 8 voxels, but the whole (1-voxel) cyst
  l.at(2, 2, 2) = nodule;  // patch (1, 1, 1): 1 of the 4 nodule voxels, the other 3 in patch (1, 1, 0)
  l.at(2, 2, 0) = l.at(2, 3, 0) = l.at(3, 2, 0) = nodule;
  const Tensor<int64_t, Cpu> c = train::patch_classes(l, {2, 2, 2}, 0.3);
  REQUIRE(c.numel() == 8);
  CHECK(c.at(0) == data::label::liver);
  CHECK(c.at(1) == data::label::kNumOrgans + int64_t(data::FindingKind::liver_cyst));
  CHECK(c.at(6) == data::label::kNumOrgans + int64_t(data::FindingKind::lung_nodule));  // 3 of the 4 nodule voxels
  CHECK(c.at(7) == data::label::body);                                                 // 1 of 4 < 0.3
  CHECK(c.at(2) == data::label::body);
  CHECK_THROWS_AS(train::patch_classes(l, {8, 2, 2}, 0.3), Error);
  l.at(3, 3, 3) = 17;  // neither organ nor finding
  CHECK_THROWS_AS(train::patch_classes(l, {2, 2, 2}, 0.3), Error);
}

TEST_CASE("a phantom's example marks every present kind in some patch", "[train][vision_pretraining]") {
  const train::VisionExampleOptions o;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const data::Phantom p = data::make_phantom(every_kind(), seed);
    const train::VisionExample e = train::make_vision_example(p.ct.to<float>(), p.labels, p.spacing[2], p.findings,
                                                              {4, 8, 8}, o);
    CHECK(e.volume.shape() == Shape{1, 1, 32, 64, 64});
    REQUIRE(e.patch_classes.numel() == 8 * 8 * 8);
    std::set<int64_t> seen;
    for (int64_t i = 0; i < e.patch_classes.numel(); ++i) seen.insert(e.patch_classes.at(i));
    for (const data::Finding& f : p.findings) {
      INFO("seed " << seed << ", " << data::kind_name(f.kind));
      CHECK(e.present[size_t(f.kind)]);
      CHECK(seen.count(data::label::kNumOrgans + int64_t(f.kind)) == 1);
    }
  }
  const data::Phantom p = data::make_phantom({}, 4);
  CHECK_THROWS_AS(train::make_vision_example(p.ct.to<float>(), p.labels, 5.0, p.findings, {4, 7, 8}, o), Error);
}

TEST_CASE("the pretraining loss has the gradient of its definition (float64)", "[train][vision_pretraining]") {
  using V = autograd::Variable<double>;
  Rng rng(3);
  train::VisionPretrainingHeads<double> heads(6, {.finding = 2.0, .presence = 0.7});
  heads.init(rng);
  train::VisionBatch b{Tensor<float, Cpu>(), Tensor<int64_t, Cpu>::empty({2 * 5}),
                       Tensor<int64_t, Cpu>::empty({2 * data::kNumFindingKinds})};
  for (int64_t i = 0; i < 10; ++i) b.patch_classes.at(i) = (i * 7) % kNumPatchClasses;
  for (int64_t i = 0; i < 2 * data::kNumFindingKinds; ++i) b.presence.at(i) = i % 3 == 0;
  const V tokens(rng.normal<double>({2, 5, 6}), true);
  std::vector<V> inputs{tokens};
  for (const V& p : heads.parameters().trainable()) inputs.push_back(p);
  const double err = testing::gradcheck(
      [&](const std::vector<V>& in) {
        vision::ViT3DOutput<double, Cpu> out;
        out.tokens = in[0];
        return heads(out, b).total;
      },
      inputs);
  CHECK(err < 1e-6);
}

TEST_CASE("presence is each finding logit's maximum over the tokens plus the bias", "[train][vision_pretraining]") {
  Rng rng(4);
  train::VisionPretrainingHeads<float> heads(8);
  heads.init(rng);
  Tensor<float> bias = heads.parameters().get("presence_bias").value();
  for (int k = 0; k < data::kNumFindingKinds; ++k) bias.at(k) = 0.25f * float(k) - 1;
  const autograd::Variable<float> z(rng.normal<float>({2, 6, kNumPatchClasses}));
  const Tensor<float> s = heads.presence_logits(z).value();
  REQUIRE(s.shape() == Shape{2, data::kNumFindingKinds});
  for (int64_t b = 0; b < 2; ++b)
    for (int k = 0; k < data::kNumFindingKinds; ++k) {
      float m = z.value().at(b, 0, data::label::kNumOrgans + k);
      for (int64_t t = 1; t < 6; ++t) m = std::max(m, z.value().at(b, t, data::label::kNumOrgans + k));
      CHECK(s.at(b, k) == m + bias.at(k));
    }
}

TEST_CASE("a tiny ViT's pretraining loss falls and its gradients reach the encoder", "[train][vision_pretraining]") {
  const std::vector<train::VisionExample> examples = tiny_examples({}, 10, 14);
  const vision::ViT3DConfig cfg = tiny_vit();
  Rng rng(5);
  vision::ViT3D<float> vit(cfg);
  vit.init(rng);
  train::VisionPretrainingHeads<float> heads(cfg.hidden_size);
  heads.init(rng);
  auto params = vit.parameters().trainable();
  for (const auto& p : heads.parameters().trainable()) params.push_back(p);
  train::AdamW<float> opt(params, {.lr = 3e-3, .weight_decay = 0.0});
  const train::VisionBatch b = train::make_vision_batch(examples, {0, 1, 2, 3});
  REQUIRE(b.volumes.shape() == Shape{4, 1, 16, 32, 32});
  REQUIRE(b.patch_classes.numel() == 4 * 4 * 4 * 4);

  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    const auto loss = heads(vit.forward(autograd::Variable<float>(b.volumes)), b);
    CHECK(loss.presence_logits.shape() == Shape{4, data::kNumFindingKinds});
    loss.total.backward();
    if (step == 0) {
      first = loss.total.value().item();
      for (const char* name : {"patch_embedding.patch_embeddings.1.weight", "blocks.0.attn.qkv.weight", "cls_token"}) {
        INFO(name);
        const Tensor<float, Cpu> g = vit.parameters().get(name).grad();
        REQUIRE(g.defined());
        double norm = 0;
        for (int64_t i = 0; i < g.numel(); ++i) norm += double(g.data()[i]) * g.data()[i];
        // The CLS row feeds no head: it learns only as a key and value of the patch tokens.
        CHECK(norm > 0);
      }
    }
    last = loss.total.value().item();
    opt.step();
    opt.zero_grad();
  }
  CHECK(last < 0.5 * first);
}

TEST_CASE("the calibrated presence bias puts each kind's threshold at its best F1 cut", "[train][vision_pretraining]") {
  data::PhantomConfig cfg;
  cfg.prevalence[size_t(data::FindingKind::splenomegaly)] = 0;  // a kind no example has: it must never fire
  const std::vector<train::VisionExample> examples = tiny_examples(cfg, 30, 46);
  const vision::ViT3DConfig vc = tiny_vit();
  Rng rng(8);
  vision::ViT3D<float> vit(vc);
  vit.init(rng);
  train::VisionPretrainingHeads<float> heads(vc.hidden_size);
  heads.init(rng);
  const Tensor<float> before = heads.parameters().get("presence_bias").value().clone();
  const train::PresenceCalibration c = train::calibrate_presence_bias(vit, heads, examples, 5);
  const Tensor<float> after = heads.parameters().get("presence_bias").value();
  for (int k = 0; k < data::kNumFindingKinds; ++k) CHECK(after.at(k) == Approx(before.at(k) + c.shift[size_t(k)]).margin(1e-5));

  std::vector<std::vector<std::pair<float, bool>>> scored(data::kNumFindingKinds);
  train::for_each_detection_batch(vit, heads, examples, 3,
                                  [&](const std::vector<size_t>& idx, const Tensor<float>&, const Tensor<float>& s,
                                      const train::VisionBatch&) {
                                    for (size_t j = 0; j < idx.size(); ++j)
                                      for (int k = 0; k < data::kNumFindingKinds; ++k)
                                        scored[size_t(k)].push_back({s.at(int64_t(j), k), examples[idx[j]].present[size_t(k)]});
                                  });
  auto f1_above = [](const std::vector<std::pair<float, bool>>& v, double t) {
    double tp = 0, fp = 0, fn = 0;
    for (const auto& [score, present] : v) {
      tp += score > t && present;
      fp += score > t && !present;
      fn += score <= t && present;
    }
    return tp == 0 ? 0.0 : 2 * tp / (2 * tp + fp + fn);
  };
  for (int k = 0; k < data::kNumFindingKinds; ++k) {
    INFO("kind " << data::kFindingKinds[size_t(k)].name);
    const auto& v = scored[size_t(k)];
    // The returned scores are the logits under the new bias, example by example.
    REQUIRE(c.scores[size_t(k)].size() == v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      CHECK(c.scores[size_t(k)][i].first == Approx(v[i].first).margin(1e-4));
      CHECK(c.scores[size_t(k)][i].second == v[i].second);
    }
    double best = 0;  // every threshold that separates the scores differently: just below each score
    for (const auto& e : v) best = std::max(best, f1_above(v, double(e.first) - 1e-4));
    CHECK(f1_above(v, 0) == Approx(best));
    if (k == int(data::FindingKind::splenomegaly))
      for (const auto& e : v) CHECK(e.first <= 0);
  }
}
