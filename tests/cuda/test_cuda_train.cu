// Training on the GPU against the CPU: the fused AdamW kernel over several steps (two parameter
// groups, a step where one parameter has no gradient, float32 / bfloat16 / float16 parameters, the
// moments through state()), the global gradient norm and clipping on the device, the AdamW
// steps with clipping of the tiny Llama training fixture run on both devices, and mixed precision
// (a bf16 or half model with float master weights on the device) against the same run on the CPU.
#include <cmath>
#include <string>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/clip.hpp"
#include "cuda/gpu_check.hpp"
#include "support/fixture_runner.hpp"
#include "support/fixtures.hpp"
#include "support/mixed_precision_run.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

// Gives p the gradient g (exactly: the backward of Σ p·g) through a backward pass on p's device.
template <class T, class D>
void set_grad(const autograd::Variable<T, D>& p, const Tensor<T, Cpu>& g) {
  autograd::sum(autograd::mul(p, autograd::Variable<T, D>(g.template to_device<D>()))).backward();
}

template <class T>
void check_adamw(uint64_t seed) {
  Rng rng(seed);
  // Three groups; 70 parameters, so that one step takes three launches of at most 32, and one of
  // 5000 elements spread over three blocks.
  std::vector<Shape> shapes = {{7, 5}, {33}, {4, 3, 9}, {5000}};
  for (int64_t i = 0; i < 66; ++i) shapes.push_back({1 + (97 * i) % 700});
  std::vector<autograd::Variable<T, Cpu>> cpu;
  std::vector<autograd::Variable<T, Cuda>> gpu;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto w = random_normal<T>(rng, shapes[i]);
    cpu.emplace_back(w.clone(), true, "p" + std::to_string(i));
    gpu.emplace_back(w.template to_device<Cuda>(), true, "p" + std::to_string(i));
  }
  const train::AdamWOptions o{.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1};
  train::AdamW<T, Cpu> cpu_opt(o);
  train::AdamW<T, Cuda> gpu_opt(o);
  cpu_opt.add_group({cpu[0], cpu[1]});
  gpu_opt.add_group({gpu[0], gpu[1]});
  cpu_opt.add_group({cpu[2]}, 3e-2, 0.0);
  gpu_opt.add_group({gpu[2]}, 3e-2, 0.0);
  cpu_opt.add_group(std::vector<autograd::Variable<T, Cpu>>(cpu.begin() + 3, cpu.end()), 5e-3, 0.2);
  gpu_opt.add_group(std::vector<autograd::Variable<T, Cuda>>(gpu.begin() + 3, gpu.end()), 5e-3, 0.2);
  for (int step = 0; step < 5; ++step) {
    cpu_opt.zero_grad();
    gpu_opt.zero_grad();
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (step == 2 && i == 1) continue;  // no gradient this step: skipped, its step count stays
      const auto g = random_normal<T>(rng, shapes[i], 0.5);
      set_grad(cpu[i], g);
      set_grad(gpu[i], g);
    }
    cpu_opt.set_lr_factor(1.0 - 0.1 * step);
    gpu_opt.set_lr_factor(1.0 - 0.1 * step);
    cpu_opt.step();
    gpu_opt.step();
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    INFO("parameter " << i);
    CTMLLM_CHECK_GPU(T, gpu[i].value(), cpu[i].value());
  }
  const auto cs = cpu_opt.state(), gs = gpu_opt.state();
  REQUIRE(cs.size() == gs.size());
  for (size_t i = 0; i < cs.size(); ++i) {
    INFO(cs[i].first);
    CHECK(gs[i].first == cs[i].first);
    CHECK(rel_error(gs[i].second, cs[i].second) <= 1e-5);  // float moments from the same gradients
  }
}

template <class T>
void check_clip(uint64_t seed) {
  Rng rng(seed + 1);
  std::vector<autograd::Variable<T, Cpu>> cpu;
  std::vector<autograd::Variable<T, Cuda>> gpu;
  for (const Shape& s : {Shape{300, 70}, Shape{5}, Shape{2, 3}, Shape{1 << 17}}) {
    const auto w = random_normal<T>(rng, s);
    cpu.emplace_back(w.clone(), true);
    gpu.emplace_back(w.template to_device<Cuda>(), true);
  }
  for (size_t i = 0; i + 1 < cpu.size(); ++i) {  // the last one has no gradient
    const auto g = random_normal<T>(rng, cpu[i].shape());
    set_grad(cpu[i], g);
    set_grad(gpu[i], g);
  }
  const double cpu_norm = train::grad_norm(cpu), gpu_norm = train::grad_norm(gpu);
  CHECK(std::abs(gpu_norm - cpu_norm) <= 1e-10 * cpu_norm);  // double sums of the same squares, in another order
  CHECK(std::abs(train::clip_grad_norm(gpu, 1.0) - cpu_norm) <= 1e-10 * cpu_norm);
  train::clip_grad_norm(cpu, 1.0);
  for (size_t i = 0; i + 1 < cpu.size(); ++i) CTMLLM_CHECK_GPU(T, gpu[i].grad(), cpu[i].grad());
  CHECK_FALSE(gpu.back().grad().defined());
  CHECK(std::abs(train::grad_norm(gpu) - 1.0) <= 1e-2);  // clipped to max_norm (after rounding to T)
}

}  // namespace

TEST_CASE("cuda AdamW steps match the CPU AdamW", "[cuda][train]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_adamw<decltype(t)>(seed); });
}

TEST_CASE("cuda gradient norm and clipping match the CPU", "[cuda][train]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  for_each_dtype([](auto t, uint64_t seed) { check_clip<decltype(t)>(seed); });
}

TEST_CASE("cuda training steps of the tiny Llama match the CPU", "[cuda][train]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  // AdamW with clipping on every parameter (hparams.json): losses, norms, first gradients, final weights.
  const std::string dir = fixture_path("train/llama_adamw");
  const auto cpu = fixture_runner::run<Cpu>("train", dir), gpu = fixture_runner::run<Cuda>("train", dir);
  REQUIRE(gpu.floats.size() == cpu.floats.size());
  for (const auto& [key, t] : cpu.floats) {
    INFO(key);
    REQUIRE(gpu.floats.count(key) == 1);
    const double e = rel_error(gpu.floats.at(key), t);
    CHECK(e <= (key.starts_with("grad0.") ? 1e-4 : 1e-5));
  }
}

TEST_CASE("cuda mixed-precision training with float master weights matches the CPU", "[cuda][train][mixed]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  const Fixture ref("train/llama_adamw/reference.safetensors");
  const auto ids = ref.get<int64_t>("input_ids"), labels = ref.get<int64_t>("labels");
  const auto gids = ids.to_device<Cuda>(), glabels = labels.to_device<Cuda>();
  {  // bf16, no loss scale: 5 steps, losses and master weights as on the CPU.
    auto cpu = llm::Decoder<bf16>::from_pretrained(fixture_path(kMixedBase));
    auto gpu = llm::Decoder<bf16, Cuda>::from_pretrained(fixture_path(kMixedBase));
    train::MasterWeights<bf16> cpu_master(cpu.parameters().all());
    train::MasterWeights<bf16, Cuda> gpu_master(gpu.parameters().all());
    train::DynamicLossScaler cpu_unit({.init_scale = 1.0}), gpu_unit({.init_scale = 1.0});
    const auto want = train_mixed(cpu, cpu_master, cpu_unit, ids, labels, 5);
    const auto got = train_mixed(gpu, gpu_master, gpu_unit, gids, glabels, 5);
    for (size_t s = 0; s < want.size(); ++s) {
      INFO("bf16 step " << s << ": gpu " << got[s] << ", cpu " << want[s]);
      CHECK(std::abs(got[s] / want[s] - 1) <= 1e-2);
    }
    for (size_t i = 0; i < cpu_master.params().size(); ++i) {
      INFO(cpu_master.params()[i].name());
      CHECK(rel_error(gpu_master.params()[i].value().to_device<Cpu>(), cpu_master.params()[i].value()) <= 1e-2);
    }
    // The model holds its masters rounded to bf16.
    const auto& w = gpu.parameters().get("lm_head.weight").value();
    CHECK(max_abs_diff(w.to_device<Cpu>(), gpu_master.params().back().value().to_device<Cpu>().to<bf16>()) == 0);
  }
  {  // half with GradScaler's initial scale: the first step overflows and is skipped, as on the CPU.
    auto gpu = llm::Decoder<ctmllm::half, Cuda>::from_pretrained(fixture_path(kMixedBase));
    train::MasterWeights<ctmllm::half, Cuda> master(gpu.parameters().all());
    train::DynamicLossScaler scaler;
    std::vector<bool> stepped;
    const auto losses = train_mixed(gpu, master, scaler, gids, glabels, 4, &stepped);
    CHECK(stepped == std::vector<bool>{false, true, true, true});
    CHECK(scaler.scale() == 32768.0);
    CHECK(losses.back() < losses.front());
  }
}
