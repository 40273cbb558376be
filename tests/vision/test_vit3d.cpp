// vision::ViT3D against the M3D-style PyTorch reference (tests/fixtures/vision/vit3d, made by
// gen_fixtures.py's ViT3D): final tokens, CLS, every block's output, other volume sizes in both
// position-table modes, loading under a prefix, gradients reaching every parameter, and errors.
#include <cstdio>
#include <filesystem>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/autograd/reduce.hpp"
#include "ctmllm/io/safetensors.hpp"
#include "ctmllm/vision/vit3d.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::rel_error;
using Var = autograd::Variable<float>;

namespace {
const std::string kDir = "vision/vit3d/";

vision::ViT3D<float> fixture_vit(vision::PositionResample mode = vision::PositionResample::size) {
  auto cfg = vision::ViT3DConfig::from_file(testing::fixture_path(kDir + "config.json"));
  cfg.position_resample = mode;
  vision::ViT3D<float> vit(cfg);
  vit.load_file(testing::fixture_path(kDir + "model.safetensors"));
  return vit;
}

// ‖ours − ref‖/‖ref‖, printed so the report can quote it.
double check(const char* what, const Tensor<float>& ours, const Tensor<float>& ref) {
  const double e = rel_error(ours, ref);
  std::printf("vit3d %-24s rel error %.3g\n", what, e);
  return e;
}
}  // namespace

TEST_CASE("ViT3D config reads the fixture and M3D's keys", "[vision]") {
  const auto c = vision::ViT3DConfig::from_file(testing::fixture_path(kDir + "config.json"));
  CHECK(c.hidden_size == 48);
  CHECK(c.num_layers == 2);
  CHECK(c.num_heads == 4);
  CHECK(c.mlp_dim == 96);
  CHECK(c.grid() == std::array<int64_t, 3>{4, 4, 4});
  CHECK_FALSE(c.qkv_bias);
  // M3D-CLIP's own config.json (ViT-B).
  const auto m3d = vision::ViT3DConfig::from_json(
      nlohmann::json::parse(R"({"architectures": ["M3DCLIP"], "dropout_rate": 0, "hidden_size": 768,
        "img_size": [32, 256, 256], "in_channels": 1, "mlp_dim": 3072, "model_type": "m3d_clip", "num_heads": 12,
        "num_layers": 12, "patch_size": [4, 16, 16], "pos_embed": "perceptron", "spatial_dims": 3})"),
      "m3d_clip");
  CHECK(m3d.num_patches() == 2048);
  CHECK(m3d.position_resample == vision::PositionResample::size);
}

TEST_CASE("ViT3D matches the reference: tokens, CLS and every block", "[vision]") {
  const auto vit = fixture_vit();
  const testing::Fixture ref(kDir + "reference.safetensors");
  autograd::NoGradGuard no_grad;
  const auto out = vit.forward(Var(ref.get("input")), {0, 1});
  CHECK(out.grid == std::array<int64_t, 3>{4, 4, 4});
  CHECK(out.tokens.shape() == Shape{2, 64, 48});
  CHECK(check("output", out.tokens.value(), ref.get("output")) <= 1e-4);
  CHECK(check("cls", out.cls.value(), ref.get("cls")) <= 1e-4);
  CHECK(check("hidden.0", out.hidden[0].value(), ref.get("hidden.0")) <= 1e-4);
  CHECK(check("hidden.1", out.hidden[1].value(), ref.get("hidden.1")) <= 1e-4);
  // Taps come back in request order; -1 is the last block.
  const auto again = vit.forward(Var(ref.get("input")), {-1, 0});
  CHECK(rel_error(again.hidden[0].value(), out.hidden[1].value()) == 0.0);
  CHECK(rel_error(again.hidden[1].value(), out.hidden[0].value()) == 0.0);
}

TEST_CASE("ViT3D resamples the position table for other volume sizes", "[vision]") {
  const testing::Fixture ref(kDir + "reference.safetensors");
  autograd::NoGradGuard no_grad;
  const Var x2(ref.get("input_32x64x48"));
  const auto by_size = fixture_vit(vision::PositionResample::size).forward(x2);
  CHECK(by_size.grid == std::array<int64_t, 3>{8, 4, 3});
  CHECK(check("output_32x64x48_size", by_size.tokens.value(), ref.get("output_32x64x48_size")) <= 1e-4);
  const auto scale_vit = fixture_vit(vision::PositionResample::scale);
  const auto by_scale = scale_vit.forward(x2);
  CHECK(check("output_32x64x48_scale", by_scale.tokens.value(), ref.get("output_32x64x48_scale")) <= 1e-4);
  CHECK(rel_error(by_scale.tokens.value(), by_size.tokens.value()) > 1e-3);  // the rules really differ
  const auto native = scale_vit.forward(Var(ref.get("input")));
  CHECK(check("output_native_scale", native.tokens.value(), ref.get("output_native_scale")) <= 1e-4);
}

TEST_CASE("ViT3D loads a prefixed state dict, found or given", "[vision]") {
  // M3D ships the ViT inside larger checkpoints, e.g. "vision_encoder.blocks.0...".
  const io::SafeTensorsFile plain(testing::fixture_path(kDir + "model.safetensors"));
  io::SafeTensorsWriter w;
  for (const auto& name : plain.names()) w.add("vision_encoder." + name, plain.get<float>(name));
  w.add("text_encoder.embeddings.weight", Tensor<float>::zeros({4, 4}));
  const std::string path = testing::scratch_dir("vit_prefixed.safetensors");
  w.write(path);
  const auto cfg = vision::ViT3DConfig::from_file(testing::fixture_path(kDir + "config.json"));
  vision::ViT3D<float> found(cfg), given(cfg);
  CHECK(found.load_file(path).loaded.size() == plain.names().size());
  given.load_file(path, "vision_encoder.");
  CHECK_THROWS_AS(vision::ViT3D<float>(cfg).load_file(path, "vision_tower."), Error);
  std::filesystem::remove(path);
  const testing::Fixture ref(kDir + "reference.safetensors");
  autograd::NoGradGuard no_grad;
  CHECK(rel_error(found.forward(Var(ref.get("input"))).tokens.value(), ref.get("output")) <= 1e-4);
  CHECK(rel_error(given.forward(Var(ref.get("input"))).tokens.value(), ref.get("output")) <= 1e-4);
}

TEST_CASE("ViT3D backward reaches every parameter and the input", "[vision]") {
  auto vit = fixture_vit(vision::PositionResample::size);
  const testing::Fixture ref(kDir + "reference.safetensors");
  const Var x(ref.get("input_32x64x48"), /*requires_grad=*/true);  // a resampled position table too
  const auto out = vit.forward(x, {0});
  autograd::add(autograd::sum(out.tokens), autograd::sum(out.hidden[0])).backward();
  for (const auto& p : vit.parameters().all()) {
    INFO(p.name());
    REQUIRE(p.grad().defined());
    CHECK(p.grad().shape() == p.shape());
  }
  CHECK(x.grad().shape() == x.shape());
}

TEST_CASE("ViT3D backward agrees with finite differences (float64)", "[vision]") {
  // A tiny ViT on a volume of another grid (so the position table is resampled), with a tap.
  const auto cfg = vision::ViT3DConfig::from_json(
      nlohmann::json::parse(R"({"img_size": [4, 4, 4], "patch_size": [2, 2, 2], "hidden_size": 4, "num_layers": 1,
                                "num_heads": 2, "mlp_dim": 6})"),
      "tiny");
  vision::ViT3D<double> vit(cfg);
  Rng rng(5);
  vit.init(rng);
  for (const auto& p : vit.parameters().all())
    if (p.name().find("norm") != std::string::npos) rng.normal(p.value(), p.name().ends_with("weight") ? 1.0 : 0.0, 0.1);
  std::vector<autograd::Variable<double>> inputs = vit.parameters().all();
  inputs.emplace_back(rng.uniform<double>({1, 1, 8, 4, 2}), true);
  const double err = testing::gradcheck(
      [&vit](const std::vector<autograd::Variable<double>>& in) {
        const auto out = vit.forward(in.back(), {0});
        return autograd::add(autograd::mul_scalar(out.tokens, 3.0), out.hidden[0]);
      },
      inputs);
  std::printf("vit3d gradcheck (float64) worst rel error %.3g\n", err);
  CHECK(err <= 1e-6);
}

TEST_CASE("ViT3D refuses bad configs, missing weights and wrong inputs", "[vision][errors]") {
  auto parse = [](const char* text) { return vision::ViT3DConfig::from_json(nlohmann::json::parse(text), "test"); };
  const char* base = R"("img_size": [16, 64, 64], "patch_size": [4, 16, 16], "hidden_size": 48, "num_layers": 2,
                        "num_heads": 4, "mlp_dim": 96)";
  auto with = [&](const std::string& extra) { return "{" + std::string(base) + extra + "}"; };
  CHECK_NOTHROW(parse(with("").c_str()));
  CHECK_THROWS_AS(parse(R"({"hidden_size": 48})"), Error);                       // missing keys
  CHECK_THROWS_AS(parse(with(R"(, "num_heads": 5)").c_str()), Error);          // 48 % 5
  CHECK_THROWS_AS(parse(with(R"(, "img_size": [15, 64, 64])").c_str()), Error);  // not divisible by the patch
  CHECK_THROWS_AS(parse(with(R"(, "patch_size": [4, 16])").c_str()), Error);
  CHECK_THROWS_AS(parse(with(R"(, "pos_embed": "conv")").c_str()), Error);
  CHECK_THROWS_AS(parse(with(R"(, "activation": "relu")").c_str()), Error);
  CHECK_THROWS_AS(parse(with(R"(, "dropout_rate": 0.1)").c_str()), Error);
  CHECK_THROWS_AS(parse(with(R"(, "position_resample": "nearest")").c_str()), Error);
  CHECK_THROWS_AS(parse(with(R"(, "hidden_size": "48")").c_str()), Error);
  CHECK_THROWS_AS(vision::ViT3DConfig::from_file("/nonexistent/config.json"), Error);

  const auto cfg = vision::ViT3DConfig::from_file(testing::fixture_path(kDir + "config.json"));
  auto wide = cfg;
  wide.hidden_size = 64;
  CHECK_THROWS_AS(vision::ViT3D<float>(wide).load_file(testing::fixture_path(kDir + "model.safetensors")), Error);
  CHECK_THROWS_AS(vision::ViT3D<float>(cfg).load_file(testing::fixture_path("vision/projector_spp/model.safetensors")), Error);

  const auto vit = fixture_vit();
  autograd::NoGradGuard no_grad;
  CHECK_THROWS_AS(vit.forward(Var(Tensor<float>::zeros({1, 1, 16, 64, 60}))), Error);  // 60 % 16
  CHECK_THROWS_AS(vit.forward(Var(Tensor<float>::zeros({1, 2, 16, 64, 64}))), Error);  // channels
  CHECK_THROWS_AS(vit.forward(Var(Tensor<float>::zeros({1, 16, 64, 64}))), Error);     // rank
  CHECK_THROWS_AS(vit.forward(Var(Tensor<float>::zeros({1, 1, 16, 64, 64})), {2}), Error);  // no block 2
}

TEST_CASE("ViT3D without a CLS token and on double", "[vision]") {
  auto cfg = vision::ViT3DConfig::from_file(testing::fixture_path(kDir + "config.json"));
  cfg.classification = false;
  vision::ViT3D<double> vit(cfg);
  CHECK_FALSE(vit.parameters().contains("cls_token"));
  Rng rng(7);
  vit.init(rng);
  autograd::NoGradGuard no_grad;
  const auto out = vit.forward(autograd::Variable<double>(rng.uniform<double>({1, 1, 16, 64, 64})));
  CHECK(out.tokens.shape() == Shape{1, 64, 48});
  CHECK_FALSE(out.cls.defined());
}
