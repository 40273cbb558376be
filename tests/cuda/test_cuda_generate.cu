// Decoding on the GPU against the CPU: sampling (temperature, top-k, top-p, repetition penalty) and
// beam search over left-padded prompts with the KV cache on the device (logits processing on the host
// copy of the last row), and the MLLM's report pipeline (ViT, projector, splice, generation) on a
// small random model: the same tokens as on the CPU. (Greedy decoding runs in the fixture tests.)
// Decode steps replayed from a CUDA graph (llm/static_decode_step.hpp) give the logits of the steps
// run directly, bit for bit, and those of Decoder::forward's steps; generate and beam search give the
// same tokens with and without graphs.
#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "ctmllm/generate/generate.hpp"
#include "ctmllm/llm/static_decode_step.hpp"
#include "ctmllm/mllm/report.hpp"
#include "cuda/gpu_check.hpp"
#include "support/fixtures.hpp"
#include "support/tiny_mllm.hpp"

using namespace ctmllm;
using namespace ctmllm::testing;

namespace {

template <class D>
std::vector<generate::Generated> decode(const generate::GenerationOptions& o) {
  const auto model = llm::Decoder<float, D>::from_pretrained(fixture_path("llm/llama"));
  const std::vector<std::vector<int64_t>> prompts = {{1, 17, 250, 33, 90, 7}, {1, 300, 12}};
  return generate::generate(model, generate::left_pad<float, D>(prompts, 0), o);
}

void check_same(const std::vector<generate::Generated>& gpu, const std::vector<generate::Generated>& cpu) {
  REQUIRE(gpu.size() == cpu.size());
  for (size_t r = 0; r < cpu.size(); ++r) {
    INFO("row " << r);
    CHECK(gpu[r].tokens == cpu[r].tokens);
    CHECK(gpu[r].reason == cpu[r].reason);
    CHECK(std::abs(gpu[r].score - cpu[r].score) <= 1e-4 * std::max(1.0, std::abs(cpu[r].score)));
  }
}

}  // namespace

TEST_CASE("cuda sampling with logits processors matches the CPU", "[cuda][generate]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  generate::GenerationOptions o;
  o.max_new_tokens = 10;
  o.do_sample = true;
  o.seed = 11;
  o.temperature = 0.8;
  o.top_k = 40;
  o.top_p = 0.9;
  o.repetition_penalty = 1.2;
  check_same(decode<Cuda>(o), decode<Cpu>(o));
}

TEST_CASE("cuda beam search matches the CPU with and without CUDA graphs", "[cuda][generate][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  generate::GenerationOptions o;
  o.cuda_graphs = GENERATE(true, false);  // the cache reordered in place under a captured step, or not
  INFO("cuda_graphs " << o.cuda_graphs);
  o.max_new_tokens = 8;
  o.num_beams = 3;
  o.eos_token_ids = {2};
  check_same(decode<Cuda>(o), decode<Cpu>(o));
}

TEST_CASE("cuda decode steps replayed from a CUDA graph equal the direct steps", "[cuda][generate][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  const auto model = llm::Decoder<float, Cuda>::from_pretrained(fixture_path("llm/llama"));
  const auto prompt = generate::left_pad<float, Cuda>({{1, 17, 250, 33, 90, 7}, {1, 300, 12}}, 0);
  autograd::NoGradGuard no_grad;
  // Three caches after the same prefill: Decoder::forward's steps, fixed-shape steps run directly,
  // and fixed-shape steps replayed from a graph.
  std::vector<llm::KvCache<float, Cuda>> caches;
  for (int i = 0; i < 3; ++i) {
    caches.push_back(model.make_cache(2, 16));
    (void)model.forward({.input_ids = prompt.input_ids, .attention_mask = prompt.attention_mask, .cache = &caches.back()});
  }
  llm::StaticDecodeStep<float, Cuda> direct(model, caches[1], false), replayed(model, caches[2]);
  std::vector<int64_t> tokens{5, 9};
  for (int step = 0; step < 8; ++step) {
    INFO("step " << step << ", capture: " << replayed.graph_failure());
    const Tensor<float, Cpu> want =
        model.forward({.input_ids = Tensor<int64_t, Cpu>::from(std::span<const int64_t>(tokens), {2, 1}).to_device<Cuda>(),
                       .cache = &caches[0]})
            .logits.value()
            .to_device<Cpu>();
    const Tensor<float, Cpu> a = direct(tokens).value().to_device<Cpu>(), b = replayed(tokens).value().to_device<Cpu>();
    CHECK(rel_error(a, want) <= 1e-5);
    CHECK(a.to_vector() == b.to_vector());
    CHECK(replayed.graph_captured() == (step >= 1));
    for (int64_t r = 0; r < 2; ++r) {  // greedy: the next tokens
      const auto row = want.select(0, r).to_vector();
      tokens[size_t(r)] = int64_t(std::max_element(row.begin(), row.end()) - row.begin());
    }
  }
  CHECK(replayed.graph_failure().empty());
  CHECK(replayed.graph_nodes() > 0);
  CHECK_FALSE(direct.graph_captured());
}

TEST_CASE("cuda generate gives the CPU's tokens with and without CUDA graphs", "[cuda][generate][graph]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  generate::GenerationOptions o;
  o.max_new_tokens = 12;
  const auto cpu = decode<Cpu>(o);
  check_same(decode<Cuda>(o), cpu);
  o.cuda_graphs = false;
  check_same(decode<Cuda>(o), cpu);
}

TEST_CASE("cuda MLLM reports match the CPU", "[cuda][generate][mllm]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  PoisonDeviceMemory poison;
  const auto cpu_model = tiny_mllm<Cpu>(true);
  const auto gpu_model = tiny_mllm<Cuda>(true);
  Rng rng(5);
  const Tensor<float, Cpu> ct = rng.uniform<float>({1, 1, 16, 32, 32});
  const Tensor<float, Cpu> mask = rng.uniform<float>({1, 1, 16, 32, 32});
  mllm::AnswerOptions o;
  o.generation.max_new_tokens = 12;
  const std::vector<std::string> regions{"chest", "abdomen"};
  const auto cpu = mllm::write_reports(cpu_model, ct, mask, regions, o);
  const auto gpu = mllm::write_reports(gpu_model, ct.to_device<Cuda>(), mask.to_device<Cuda>(), regions, o);
  REQUIRE(gpu.size() == cpu.size());
  for (size_t r = 0; r < cpu.size(); ++r) {
    INFO(regions[r] << ": " << cpu[r].text);
    CHECK(gpu[r].tokens == cpu[r].tokens);
    CHECK(gpu[r].text == cpu[r].text);
  }
  // The visual tokens themselves, within float32 tolerance.
  CHECK(rel_error(mllm::encode_ct(gpu_model, ct.to_device<Cuda>(), mask.to_device<Cuda>()).value().to_device<Cpu>(),
                  mllm::encode_ct(cpu_model, ct, mask).value()) <= 1e-5);
}
