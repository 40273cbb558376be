// bf16 weight storage on the GPU (llm/cuda/bf16_linear.cuh): frozen bf16 matrices under float
// activations. The kernels against their CPU forms (the GEMV rows and its scalar path for lengths
// that are not a multiple of 8, the widened GEMM above 16 rows, the input gradient, the embedding
// rows and their id check); Decoder<float, Cuda> in bf16 storage against Decoder<float, Cpu> in bf16
// storage for every family; greedy generation with and without CUDA graphs; LoRA and DoRA adapter
// gradients and merging over a bf16 base.
#include <string>
#include <vector>

#include "ctmllm/generate/generate.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/train/finetune.hpp"
#include "cuda/gpu_check.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;
namespace kernels = ctmllm::llm::kernels;

TEST_CASE("cuda linear over bf16 weights matches the CPU kernel", "[cuda][llm][bf16]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  PoisonDeviceMemory poison;
  Rng rng(seed);
  for (const int64_t in : {67, 96, 301}) {  // 67, 301: the scalar path; 96: 16-byte loads
    for (const int64_t out : {3, 301}) {
      const Tensor<bf16, Cpu> w = rng.normal<float>({out, in}).to<bf16>();
      const Tensor<float, Cpu> bias = rng.normal<float>({out});
      const auto gw = w.to_device<Cuda>();
      for (const int64_t n : {1, 3, 16, 17, 40}) {  // 16: the last GEMV row count; 17, 40: widened GEMM
        const Tensor<float, Cpu> x = rng.normal<float>({n, in});
        for (const bool with_bias : {false, true}) {
          INFO("in " << in << ", out " << out << ", n " << n << ", bias " << with_bias);
          const Tensor<float, Cpu> b = with_bias ? bias : Tensor<float, Cpu>();
          const auto y = kernels::linear_bf16(x.to_device<Cuda>(), gw, with_bias ? b.to_device<Cuda>() : Tensor<float, Cuda>());
          CHECK(gpu_error(y, kernels::linear_bf16(x, w, b)) <= 1e-5);
        }
        const Tensor<float, Cpu> dy = rng.normal<float>({n, out});
        CHECK(gpu_error(kernels::linear_bf16_backward_input(dy.to_device<Cuda>(), gw), kernels::linear_bf16_backward_input(dy, w)) <=
              1e-5);
      }
      CHECK(kernels::widen_bf16(gw).to_device<Cpu>().to_vector() == w.to<float>().to_vector());  // exact
    }
  }
}

TEST_CASE("cuda bf16 embedding rows equal the CPU's and a bad id is an Error", "[cuda][llm][bf16]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  Rng rng(fresh_seed());
  const Tensor<bf16, Cpu> table = rng.normal<float>({50, 24}).to<bf16>();
  const auto ids = Tensor<int64_t, Cpu>::from({3, 49, 3, 0, 17, 8}, {2, 3});
  const auto y = kernels::embedding_bf16(table.to_device<Cuda>(), ids.to_device<Cuda>());
  CHECK(y.shape() == Shape{2, 3, 24});
  CHECK(y.to_device<Cpu>().to_vector() == kernels::embedding_bf16(table, ids).to_vector());
  CHECK_THROWS_AS(kernels::embedding_bf16(table.to_device<Cuda>(), Tensor<int64_t, Cpu>::from({1, 50}, {2}).to_device<Cuda>()),
                  Error);
}

TEST_CASE("cuda decoders in bf16 storage match the CPU's for every family", "[cuda][llm][bf16]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  for (const std::string family : {"llama", "phi3", "qwen2", "gemma", "mistral"}) {
    INFO(family);
    const std::string path = fixture_path("llm/" + family);
    const auto cpu = llm::Decoder<float, Cpu>::from_pretrained(path, {llm::Storage::bf16});
    const auto gpu = llm::Decoder<float, Cuda>::from_pretrained(path, {llm::Storage::bf16});
    CHECK(gpu.storage() == llm::Storage::bf16);
    const auto ids = Fixture("llm/" + family + "/reference.safetensors").get<int64_t>("input_ids");
    autograd::NoGradGuard no_grad;
    const auto want = cpu.forward({.input_ids = ids}).logits.value();
    CHECK(gpu_error(gpu.forward({.input_ids = ids.to_device<Cuda>()}).logits.value(), want) <= 1e-5);
    CHECK_THROWS_AS(gpu.forward({.input_ids = Tensor<int64_t, Cpu>::from({1, cpu.vocab_size()}, {1, 2}).to_device<Cuda>()}),
                    Error);
  }
}

TEST_CASE("cuda generation in bf16 storage gives the CPU's tokens with and without CUDA graphs", "[cuda][generate][bf16]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  const std::vector<std::vector<int64_t>> prompts = {{1, 17, 250, 33, 90, 7}, {1, 300, 12}};
  auto run = [&]<class D>(D, bool graphs) {
    const auto model = llm::Decoder<float, D>::from_pretrained(fixture_path("llm/llama"), {llm::Storage::bf16});
    generate::GenerationOptions o;
    o.max_new_tokens = 12;
    o.cuda_graphs = graphs;
    return generate::generate(model, generate::left_pad<float, D>(prompts, 0), o);
  };
  const auto cpu = run(Cpu{}, false);
  for (const bool graphs : {true, false}) {
    INFO("graphs " << graphs);
    const auto gpu = run(Cuda{}, graphs);
    REQUIRE(gpu.size() == cpu.size());
    for (size_t r = 0; r < cpu.size(); ++r) CHECK(gpu[r].tokens == cpu[r].tokens);
  }
}

TEST_CASE("cuda LoRA and DoRA over a bf16 base: adapter gradients and merging match the CPU", "[cuda][train][lora][bf16]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  for (const std::string fixture : {"lora/llama_r4", "lora/llama_dora_r4"}) {
    INFO(fixture);
    const Fixture ref(fixture + "/reference.safetensors");
    const auto ids = ref.get<int64_t>("input_ids"), labels = ref.get<int64_t>("labels");
    auto cpu = llm::Decoder<float, Cpu>::from_pretrained(fixture_path("lora/llama_r4/base"), {llm::Storage::bf16});
    auto gpu = llm::Decoder<float, Cuda>::from_pretrained(fixture_path("lora/llama_r4/base"), {llm::Storage::bf16});
    auto ft_cpu = train::load_peft_adapter(cpu, fixture_path(fixture + "/adapter"), true);
    auto ft_gpu = train::load_peft_adapter(gpu, fixture_path(fixture + "/adapter"), true);
    llm::causal_lm_loss(cpu.forward({.input_ids = ids}).logits, labels).backward();
    llm::causal_lm_loss(gpu.forward({.input_ids = ids.to_device<Cuda>()}).logits, labels.to_device<Cuda>()).backward();
    REQUIRE(ft_gpu.adapters.size() == ft_cpu.adapters.size());
    for (size_t i = 0; i < ft_cpu.adapters.size(); ++i) {
      INFO(ft_cpu.adapters.all()[i].name());
      REQUIRE(ft_gpu.adapters.all()[i].grad().defined());
      CHECK(gpu_error(ft_gpu.adapters.all()[i].grad(), ft_cpu.adapters.all()[i].grad()) <= 1e-4);
    }
    // Merged into the bf16 matrices: the same logits, but for the odd weight whose float sum lies so
    // near a bf16 rounding boundary that the two devices' sums round apart (one bf16 step, 2^-8).
    train::merge_adapters(cpu);
    train::merge_adapters(gpu);
    autograd::NoGradGuard no_grad;
    CHECK(gpu_error(gpu.forward({.input_ids = ids.to_device<Cuda>()}).logits.value(), cpu.forward({.input_ids = ids}).logits.value()) <=
          1e-4);
  }
}
