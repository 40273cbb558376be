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
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ctmllm/data/phantom.hpp"
#include "ctmllm/data/sampler.hpp"
#include "ctmllm/train/vision_pretraining_run.hpp"

using namespace ctmllm;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int main(int argc, char** argv) {
  CLI::App app{"Pretrains a small 3D ViT on synthetic CT phantoms (patch classes + finding presence) and reports "
               "held-out detection F1 per finding kind."};
  std::string dataset;
  int n_train = 400, n_val = 100, threads = 0;
  uint64_t seed = 1;
  double min_f1 = 0.0;
  train::VisionPretrainingOptions run{.steps = 1000, .batch = 4, .warmup = 40, .lr = 2e-3, .weight_decay = 0.05};
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
  app.add_option("--steps", run.steps, "AdamW steps")->capture_default_str();
  app.add_option("--batch", run.batch, "volumes per step")->capture_default_str();
  app.add_option("--lr", run.lr, "peak learning rate")->capture_default_str();
  app.add_option("--warmup", run.warmup, "linear warm-up steps (then cosine decay to 0)")->capture_default_str();
  app.add_option("--weight-decay", run.weight_decay, "AdamW weight decay")->capture_default_str();
  app.add_option("--finding-weight", weights.finding, "weight of the finding-patch loss")->capture_default_str();
  app.add_option("--presence-weight", weights.presence, "weight of the presence loss")->capture_default_str();
  app.add_option("--finding-fraction", ex.finding_fraction, "share that makes a patch a finding patch")
      ->capture_default_str();
  app.add_option("--min-f1", min_f1, "fail (exit 2) when a kind's held-out F1 is below this")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: OpenMP's default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) set_num_threads(threads);
    ex.preprocess.size = {input[0], input[1], input[2]};
    vit_cfg.img_size = {input[0], input[1], input[2]};
    vit_cfg.patch_size = {patch[0], patch[1], patch[2]};
    vit_cfg.validate("--input/--patch/--hidden/--heads");

    auto t = Clock::now();
    std::vector<train::VisionExample> training, held_out;
    if (dataset.empty()) {
      for (int i = 0; i < n_train + n_val; ++i) {
        const data::Phantom p = data::make_phantom({}, data::derive_seed(seed, uint64_t(i)));
        (i < n_train ? training : held_out)
            .push_back(train::make_vision_example(p.ct.to<float>(), p.labels, p.spacing[2], p.findings,
                                                  vit_cfg.patch_size, ex));
      }
    } else {
      const data::AmosDataset d = data::read_amos_dataset(dataset);
      training = train::load_vision_examples(d.training, vit_cfg.patch_size, ex);
      held_out = train::load_vision_examples(d.validation, vit_cfg.patch_size, ex);
    }
    const double t_data = seconds_since(t);
    CTMLLM_CHECK(!training.empty() && !held_out.empty(), "need training and validation cases");
    std::printf("data: %zu training + %zu held-out cases (%s) in %.1f s, input %lldx%lldx%lld, %d threads\n",
                training.size(), held_out.size(), dataset.empty() ? "generated" : dataset.c_str(), t_data,
                (long long)input[0], (long long)input[1], (long long)input[2], num_threads());

    Rng init_rng(seed + 101);
    vision::ViT3D<float> vit(vit_cfg);
    vit.init(init_rng);
    train::VisionPretrainingHeads<float> heads(vit_cfg.hidden_size, weights);
    heads.init(init_rng);
    std::printf("ViT3D: hidden %lld, %lld layers, %lld heads, mlp %lld, patch %lldx%lldx%lld -> %lld tokens, %lld "
                "parameters; %d steps of batch %d, lr %g\n",
                (long long)vit_cfg.hidden_size, (long long)vit_cfg.num_layers, (long long)vit_cfg.num_heads,
                (long long)vit_cfg.mlp_dim, (long long)patch[0], (long long)patch[1], (long long)patch[2],
                (long long)vit_cfg.num_patches(), (long long)vit.parameters().numel(), run.steps, run.batch, run.lr);
    run.seed = seed + 102;
    run.log_every = std::max(1, run.steps / 15);
    const auto start = Clock::now();
    run.on_log = [&](int step, double patch_loss, double finding, double presence) {
      std::printf("step %4d  loss: patch %.4f  finding %.4f  presence %.4f  %.2f s/step\n", step, patch_loss, finding,
                  presence, seconds_since(start) / step);
      std::fflush(stdout);
    };
    const train::VisionPretrainingResult r = train::pretrain_vision(vit, heads, training, run);

    t = Clock::now();
    const train::DetectionResult d = train::evaluate_detection(vit, heads, held_out, run.batch);
    const double t_eval = seconds_since(t);
    std::printf("\nheld-out detection (%zu cases); patches: its patches classed right\n%-26s %9s %9s %9s %8s %8s\n",
                held_out.size(), "kind", "precision", "recall", "F1", "support", "patches");
    double worst = 1;
    for (size_t k = 0; k < d.scores.per_kind.size(); ++k) {
      const auto& s = d.scores.per_kind[k];
      std::printf("%-26s %9.3f %9.3f %9.3f %8lld %7.1f%%\n", s.kind.c_str(), s.precision, s.recall, s.f1,
                  (long long)s.support(), 100.0 * d.finding_patch_accuracy[k]);
      worst = std::min(worst, s.f1);
    }
    std::printf("%-26s %9.3f %9.3f %9.3f %8lld\n", "micro", d.scores.micro.precision, d.scores.micro.recall,
                d.scores.micro.f1, (long long)d.scores.micro.support());
    std::printf("patch classes: %.1f%% right\n", 100.0 * d.patch_accuracy);
    std::printf("loss %.4f -> %.4f; time: data %.1f s, training %.1f s (%.2f s/step), evaluation %.1f s\n", r.first_loss,
                r.last_loss, t_data, r.seconds, r.seconds / run.steps, t_eval);
    if (!(r.last_loss < r.first_loss)) {
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
