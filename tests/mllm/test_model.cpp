// mllm::Model beyond the reference fixture (tests/fixture_runner checks its numbers): save and load,
// the two visual-token placements, splicing at scattered positions, AnyRes views, growing the
// vocabulary with mean rows, token sequences, and the whole report pipeline on the real head CT
// with its bone mask.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ctmllm/io/nifti.hpp"
#include "ctmllm/mllm/report.hpp"
#include "ctmllm/mllm/splice.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"
#include "support/tiny_mllm.hpp"

using namespace ctmllm;
using testing::rel_error;
using Var = autograd::Variable<float>;

namespace {
const std::string kTiny = "mllm/tiny";

mllm::Model<float> tiny() { return mllm::Model<float>::from_pretrained(testing::fixture_path(kTiny)); }

mllm::MllmInput<float> fixture_input(const testing::Fixture& ref) {
  return {.input_ids = ref.get<int64_t>("ct.input_ids"), .ct = ref.get("ct"), .labels = ref.get<int64_t>("ct.labels")};
}
}  // namespace

TEST_CASE("mllm config: token counts, AnyRes size, errors", "[mllm]") {
  const auto c = mllm::MllmConfig::from_file(testing::fixture_path(kTiny + "/config.json"));
  CHECK(c.tokens_per_volume() == 8);
  CHECK(c.visual_tokens() == 8);
  CHECK(c.input_size() == std::array<int64_t, 3>{16, 64, 64});
  auto j = nlohmann::json::parse(std::ifstream(testing::fixture_path(kTiny + "/config.json")));
  j["anyres"] = {{"crops", {2, 1, 1}}};
  j["segmentation_mask"] = true;
  j.erase("visual_tokens_per_volume");
  const auto a = mllm::MllmConfig::from_json(j, "anyres");
  CHECK(a.tokens_per_volume() == 24);  // global view + 2 crops
  CHECK(a.visual_tokens() == 48);
  CHECK(a.input_size() == std::array<int64_t, 3>{32, 64, 64});
  CHECK(mllm::MllmConfig::from_json(a.to_json(), "round trip").to_json() == a.to_json());
  // The SPP summary token counts as one more visual token and survives the round trip.
  auto sj = nlohmann::json::parse(std::ifstream(testing::fixture_path(kTiny + "/config.json")));
  sj["projector"]["summary_token"] = "max";
  sj["visual_tokens_per_volume"] = 9;
  const auto sm = mllm::MllmConfig::from_json(sj, "summary");
  CHECK(sm.visual_tokens() == 9);
  CHECK(mllm::MllmConfig::from_json(sm.to_json(), "round trip").projector.summary_max);
  // One summary token per channel: 8 pooled + 3.
  sj["projector"]["summary_channels"] = {2, 3};
  sj["visual_tokens_per_volume"] = 11;
  const auto per_channel = mllm::MllmConfig::from_json(mllm::MllmConfig::from_json(sj, "per channel").to_json(), "round trip");
  CHECK(per_channel.visual_tokens() == 11);
  CHECK(per_channel.projector.summary_channels == std::array<int64_t, 2>{2, 3});
  j["visual_tokens_per_volume"] = 8;
  CHECK_THROWS_AS(mllm::MllmConfig::from_json(j, "bad count"), Error);
  j.erase("visual_tokens_per_volume");
  j["visual_token_placement"] = "somewhere";
  CHECK_THROWS_AS(mllm::MllmConfig::from_json(j, "bad placement"), Error);
}

TEST_CASE("mllm saves and loads the whole model", "[mllm]") {
  auto model = tiny();
  const testing::Fixture ref(kTiny + "/reference.safetensors");
  autograd::NoGradGuard no_grad;
  const auto before = model.forward(fixture_input(ref));
  const std::string dir = testing::scratch_dir("mllm_save");
  model.save_pretrained(dir);
  const auto loaded = mllm::Model<float>::from_pretrained(dir);
  const auto after = loaded.forward(fixture_input(ref));
  CHECK(rel_error(after.logits.value(), before.logits.value()) == 0.0);
  CHECK(rel_error(after.loss.value(), ref.get("ct.loss")) <= 1e-5);
  CHECK(loaded.parameters().size() == model.parameters().size());
  std::filesystem::remove_all(dir);
}

TEST_CASE("mllm visual tokens: placeholders, the fixed rule, and wrong counts", "[mllm]") {
  auto model = tiny();
  const testing::Fixture ref(kTiny + "/reference.safetensors");
  autograd::NoGradGuard no_grad;
  const auto by_ids = model.forward(fixture_input(ref));
  // The fixture's placeholders sit right after BOS, so the published rule gives the same result.
  auto fixed_cfg = model.config();
  fixed_cfg.placement = mllm::VisualPlacement::after_bos;
  const std::string dir = testing::scratch_dir("mllm_fixed");
  model.save_pretrained(dir);
  auto j = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  j["visual_token_placement"] = "after_bos";
  std::ofstream(dir + "/config.json") << j.dump();
  const auto fixed = mllm::Model<float>::from_pretrained(dir);
  CHECK(rel_error(fixed.forward(fixture_input(ref)).logits.value(), by_ids.logits.value()) == 0.0);
  std::filesystem::remove_all(dir);
  // One placeholder too few: an Error naming the row.
  Tensor<int64_t> ids = ref.get<int64_t>("ct.input_ids").clone();
  ids.at(1, 4) = 7;
  auto in = fixture_input(ref);
  in.input_ids = ids;
  CHECK_THROWS_WITH(model.forward(in), Catch::Matchers::Contains("row 1 holds 7 image tokens"));
  // Volumes of the wrong size, or a mask the model does not take.
  in = fixture_input(ref);
  in.ct = Tensor<float>::zeros({2, 1, 16, 64, 32});
  CHECK_THROWS_AS(model.forward(in), Error);
  in = fixture_input(ref);
  in.mask = ref.get("mask");
  CHECK_THROWS_WITH(model.forward(in), Catch::Matchers::Contains("takes no segmentation mask"));
}

TEST_CASE("splice: scattered placeholder runs, forward and backward", "[mllm]") {
  // Row 0: runs of 3, 1 and 2 positions; row 1: one run of 6 (the usual layout).
  const mllm::VisualPositions positions = {{1, 2, 3, 6, 8, 9}, {2, 3, 4, 5, 6, 7}};
  Rng rng(3);
  Var embeds(rng.normal<float>({2, 11, 4}), true), visual(rng.normal<float>({2, 6, 4}), true);
  const auto out = mllm::splice_visual_tokens(embeds, visual, positions);
  const auto dy = rng.normal<float>({2, 11, 4});
  out.backward(dy);
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<bool> visual_at(11, false);
    for (size_t i = 0; i < 6; ++i) visual_at[size_t(positions[size_t(b)][i])] = true;
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t h = 0; h < 4; ++h) {
        const int64_t s = positions[size_t(b)][size_t(i)];
        CHECK(out.value().at(b, s, h) == visual.value().at(b, i, h));
        CHECK(visual.grad().at(b, i, h) == dy.at(b, s, h));
      }
    for (int64_t s = 0; s < 11; ++s)
      for (int64_t h = 0; h < 4; ++h) {
        if (visual_at[size_t(s)]) {
          CHECK(embeds.grad().at(b, s, h) == 0.0f);
        } else {
          CHECK(out.value().at(b, s, h) == embeds.value().at(b, s, h));
          CHECK(embeds.grad().at(b, s, h) == dy.at(b, s, h));
        }
      }
  }
}

TEST_CASE("mllm AnyRes: the global view, then each crop, through one encoder", "[mllm]") {
  const std::string dir = testing::scratch_dir("mllm_anyres");
  tiny().save_pretrained(dir);
  auto j = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
  j["anyres"] = {{"crops", {2, 1, 1}}, {"global_view", true}};
  j.erase("visual_tokens_per_volume");
  std::ofstream(dir + "/config.json") << j.dump();
  const auto model = mllm::Model<float>::from_pretrained(dir);
  std::filesystem::remove_all(dir);
  autograd::NoGradGuard no_grad;
  const Tensor<float> big = Rng(4).uniform<float>({1, 1, 32, 64, 64}, 0.0, 1.0);
  const Var tokens = model.encode(Var(big));
  REQUIRE(tokens.shape() == Shape{1, 24, 64});
  auto one_view = [&](const Tensor<float>& v) {
    const auto f = model.vision().forward(Var(v));
    return model.projector()(f.tokens).value();
  };
  ops::InterpolateOptions area;
  area.mode = ops::InterpolateMode::area;
  area.size = {16, 64, 64};
  const Tensor<float> global = ops::interpolate(big, area);
  CHECK(rel_error(tokens.value().slice(1, 0, 8), one_view(global)) <= 1e-6);
  CHECK(rel_error(tokens.value().slice(1, 8, 16), one_view(big.slice(2, 0, 16).contiguous())) <= 1e-6);
  CHECK(rel_error(tokens.value().slice(1, 16, 24), one_view(big.slice(2, 16, 32).contiguous())) <= 1e-6);
}

TEST_CASE("mllm special tokens grow the vocabulary with mean rows", "[mllm]") {
  auto model = testing::tiny_mllm(false);
  const int64_t V = model.llm().vocab_size();
  const Tensor<float> old_embed = model.llm().embed_tokens().weight.value().clone();
  const auto ids = model.add_special_tokens({"<im_patch>", "<bx_start>", "<bx_end>"});
  CHECK(ids[0] == model.config().image_token_id);  // known: keeps its id
  CHECK(ids[1] == V);
  CHECK(ids[2] == V + 1);
  CHECK(model.llm().vocab_size() == V + 2);
  const Tensor<float> embed = model.llm().embed_tokens().weight.value();
  const Tensor<float> head = model.llm().lm_head().weight.value();
  REQUIRE(embed.shape() == Shape{V + 2, 32});
  for (int64_t h = 0; h < 32; ++h) {
    double mean = 0;
    for (int64_t r = 0; r < V; ++r) mean += old_embed.at(r, h);
    mean /= double(V);
    CHECK(embed.at(V, h) == Approx(mean).margin(1e-6));
    CHECK(embed.at(V + 1, h) == Approx(mean).margin(1e-6));
  }
  CHECK(rel_error(embed.slice(0, 0, V), old_embed) == 0.0);
  CHECK(head.shape() == Shape{V + 2, 32});
  CHECK(model.parameters().get("llm.model.embed_tokens.weight").shape() == Shape{V + 2, 32});
  // Saved and loaded, the added tokens keep their ids.
  const std::string dir = testing::scratch_dir("mllm_tokens");
  model.save_pretrained(dir);
  const auto loaded = mllm::Model<float>::from_pretrained(dir);
  CHECK(loaded.tokenizer().token_to_id("<bx_end>") == std::optional<int32_t>(int32_t(V + 1)));
  CHECK(loaded.llm().vocab_size() == V + 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("mllm token sequences: prompt, answer, labels, padding", "[mllm]") {
  const auto model = testing::tiny_mllm(false);
  const auto special = mllm::SpecialIds::of(model);
  const auto seq = mllm::training_sequence(model, mllm::region_messages(model, "chest"), "The lungs are clear.");
  const int64_t n = model.config().visual_tokens();
  REQUIRE(seq.ids.size() == seq.labels.size());
  CHECK(seq.ids[0] == special.bos);
  for (int64_t i = 1; i <= n; ++i) CHECK(seq.ids[size_t(i)] == special.image);
  CHECK(seq.ids.back() == special.eos);
  CHECK(seq.labels.back() == special.eos);
  const auto prompt = mllm::prompt_ids(model, mllm::region_messages(model, "chest"));
  for (size_t i = 0; i < prompt.size(); ++i) CHECK(seq.labels[i] == -100);
  const std::vector<int32_t> answer = model.tokenizer().encode("The lungs are clear.", false);
  CHECK(seq.ids.size() == prompt.size() + answer.size() + 1);
  CHECK(model.tokenizer().decode(std::vector<int32_t>(seq.ids.begin() + int64_t(prompt.size()), seq.ids.end() - 1)) ==
        "The lungs are clear.");
  // Truncation keeps the prompt and drops the answer's end; a prompt that does not fit is an Error.
  CHECK(mllm::training_sequence(model, mllm::region_messages(model, "chest"), "The lungs are clear.",
                                int64_t(prompt.size()) + 2)
            .ids.size() == prompt.size() + 2);
  CHECK_THROWS_AS(mllm::training_sequence(model, mllm::region_messages(model, "chest"), "x", 5), Error);
  const auto short_seq = mllm::training_sequence(model, mllm::region_messages(model, "pelvis"), "Normal.");
  const auto batch = mllm::collate({seq, short_seq}, special.pad);
  CHECK(batch.input_ids.shape() == Shape{2, int64_t(std::max(seq.ids.size(), short_seq.ids.size()))});
  CHECK(batch.attention_mask.at(1, int64_t(short_seq.ids.size()) - 1) == 1);
  if (short_seq.ids.size() < seq.ids.size()) {
    CHECK(batch.attention_mask.at(1, int64_t(short_seq.ids.size())) == 0);
    CHECK(batch.labels.at(1, int64_t(short_seq.ids.size())) == -100);
  }
  CHECK(batch.answer_tokens == int64_t(answer.size() + 1 + model.tokenizer().encode("Normal.", false).size() + 1));
  // The loss over the batch runs and backpropagates to the vision encoder.
  const Tensor<float> ct = Rng(5).uniform<float>({2, 1, 16, 32, 32}, 0.0, 1.0);
  const auto out = model.forward({.input_ids = batch.input_ids, .ct = ct, .attention_mask = batch.attention_mask,
                                  .labels = batch.labels});
  out.loss.backward();
  CHECK(std::isfinite(out.loss.value().item()));
  CHECK(model.vision().parameters().get("norm.weight").grad().defined());
}

TEST_CASE("mllm report pipeline on the real head CT with its bone mask", "[mllm][report]") {
  const auto model = testing::tiny_mllm(true);
  const io::NiftiImage ct_image = io::read_nifti(testing::data_path("head_ct.nii.gz"));
  const io::NiftiImage mask_image = io::read_nifti(testing::data_path("head_ct_bone_mask.nii.gz"));
  const auto& pre = model.config().preprocess;
  const Tensor<float> ct = vision::preprocess_ct(ct_image, pre);
  const Tensor<float> mask = vision::preprocess_label_map(mask_image, model.config().mask_num_classes, pre);
  REQUIRE(ct.shape() == Shape{1, 1, 16, 32, 32});
  REQUIRE(mask.shape() == ct.shape());
  mllm::AnswerOptions o;
  o.generation.max_new_tokens = 12;
  std::vector<std::string> streamed(3);
  o.on_text = [&](size_t row, std::string_view piece) { streamed.at(row) += piece; };
  const std::vector<std::string> regions{"chest", "abdomen", "pelvis"};
  const auto reports = mllm::write_reports(model, ct, mask, regions, o);
  REQUIRE(reports.size() == 3);
  for (size_t r = 0; r < 3; ++r) {
    INFO(regions[r] << ": " << reports[r].text);
    CHECK(!reports[r].tokens.empty());
    CHECK(mllm::detail::trim(streamed[r]) == reports[r].text);
  }
  // Deterministic, and each region in the batch is what it generates alone.
  o.on_text = nullptr;
  const auto again = mllm::write_reports(model, ct, mask, regions, o);
  const auto alone = mllm::write_reports(model, ct, mask, {"abdomen"}, o);
  for (size_t r = 0; r < 3; ++r) CHECK(again[r].tokens == reports[r].tokens);
  CHECK(alone[0].tokens == reports[1].tokens);
  // The CT alone is refused by a model that reads the mask too.
  CHECK_THROWS_AS(mllm::write_reports(model, ct, Tensor<float>(), regions, o), Error);
}
