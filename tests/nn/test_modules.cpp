// nn modules: parameter names, shapes, PyTorch-equivalent results, and loading by name.
#include "ctmllm/io/safetensors.hpp"
#include "ctmllm/nn/embedding.hpp"
#include "ctmllm/nn/linear.hpp"
#include "ctmllm/nn/load.hpp"
#include "ctmllm/nn/norm.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::rel_error;

TEST_CASE("Linear loads by name and matches F.linear", "[nn]") {
  autograd::Parameters<float> params;
  nn::Linear<float> fc(params, "fc", 40, 24);
  CHECK(params.contains("fc.weight"));
  CHECK(params.contains("fc.bias"));
  CHECK(fc.in_features() == 40);
  CHECK(fc.out_features() == 24);
  const io::SafeTensorsFile f(testing::fixture_path("ops/linear.safetensors"));
  // The fixture stores w and b; map "fc.weight" -> "w", "fc.bias" -> "b".
  auto report = nn::load_parameters(params, f, [](const std::string& n) { return n == "fc.weight" ? "w" : "b"; });
  CHECK(report.loaded.size() == 2);
  autograd::NoGradGuard no_grad;
  const auto y = fc(autograd::Variable<float>(f.get<float>("x")));
  CHECK(rel_error(y.value(), f.get<float>("y")) <= 1e-5);
}

TEST_CASE("loading refuses missing tensors and wrong shapes", "[nn][errors]") {
  autograd::Parameters<float> params;
  nn::Linear<float> fc(params, "fc", 40, 24);
  const io::SafeTensorsFile f(testing::fixture_path("ops/linear.safetensors"));
  CHECK_THROWS_AS(nn::load_parameters(params, f), Error);  // no "fc.weight" in the file
  auto lenient = nn::load_parameters(params, f, {}, /*strict=*/false);
  CHECK(lenient.missing.size() == 2);
  autograd::Parameters<float> wrong;
  nn::Linear<float> fc2(wrong, "fc", 41, 24);
  CHECK_THROWS_AS(nn::load_parameters(wrong, f, [](const std::string& n) { return n == "fc.weight" ? "w" : "b"; }), Error);
}

TEST_CASE("norms and embedding register Hugging Face names and defaults", "[nn]") {
  autograd::Parameters<float> params;
  nn::LayerNorm<float> ln(params, "vision.norm", 8);
  nn::RMSNorm<float> rms(params, "model.norm", 8, 1e-6);
  nn::RMSNorm<float> gemma(params, "gemma.norm", 8, 1e-6, 1.0);
  nn::Embedding<float> emb(params, "model.embed_tokens", 10, 8);
  CHECK(params.size() == 5);
  CHECK(ln.weight.value().at(3) == 1.f);
  CHECK(ln.bias.value().at(3) == 0.f);
  CHECK(gemma.weight.value().at(0) == 0.f);  // (1 + w) form starts at w = 0
  Rng rng(0);
  emb.init(rng);
  const auto ids = Tensor<int64_t>::from({3, 9}, {1, 2});
  const auto e = emb(ids);
  CHECK(e.shape() == Shape{1, 2, 8});
  CHECK(e.value().at(0, 1, 5) == emb.weight.value().at(9, 5));
  // Gemma's (1 + 0) and Llama's 1 give the same result.
  const autograd::Variable<float> x(rng.normal<float>({2, 8}));
  CHECK(rel_error(gemma(x).value(), rms(x).value()) == 0.0);
}

TEST_CASE("Linear init follows PyTorch's bound and is seeded", "[nn]") {
  autograd::Parameters<float> params;
  nn::Linear<float> fc(params, "fc", 16, 4);
  Rng a(1), b(1);
  fc.init(a);
  const auto w = fc.weight.value().clone();
  fc.init(b);
  CHECK(rel_error(fc.weight.value(), w) == 0.0);
  for (int64_t i = 0; i < w.numel(); ++i) CHECK(std::abs(w.data()[i]) <= 0.25f);
}
