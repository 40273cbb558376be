// The projectors against PyTorch references: spp and mlp_mix from the shared fixture set
// (gen_fixtures.py), token_packer and linear from tests/tools/gen_projector_fixtures.py. Each checks
// the output and, through Variable::backward(dy), the input gradients and every parameter gradient.
#include <cstdio>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/projector/projector.hpp"
#include "ctmllm/vision/vit3d.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;
using Var = autograd::Variable<float>;

namespace {

double report(const std::string& fixture, const std::string& what, const Tensor<float>& ours, const Tensor<float>& ref) {
  const double e = rel_error(ours, ref);
  std::printf("%-24s %-28s rel error %.3g\n", fixture.c_str(), what.c_str(), e);
  return e;
}

// Loads fixture `name`, runs forward + backward(dy) and compares everything the reference holds.
void check_fixture(const std::string& name, int64_t expected_tokens) {
  const std::string dir = "vision/" + name + "/";
  projector::Projector<float> p(projector::ProjectorConfig::from_file(testing::fixture_path(dir + "config.json")));
  p.load_file(testing::fixture_path(dir + "model.safetensors"));
  CHECK(p.num_tokens() == expected_tokens);
  const testing::Fixture ref(dir + "reference.safetensors");
  const Var x(ref.get("input"), /*requires_grad=*/true);
  std::vector<Var> taps;
  for (int l : p.feature_layers()) taps.emplace_back(ref.get("hidden." + std::to_string(l)), true);
  const Var y = p(x, taps);
  CHECK(y.shape() == ref.get("output").shape());
  CHECK(report(name, "output", y.value(), ref.get("output")) <= 1e-4);
  y.backward(ref.get("dy"));
  CHECK(report(name, "dinput", x.grad(), ref.get("dinput")) <= 1e-4);
  for (size_t i = 0; i < taps.size(); ++i) {
    const std::string key = "dhidden." + std::to_string(p.feature_layers()[i]);
    CHECK(report(name, key, taps[i].grad(), ref.get(key)) <= 1e-4);
  }
  for (const auto& param : p.parameters().all()) {
    INFO(param.name());
    const std::string key = "grad." + param.name();
    REQUIRE(ref.has(key));
    const Tensor<float> g = ref.get(key);
    if (testing::max_abs_diff(g, Tensor<float>::zeros(g.shape())) < 1e-12) {
      // Exactly zero in exact arithmetic (TokenPacker's ln_k_1.bias shifts every key of a query by
      // the same amount, which softmax ignores): the reference holds float64 rounding, ours float32's.
      CHECK(testing::max_abs_diff(param.grad(), g) <= 1e-6);
    } else {
      CHECK(report(name, key, param.grad(), g) <= 1e-4);
    }
  }
}

}  // namespace

TEST_CASE("SPP projector matches the reference, with gradients", "[projector]") { check_fixture("projector_spp", 8); }

TEST_CASE("token-mixing MLP projector matches the reference, with gradients", "[projector]") {
  check_fixture("projector_mlp_mix", 8);
}

TEST_CASE("linear projector matches the reference, with gradients", "[projector]") {
  check_fixture("projector_linear", 96);
}

TEST_CASE("3D TokenPacker matches its PyTorch reading, with gradients", "[projector]") {
  check_fixture("projector_token_packer", 12);
}

TEST_CASE("projector configs: names, defaults and the paper's sizes", "[projector]") {
  using projector::ProjectorConfig;
  const auto j = [](const char* text) { return nlohmann::json::parse(text); };
  // The paper's SPP: 8×16×16 tokens of 768 -> 256 tokens of H, grid taken from the ViT.
  const auto spp = ProjectorConfig::from_json(j(R"({"type": "spp", "in_dim": 768, "out_dim": 64})"), "spp",
                                              vision::ViT3DConfig{}.grid());
  projector::Projector<float> p(spp);
  CHECK(p.num_tokens() == 256);
  CHECK(p.parameters().contains("projector.0.weight"));
  CHECK(p.parameters().contains("projector.2.bias"));
  CHECK(p.feature_layers().empty());
  // layer_type "linear": no GELU, children numbered 0, 1, 2.
  const auto lin = ProjectorConfig::from_json(
      j(R"({"type": "spp", "grid": [4, 4, 4], "in_dim": 8, "out_dim": 6, "layer_type": "linear", "layer_num": 3})"), "l");
  CHECK(projector::Projector<float>(lin).parameters().contains("projector.2.weight"));
  // The paper's TokenPacker: taps 5, 7, 10, 11 -> 3072-d keys, 1024 wide, 8 heads, 256 queries.
  const auto tp = ProjectorConfig::from_json(j(R"({"type": "token_packer", "in_dim": 768, "out_dim": 64})"), "tp",
                                             vision::ViT3DConfig{}.grid());
  projector::Projector<float> packer(tp);
  CHECK(packer.num_tokens() == 256);
  CHECK(packer.feature_layers() == std::vector<int>{5, 7, 10, 11});
  CHECK(packer.parameters().get("k_proj_1.0.weight").shape() == Shape{1024, 3072});
  CHECK(packer.parameters().get("clip_attn.in_proj_weight").shape() == Shape{3072, 1024});
}

namespace {

// An SPP with summary tokens built from `json` on a [2, 4, 4] grid of 5-wide tokens, the same SPP
// without them sharing its weights, and a batch of 2: the checks both summary tests make.
struct SummaryCase {
  projector::ProjectorConfig cfg;
  projector::Projector<double> p, plain;
  Tensor<double> x = Rng(4).normal<double>({2, 32, 5});

  static projector::ProjectorConfig without_summary(projector::ProjectorConfig c) {
    c.summary_max = false;
    c.summary_channels = {0, 0};
    return c;
  }
  explicit SummaryCase(const std::string& json)
      : cfg(projector::ProjectorConfig::from_json(nlohmann::json::parse(json), "summary")), p(cfg),
        plain(without_summary(cfg)) {
    Rng rng(3);
    p.init(rng);
    for (const auto& w : p.parameters().all()) plain.parameters().get(w.name()).value().copy_from(w.value());
  }
  Tensor<double> w(const std::string& name) const { return p.parameters().get(name).value(); }
  // The first 4 tokens are the plain SPP's; returns the output [2, 4 + summary tokens, 6].
  Tensor<double> output_with_plain_pooled_tokens() const {
    autograd::NoGradGuard no_grad;
    const Tensor<double> y = p(autograd::Variable<double>(x)).value();
    const Tensor<double> pooled = plain(autograd::Variable<double>(x)).value();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t t = 0; t < 4; ++t)
        for (int64_t c = 0; c < 6; ++c) CHECK(y.at(b, t, c) == pooled.at(b, t, c));
    return y;
  }
  // Written out: h = max_n (W0 x_n + b0) over case b's 32 tokens.
  std::vector<double> maximum(int64_t b) const {
    const Tensor<double> w0 = w("projector.0.weight"), b0 = w("projector.0.bias");
    std::vector<double> h(6, -1e300);
    for (int64_t n = 0; n < 32; ++n)
      for (int64_t c = 0; c < 6; ++c) {
        double z = b0.at(c);
        for (int64_t e = 0; e < 5; ++e) z += w0.at(c, e) * x.at(b, n, e);
        h[size_t(c)] = std::max(h[size_t(c)], z);
      }
    return h;
  }
  // Written out: W2 gelu(v) + b2 (W2 v + b2 without the activation) checked against the output token y[b, t].
  void check_rest_of_stack(const Tensor<double>& y, int64_t b, int64_t t, const std::vector<double>& v,
                           bool activate = true) const {
    const Tensor<double> w2 = w("projector.2.weight"), b2 = w("projector.2.bias");
    for (int64_t o = 0; o < 6; ++o) {
      double z = b2.at(o);
      for (int64_t c = 0; c < 6; ++c) {
        const double a = v[size_t(c)];
        z += w2.at(o, c) * (activate ? 0.5 * a * (1 + std::erf(a / std::sqrt(2.0))) : a);
      }
      CHECK(std::abs(y.at(b, t, o) - z) <= 1e-12 * (1 + std::abs(z)));
    }
  }
  // Gradients into the input and every weight, through the pooled tokens and the max.
  double gradcheck() const {
    std::vector<autograd::Variable<double>> inputs{autograd::Variable<double>(x.clone(), true)};
    for (const auto& q : p.parameters().all()) inputs.push_back(q);
    return testing::gradcheck([&](const auto& in) { return p(in[0]); }, inputs);
  }
};

}  // namespace

TEST_CASE("SPP summary token: the max over all tokens of projector.0, then the rest of the stack", "[projector]") {
  using projector::ProjectorConfig;
  const SummaryCase s(R"({"type": "spp", "grid": [2, 4, 4], "in_dim": 5, "out_dim": 6, "summary_token": "max"})");
  CHECK(s.p.num_tokens() == 1 * 2 * 2 + 1);
  const Tensor<double> y = s.output_with_plain_pooled_tokens();
  REQUIRE(y.shape() == Shape{2, 5, 6});
  for (int64_t b = 0; b < 2; ++b) s.check_rest_of_stack(y, b, 4, s.maximum(b));
  CHECK(s.gradcheck() <= 1e-6);
  // Bad values are refused; tokens_out is checked.
  CHECK_THROWS_AS(ProjectorConfig::from_json(nlohmann::json::parse(
                      R"({"type": "spp", "grid": [2, 4, 4], "in_dim": 5, "out_dim": 6, "summary_token": "mean"})"), "bad"),
                  Error);
  CHECK(ProjectorConfig::from_json(nlohmann::json::parse(
            R"({"type": "spp", "grid": [2, 4, 4], "in_dim": 5, "out_dim": 6, "summary_token": "max", "tokens_out": 5})"),
            "tokens_out").num_tokens() == 5);
}

TEST_CASE("SPP per-channel summary tokens: token k reads channel first+k and marks channel first+count+k, "
          "without the GELU", "[projector]") {
  using projector::ProjectorConfig;
  const SummaryCase s(R"({"type": "spp", "grid": [2, 4, 4], "in_dim": 5, "out_dim": 6, "summary_token": "max",
                          "summary_channels": [1, 2]})");
  CHECK(s.p.num_tokens() == 1 * 2 * 2 + 2);
  const Tensor<double> y = s.output_with_plain_pooled_tokens();
  REQUIRE(y.shape() == Shape{2, 6, 6});
  // Token k: v_k = h[1+k] on channel 1+k, kSummaryWhich on channel 3+k, 0 elsewhere.
  for (int64_t b = 0; b < 2; ++b) {
    const std::vector<double> h = s.maximum(b);
    for (int64_t k = 0; k < 2; ++k) {
      std::vector<double> v(6, 0.0);
      v[size_t(1 + k)] = h[size_t(1 + k)];
      v[size_t(3 + k)] = projector::SpatialPoolingProjector<double>::kSummaryWhich;
      s.check_rest_of_stack(y, b, 4 + k, v, false);
    }
  }
  CHECK(s.gradcheck() <= 1e-6);
  // Refused: without "max", channels past out_dim (count more are needed to mark which), a
  // non-positive count, a list that is not [first, count].
  const auto parse = [](const std::string& extra) {
    return ProjectorConfig::from_json(nlohmann::json::parse(R"({"type": "spp", "grid": [2, 4, 4], "in_dim": 5,
        "out_dim": 6, )" + extra + "}"), "bad");
  };
  CHECK_THROWS_AS(parse(R"("summary_channels": [1, 2])"), Error);
  CHECK_THROWS_AS(parse(R"("summary_token": "max", "summary_channels": [3, 2])"), Error);
  CHECK_THROWS_AS(parse(R"("summary_token": "max", "summary_channels": [1, -1])"), Error);
  CHECK_THROWS_AS(parse(R"("summary_token": "max", "summary_channels": [1])"), Error);
  CHECK(parse(R"("summary_token": "max", "summary_channels": [2, 2])").num_tokens() == 6);
}

TEST_CASE("a ViT feeds a TokenPacker its tapped blocks end to end", "[projector]") {
  auto vcfg = vision::ViT3DConfig::from_file(testing::fixture_path("vision/vit3d/config.json"));
  vcfg.num_layers = 3;
  vision::ViT3D<float> vit(vcfg);
  Rng rng(3);
  vit.init(rng);
  auto pcfg = projector::ProjectorConfig::from_json(
      nlohmann::json::parse(R"({"type": "token_packer", "in_dim": 48, "out_dim": 16, "embed_dim": 32,
                                "num_heads": 4, "feature_layers": [0, 2]})"),
      "tp", vcfg.grid());
  projector::Projector<float> p(pcfg);
  p.init(rng);
  const auto feats = vit.forward(Var(rng.uniform<float>({2, 1, 16, 64, 64})), p.feature_layers());
  const Var y = p(feats.tokens, feats.hidden);
  CHECK(y.shape() == Shape{2, 8, 16});
  y.backward(Tensor<float>::ones(y.shape()));
  for (const auto& param : vit.parameters().all()) {
    INFO(param.name());
    CHECK(param.grad().defined());
  }
}

TEST_CASE("projectors refuse bad configs, missing weights and wrong inputs", "[projector][errors]") {
  using projector::ProjectorConfig;
  auto parse = [](const char* text) { return ProjectorConfig::from_json(nlohmann::json::parse(text), "test"); };
  CHECK_THROWS_AS(parse(R"({"type": "qformer", "grid": [4, 4, 4], "in_dim": 8, "out_dim": 8})"), Error);
  CHECK_THROWS_AS(parse(R"({"type": "spp", "in_dim": 8, "out_dim": 8})"), Error);  // no grid
  CHECK_THROWS_AS(parse(R"({"type": "spp", "grid": [4, 4], "in_dim": 8, "out_dim": 8})"), Error);
  CHECK_THROWS_AS(parse(R"({"type": "spp", "grid": [4, 4, 4], "in_dim": 8, "out_dim": 8, "pool": 5})"), Error);
  CHECK_THROWS_AS(parse(R"({"type": "spp", "grid": [4, 4, 4], "in_dim": 8, "out_dim": 8, "tokens_out": 9})"), Error);
  CHECK_THROWS_AS(parse(R"({"type": "spp", "grid": [4, 4, 4], "in_dim": 8, "out_dim": 8, "layer_type": "conv"})"), Error);
  CHECK_THROWS_AS(parse(R"({"type": "mlp_mix", "grid": [4, 4, 4], "in_dim": 8, "out_dim": 8})"), Error);  // tokens_out
  CHECK_THROWS_AS(parse(R"({"type": "token_packer", "grid": [4, 4, 5], "in_dim": 8, "out_dim": 8})"), Error);
  CHECK_THROWS_AS(parse(R"({"type": "token_packer", "grid": [4, 4, 4], "in_dim": 8, "out_dim": 8, "num_heads": 3})"),
                  Error);
  CHECK_THROWS_AS(parse(R"({"type": "token_packer", "grid": [4, 4, 4], "in_dim": 8, "out_dim": 8, "feature_layers": []})"),
                  Error);
  CHECK_THROWS_AS(parse(R"({"type": "linear", "grid": [4, 4, 4], "in_dim": 0, "out_dim": 8})"), Error);

  // Weights of another projector, or of another size.
  const auto spp_cfg = ProjectorConfig::from_file(testing::fixture_path("vision/projector_spp/config.json"));
  projector::Projector<float> spp(spp_cfg);
  CHECK_THROWS_AS(spp.load_file(testing::fixture_path("vision/projector_mlp_mix/model.safetensors")), Error);
  CHECK_THROWS_AS(spp.load_file(testing::fixture_path("vision/projector_spp/model.safetensors"), "model.mm_projector."),
                  Error);
  auto wide = spp_cfg;
  wide.out_dim = 41;
  CHECK_THROWS_AS(projector::Projector<float>(wide).load_file(testing::fixture_path("vision/projector_spp/model.safetensors")),
                  Error);

  // Inputs of the wrong size, and taps where none are read or missing where they are.
  autograd::NoGradGuard no_grad;
  CHECK_THROWS_AS(spp(Var(Tensor<float>::zeros({2, 63, 48}))), Error);
  CHECK_THROWS_AS(spp(Var(Tensor<float>::zeros({2, 64, 47}))), Error);
  CHECK_THROWS_AS(spp(Var(Tensor<float>::zeros({64, 48}))), Error);
  CHECK_THROWS_AS(spp(Var(Tensor<float>::zeros({2, 64, 48})), {Var(Tensor<float>::zeros({2, 64, 48}))}), Error);
  projector::Projector<float> tp(
      ProjectorConfig::from_file(testing::fixture_path("vision/projector_token_packer/config.json")));
  const Var tokens(Tensor<float>::zeros({2, 96, 24}));
  CHECK_THROWS_AS(tp(tokens), Error);
  CHECK_THROWS_AS(tp(tokens, {tokens, tokens, tokens, Var(Tensor<float>::zeros({1, 96, 24}))}), Error);
}
