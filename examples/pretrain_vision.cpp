// Stage 1 of the demo on its own: pretrains a small vision::ViT3D on synthetic phantoms with
// train::VisionPretrainingHeads (per-patch organ/finding classes + per-kind presence), then prints
// held-out detection precision / recall / F1 per finding kind and the time of every stage.
//
// Data: phantoms generated in memory (cases derive_seed(seed, i), as write_synthetic_dataset
// numbers them: training first, then validation), or --dataset DIR/dataset.json written by
// data::write_synthetic_dataset (its labelsTr / findingsTr are the targets).
//
// Exit status: 0 when the training loss fell and every kind's held-out F1 reached --min-f1, 2 when
// not, 1 on an error.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/core.hpp"
#include "ctmllm/data/amos.hpp"
#include "ctmllm/data/phantom.hpp"
#include "ctmllm/data/sampler.hpp"
#include "ctmllm/eval/findings.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/vision_pretraining.hpp"
#include "ctmllm/vision/vit3d.hpp"

using namespace ctmllm;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Split {
  std::vector<train::VisionExample> training, validation;
};

static Split generate(int n_train, int n_val, uint64_t seed, const std::array<int64_t, 3>& patch,
                      const train::VisionExampleOptions& o) {
  Split s;
  for (int i = 0; i < n_train + n_val; ++i) {
    const data::Phantom p = data::make_phantom({}, data::derive_seed(seed, uint64_t(i)));
    auto e = train::make_vision_example(p.ct.to<float>(), p.labels, p.spacing[2], p.findings, patch, o);
    (i < n_train ? s.training : s.validation).push_back(std::move(e));
  }
  return s;
}

static Split read(const std::string& path, const std::array<int64_t, 3>& patch, const train::VisionExampleOptions& o) {
  const data::AmosDataset d = data::read_amos_dataset(path);
  auto load = [&](const std::vector<data::AmosCase>& cases) {
    std::vector<train::VisionExample> out;
    for (const data::AmosCase& c : cases) {
      CTMLLM_CHECK(!c.label.empty() && !c.finding_list.empty(), path, ": case ", c.id,
                   " has no label map or finding list to pretrain on");
      const io::NiftiImage ct = io::read_nifti(c.image);
      out.push_back(train::make_vision_example(ct.data, io::read_nifti(c.label).data.to<uint8_t>(), ct.spacing[2],
                                               data::read_finding_list(c.finding_list), patch, o));
    }
    return out;
  };
  return {load(d.training), load(d.validation)};
}

int main(int argc, char** argv) {
  CLI::App app{"Pretrains a small 3D ViT on synthetic CT phantoms (patch classes + finding presence) and reports "
               "held-out detection F1 per finding kind."};
  std::string dataset;
  int n_train = 400, n_val = 100, steps = 1000, threads = 0, batch = 4, warmup = 40;
  uint64_t seed = 1;
  double lr = 2e-3, weight_decay = 0.05, min_f1 = 0.0;
  train::VisionLossWeights weights;
  std::vector<int64_t> input{data::kModelInputShape.begin(), data::kModelInputShape.end()}, patch{4, 8, 8};
  vision::ViT3DConfig vit_cfg;
  vit_cfg.hidden_size = 128;
  vit_cfg.num_layers = 2;
  vit_cfg.num_heads = 4;
  vit_cfg.mlp_dim = 256;
  train::VisionExampleOptions ex;
  app.add_option("--dataset", dataset, "dataset.json from write_synthetic_dataset (default: generate phantoms)");
  app.add_option("--train", n_train, "phantoms to generate for training")->capture_default_str();
  app.add_option("--val", n_val, "held-out phantoms to generate")->capture_default_str();
  app.add_option("--seed", seed, "dataset seed")->capture_default_str();
  app.add_option("--input", input, "model input D H W")->expected(3)->capture_default_str();
  app.add_option("--patch", patch, "ViT patch D H W")->expected(3)->capture_default_str();
  app.add_option("--hidden", vit_cfg.hidden_size, "ViT width")->capture_default_str();
  app.add_option("--layers", vit_cfg.num_layers, "ViT blocks")->capture_default_str();
  app.add_option("--heads", vit_cfg.num_heads, "attention heads")->capture_default_str();
  app.add_option("--mlp", vit_cfg.mlp_dim, "MLP width")->capture_default_str();
  app.add_option("--steps", steps, "AdamW steps")->capture_default_str();
  app.add_option("--batch", batch, "volumes per step")->capture_default_str();
  app.add_option("--lr", lr, "peak learning rate")->capture_default_str();
  app.add_option("--warmup", warmup, "linear warm-up steps (then cosine decay to 0)")->capture_default_str();
  app.add_option("--weight-decay", weight_decay, "AdamW weight decay")->capture_default_str();
  app.add_option("--finding-weight", weights.finding, "weight of the finding-patch loss")->capture_default_str();
  app.add_option("--presence-weight", weights.presence, "weight of the presence loss")->capture_default_str();
  app.add_option("--finding-fraction", ex.finding_fraction, "share that makes a patch a finding patch")
      ->capture_default_str();
  app.add_option("--min-f1", min_f1, "fail (exit 2) when a kind's held-out F1 is below this")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: OpenMP's default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    CTMLLM_CHECK(steps > 0 && batch > 0 && warmup >= 0, "--steps and --batch must be positive");
    if (threads > 0) set_num_threads(threads);
    ex.preprocess.size = {input[0], input[1], input[2]};
    vit_cfg.img_size = {input[0], input[1], input[2]};
    vit_cfg.patch_size = {patch[0], patch[1], patch[2]};
    vit_cfg.validate("--input/--patch/--hidden/--heads");
    const std::array<int64_t, 3> patch3{patch[0], patch[1], patch[2]};

    auto t = Clock::now();
    const Split data = dataset.empty() ? generate(n_train, n_val, seed, patch3, ex) : read(dataset, patch3, ex);
    const double t_data = seconds_since(t);
    CTMLLM_CHECK(!data.training.empty() && !data.validation.empty(), "need training and validation cases");
    std::printf("data: %zu training + %zu held-out cases (%s) in %.1f s, input %lldx%lldx%lld, %d threads\n",
                data.training.size(), data.validation.size(), dataset.empty() ? "generated" : dataset.c_str(), t_data,
                (long long)input[0], (long long)input[1], (long long)input[2], num_threads());

    Rng init_rng(seed + 101), aug_rng(seed + 102);
    vision::ViT3D<float> vit(vit_cfg);
    vit.init(init_rng);
    train::VisionPretrainingHeads<float> heads(vit_cfg.hidden_size, weights);
    heads.init(init_rng);
    auto params = vit.parameters().trainable();
    for (const auto& p : heads.parameters().trainable()) params.push_back(p);
    train::AdamW<float> opt(params, {.lr = lr, .weight_decay = weight_decay});
    std::printf("ViT3D: hidden %lld, %lld layers, %lld heads, mlp %lld, patch %lldx%lldx%lld -> %lld tokens, %lld "
                "parameters; %d steps of batch %d, lr %g\n",
                (long long)vit_cfg.hidden_size, (long long)vit_cfg.num_layers, (long long)vit_cfg.num_heads,
                (long long)vit_cfg.mlp_dim, (long long)patch[0], (long long)patch[1], (long long)patch[2],
                (long long)vit_cfg.num_patches(), (long long)vit.parameters().numel(), steps, batch, lr);

    // Epochs of shuffled order (a Philox permutation per epoch), intensity augmentation per volume.
    std::vector<size_t> order(data.training.size());
    std::iota(order.begin(), order.end(), size_t(0));
    size_t cursor = order.size();
    Rng shuffle_rng(seed + 103);
    const int window = std::max(1, steps / 10), every = std::max(1, steps / 15);
    double first = 0, last = 0, run_patch = 0, run_finding = 0, run_presence = 0;
    t = Clock::now();
    for (int step = 1; step <= steps; ++step) {
      std::vector<size_t> idx;
      while (int(idx.size()) < batch) {
        if (cursor == order.size()) {
          const uint64_t base = shuffle_rng.take(order.size());
          for (size_t i = order.size(); i > 1; --i)
            std::swap(order[i - 1], order[size_t(shuffle_rng.uniform_at(base + i - 1) * double(i)) % i]);
          cursor = 0;
        }
        idx.push_back(order[cursor++]);
      }
      train::VisionBatch b = train::make_vision_batch(data.training, idx);
      b.volumes = vision::augment_intensity(b.volumes, aug_rng);
      const double progress = double(step - warmup) / double(std::max(1, steps - warmup));
      opt.set_lr_factor(step <= warmup ? double(step) / warmup : 0.5 * (1 + std::cos(M_PI * progress)));
      const auto loss = heads(vit.forward(autograd::Variable<float>(b.volumes)), b);
      loss.total.backward();
      opt.step();
      opt.zero_grad();
      const double l = loss.total.value().item();
      CTMLLM_CHECK(std::isfinite(l), "training diverged at step ", step, "; try a smaller --lr");
      if (step <= window) first += l / window;
      if (step > steps - window) last += l / window;
      run_patch += loss.patch.value().item() / every;
      run_finding += loss.finding.value().item() / every;
      run_presence += loss.presence.value().item() / every;
      if (step % every == 0) {
        std::printf("step %4d  loss: patch %.4f  finding %.4f  presence %.4f  %.2f s/step\n", step, run_patch,
                    run_finding, run_presence, seconds_since(t) / step);
        std::fflush(stdout);
        run_patch = run_finding = run_presence = 0;
      }
    }
    const double t_train = seconds_since(t);

    // Held-out: presence logit > 0 means "present"; patch accuracy over all and over finding patches.
    t = Clock::now();
    std::vector<std::vector<bool>> predicted, reference;
    int64_t patches = 0, patches_right = 0;
    std::array<int64_t, data::kNumFindingKinds> kind_patches{}, kind_right{};
    {
      autograd::NoGradGuard no_grad;
      for (size_t i = 0; i < data.validation.size(); i += size_t(batch)) {
        std::vector<size_t> idx;
        for (size_t j = i; j < std::min(data.validation.size(), i + size_t(batch)); ++j) idx.push_back(j);
        const train::VisionBatch b = train::make_vision_batch(data.validation, idx);
        const auto out = vit.forward(autograd::Variable<float>(b.volumes));
        const auto loss = heads(out, b);
        const Tensor<float> classes = heads.patch_logits(out.tokens).value();
        for (int64_t r = 0; r < classes.size(0) * classes.size(1); ++r) {
          const float* row = classes.data() + r * train::kNumPatchClasses;
          const int64_t guess = std::max_element(row, row + train::kNumPatchClasses) - row;
          const int64_t truth = b.patch_classes.at(r);
          ++patches;
          patches_right += guess == truth;
          if (truth >= data::label::kNumOrgans) {
            ++kind_patches[size_t(truth - data::label::kNumOrgans)];
            kind_right[size_t(truth - data::label::kNumOrgans)] += guess == truth;
          }
        }
        for (size_t j = 0; j < idx.size(); ++j) {
          predicted.emplace_back();
          reference.emplace_back();
          for (int k = 0; k < data::kNumFindingKinds; ++k) {
            predicted.back().push_back(loss.presence_logits.at(int64_t(j), k) > 0);
            reference.back().push_back(data.validation[idx[j]].present[size_t(k)]);
          }
        }
      }
    }
    const double t_eval = seconds_since(t);
    std::vector<std::string> kinds;
    for (const auto& k : data::kFindingKinds) kinds.push_back(k.name);
    const eval::FindingScores scores = eval::score_finding_labels(kinds, predicted, reference);
    std::printf("\nheld-out detection (%zu cases); patches: its patches classed right\n%-26s %9s %9s %9s %8s %8s\n",
                predicted.size(), "kind", "precision", "recall", "F1", "support", "patches");
    double worst = 1;
    for (size_t k = 0; k < scores.per_kind.size(); ++k) {
      const auto& s = scores.per_kind[k];
      std::printf("%-26s %9.3f %9.3f %9.3f %8lld %7.1f%%\n", s.kind.c_str(), s.precision, s.recall, s.f1,
                  (long long)s.support(), 100.0 * kind_right[k] / std::max<int64_t>(1, kind_patches[k]));
      worst = std::min(worst, s.f1);
    }
    std::printf("%-26s %9.3f %9.3f %9.3f %8lld\n", "micro", scores.micro.precision, scores.micro.recall,
                scores.micro.f1, (long long)scores.micro.support());
    std::printf("patch classes: %.1f%% right over all %lld patches\n", 100.0 * patches_right / std::max<int64_t>(1, patches),
                (long long)patches);
    std::printf("loss %.4f -> %.4f; time: data %.1f s, training %.1f s (%.2f s/step), evaluation %.1f s\n", first, last,
                t_data, t_train, t_train / steps, t_eval);
    if (!(last < first)) {
      std::fprintf(stderr, "the training loss did not fall\n");
      return 2;
    }
    if (worst < min_f1) {
      std::fprintf(stderr, "the worst kind's F1 %.3f is below --min-f1 %.3f\n", worst, min_f1);
      return 2;
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
