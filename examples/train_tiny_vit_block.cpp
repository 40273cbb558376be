// A tiny 3D-ViT trained end to end on synthetic CT-like volumes, with the library's public ops and
// autograd only.
//
// Task: each volume (1 channel, S×S×S) holds one bright Gaussian blob in noise; the label is the
// octant (0..7) that holds the blob's centre. Model: patch embedding (a GEMM over patchified voxels)
// + a learned position table, one pre-norm transformer block (layer_norm, multi-head softmax
// attention, GELU MLP, residuals), mean pooling, a final layer_norm and a linear head, trained with
// cross-entropy and plain SGD. Prints the loss going down and the accuracy on held-out volumes.
//
// Exit status: 0 when the training loss fell (last tenth of the steps against the first tenth) and
// the held-out accuracy reached --min-accuracy, 2 when not, 1 on an error; ctest runs it that way.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ctmllm/autograd/activation.hpp"
#include "ctmllm/autograd/attention.hpp"
#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/loss.hpp"
#include "ctmllm/autograd/matmul.hpp"
#include "ctmllm/autograd/norm.hpp"
#include "ctmllm/autograd/parameters.hpp"
#include "ctmllm/autograd/patch_embed.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/autograd/shape_ops.hpp"
#include "ctmllm/core.hpp"
#include "ctmllm/ops/elementwise.hpp"

using namespace ctmllm;
using Var = autograd::Variable<float>;
using Tensor32 = Tensor<float>;

// ---- data ---------------------------------------------------------------------------------------
struct Batch {
  Tensor32 volumes;            // [B, 1, S, S, S]
  Tensor<int64_t> labels;      // [B]: octant = 4·(z ≥ S/2) + 2·(y ≥ S/2) + (x ≥ S/2)
};

// Blob centres lie inside their octant, at least `margin` voxels from its faces, so every label is
// unambiguous; the background is N(0, noise²).
Batch make_batch(Rng& rng, int64_t batch, int64_t size, double noise) {
  Batch b{rng.normal<float>({batch, 1, size, size, size}, 0.0, noise), Tensor<int64_t>::empty({batch})};
  const int64_t half = size / 2;
  const double sigma = std::max(1.0, size / 12.0), margin = std::min(2.0 * sigma, half / 2.0);
  const uint64_t draws = rng.take(uint64_t(batch) * 4);
  float* v = b.volumes.data();
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t label = std::min<int64_t>(7, int64_t(rng.uniform_at(draws + 4 * i) * 8));
    b.labels.at(i) = label;
    double c[3];
    for (int a = 0; a < 3; ++a) {
      const int bit = (label >> (2 - a)) & 1;
      const double u = rng.uniform_at(draws + 4 * i + 1 + a);
      c[a] = bit * half + margin + u * (half - 1 - 2 * margin);
    }
    float* vol = v + i * size * size * size;
    for (int64_t z = 0; z < size; ++z)
      for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) {
          const double d2 = (z - c[0]) * (z - c[0]) + (y - c[1]) * (y - c[1]) + (x - c[2]) * (x - c[2]);
          vol[(z * size + y) * size + x] += float(2.0 * std::exp(-d2 / (2 * sigma * sigma)));
        }
  }
  return b;
}

// ---- model --------------------------------------------------------------------------------------
struct Config {
  int64_t size = 16, patch = 4, dim = 32, heads = 4, mlp = 64, classes = 8;
  int64_t tokens() const { return (size / patch) * (size / patch) * (size / patch); }
};

struct TinyViT {
  Config cfg;
  autograd::Parameters<float> params;

  TinyViT(const Config& c, Rng& rng) : cfg(c) {
    const int64_t E = c.dim, P = c.patch * c.patch * c.patch;
    // Weights N(0, 1/fan_in) (variance-preserving for plain SGD), biases 0, norms' weights 1.
    auto w = [&](const std::string& name, int64_t out, int64_t in) {
      params.add(name, rng.normal<float>({out, in}, 0.0, 1.0 / std::sqrt(double(in))));
    };
    auto zeros = [&](const std::string& name, int64_t n) { params.add(name, Tensor32::zeros({n})); };
    auto ones = [&](const std::string& name, int64_t n) { params.add(name, Tensor32::ones({n})); };
    w("patch_embed.weight", E, P);
    zeros("patch_embed.bias", E);
    params.add("pos_embed", rng.normal<float>({c.tokens(), E}, 0.0, 0.5));
    ones("block.norm1.weight", E);
    zeros("block.norm1.bias", E);
    for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      w(std::string("block.attn.") + p + ".weight", E, E);
      zeros(std::string("block.attn.") + p + ".bias", E);
    }
    ones("block.norm2.weight", E);
    zeros("block.norm2.bias", E);
    w("block.mlp.fc1.weight", c.mlp, E);
    zeros("block.mlp.fc1.bias", c.mlp);
    w("block.mlp.fc2.weight", E, c.mlp);
    zeros("block.mlp.fc2.bias", E);
    ones("norm.weight", E);
    zeros("norm.bias", E);
    w("head.weight", c.classes, E);
    zeros("head.bias", c.classes);
  }
  const Var& p(const std::string& name) const { return params.get(name); }

  Var linear(const Var& x, const std::string& name) const {
    return autograd::linear(x, p(name + ".weight"), p(name + ".bias"));
  }
  Var layer_norm(const Var& x, const std::string& name) const {
    return autograd::layer_norm(x, p(name + ".weight"), p(name + ".bias"));
  }

  // volumes [B, 1, S, S, S] -> logits [B, classes]
  Var forward(const Tensor32& volumes) const {
    const int64_t B = volumes.size(0), N = cfg.tokens(), E = cfg.dim, H = cfg.heads;
    const Var x(volumes);
    Var t = autograd::patch_embed(x, p("patch_embed.weight"), p("patch_embed.bias"), {cfg.patch, cfg.patch, cfg.patch});
    t = autograd::add(t, p("pos_embed"));  // [B, N, E] + [N, E]

    // attention sub-block: x + out_proj(attention(q, k, v)) over H heads
    const Var h = layer_norm(t, "block.norm1");
    // [B, N, E] -> [B, H, N, E/H] (a view; attention reads the permuted layout in place) and back
    auto heads = [&](const Var& v) { return autograd::transpose(autograd::reshape(v, {B, N, H, E / H}), 1, 2); };
    const Var q = heads(linear(h, "block.attn.q_proj"));
    const Var k = heads(linear(h, "block.attn.k_proj"));
    const Var v = heads(linear(h, "block.attn.v_proj"));
    const Var a = autograd::reshape(autograd::transpose(autograd::attention(q, k, v), 1, 2), {B, N, E});
    t = autograd::add(t, linear(a, "block.attn.out_proj"));

    // MLP sub-block: x + fc2(gelu(fc1(norm(x))))
    const Var m = linear(autograd::gelu(linear(layer_norm(t, "block.norm2"), "block.mlp.fc1")), "block.mlp.fc2");
    t = autograd::add(t, m);

    return linear(layer_norm(autograd::mean(t, {1}), "norm"), "head");
  }
};

int64_t count_correct(const Tensor32& logits, const Tensor<int64_t>& labels) {
  int64_t correct = 0;
  for (int64_t i = 0; i < logits.size(0); ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < logits.size(1); ++c)
      if (logits.at(i, c) > logits.at(i, best)) best = c;
    correct += best == labels.at(i);
  }
  return correct;
}

int main(int argc, char** argv) {
  CLI::App app{"Trains a tiny 3D-ViT block with SGD to find which octant of a synthetic volume holds a bright blob."};
  int steps = 300, threads = 0;
  int64_t batch = 16, eval_size = 256;
  double lr = 0.1, noise = 0.2, min_accuracy = 0.0;
  uint64_t seed = 0;
  Config cfg;
  app.add_option("--steps", steps, "SGD steps")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "volumes per step")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--size", cfg.size, "volume edge S (voxels)")->capture_default_str();
  app.add_option("--patch", cfg.patch, "patch edge (voxels; must divide the volume edge)")->capture_default_str();
  app.add_option("--dim", cfg.dim, "embedding width")->capture_default_str();
  app.add_option("--heads", cfg.heads, "attention heads (must divide the width)")->capture_default_str();
  app.add_option("--noise", noise, "background noise standard deviation")->capture_default_str();
  app.add_option("--eval", eval_size, "held-out volumes for the final accuracy")->capture_default_str();
  app.add_option("--min-accuracy", min_accuracy, "fail (exit 2) below this held-out accuracy, 0..1")->capture_default_str();
  app.add_option("--seed", seed, "random seed")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: OpenMP's default)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    CTMLLM_CHECK(cfg.size > 1 && cfg.size % 2 == 0, "--size must be even and > 1, got ", cfg.size);
    CTMLLM_CHECK(cfg.patch > 0 && cfg.size % cfg.patch == 0, "--patch ", cfg.patch, " must divide --size ", cfg.size);
    CTMLLM_CHECK(cfg.heads > 0 && cfg.dim % cfg.heads == 0, "--heads ", cfg.heads, " must divide --dim ", cfg.dim);
    if (threads > 0) set_num_threads(threads);

    Rng init_rng(seed), data_rng(seed + 1), eval_rng(seed + 2);
    TinyViT model(cfg, init_rng);
    std::printf("tiny 3D-ViT: volumes 1x%lldx%lldx%lld, patch %lld^3 -> %lld tokens x %lld, %lld heads, %lld parameters; "
                "%d steps of SGD (lr %g, batch %lld), %d threads\n",
                (long long)cfg.size, (long long)cfg.size, (long long)cfg.size, (long long)cfg.patch,
                (long long)cfg.tokens(), (long long)cfg.dim, (long long)cfg.heads, (long long)model.params.numel(), steps,
                lr, (long long)batch, num_threads());

    const auto trainable = model.params.trainable();
    const int window = std::max(1, steps / 10);
    double first = 0, last = 0, running = 0;
    int64_t seen = 0, right = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int step = 1; step <= steps; ++step) {
      const Batch b = make_batch(data_rng, batch, cfg.size, noise);
      const Var logits = model.forward(b.volumes);
      const Var loss = autograd::cross_entropy(logits, b.labels);
      loss.backward();
      for (const Var& w : trainable)  // plain SGD: w -= lr * dw
        if (w.grad().defined()) ops::add_(w.value(), ops::mul_scalar(w.grad(), -lr));
      model.params.zero_grad();

      const double l = loss.value().item();
      CTMLLM_CHECK(std::isfinite(l), "training diverged at step ", step, " (loss ", l, "); try a smaller --lr");
      if (step <= window) first += l / window;
      if (step > steps - window) last += l / window;
      running += l;
      seen += batch;
      right += count_correct(logits.value(), b.labels);
      const int every = std::max(1, steps / 15);
      if (step % every == 0 || step == steps) {
        std::printf("step %4d  loss %.4f  train accuracy %5.1f%%\n", step, running / every, 100.0 * right / seen);
        running = 0;
        seen = right = 0;
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    int64_t correct = 0;
    {
      autograd::NoGradGuard no_grad;
      for (int64_t done = 0; done < eval_size; done += batch) {
        const Batch b = make_batch(eval_rng, std::min(batch, eval_size - done), cfg.size, noise);
        correct += count_correct(model.forward(b.volumes).value(), b.labels);
      }
    }
    std::printf("loss %.4f -> %.4f (mean of the first and last %d steps; chance is ln 8 = %.4f)\n", first, last, window,
                std::log(8.0));
    const double accuracy = double(correct) / double(std::max<int64_t>(eval_size, 1));
    std::printf("held-out accuracy %.1f%% on %lld volumes (chance 12.5%%); %.1f ms per step\n", 100.0 * accuracy,
                (long long)eval_size, 1000.0 * seconds / steps);
    if (!(last < first)) {
      std::fprintf(stderr, "the training loss did not fall\n");
      return 2;
    }
    if (accuracy < min_accuracy) {
      std::fprintf(stderr, "held-out accuracy %.3f is below --min-accuracy %.3f\n", accuracy, min_accuracy);
      return 2;
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
