#pragma once
// MllmConfig: one config.json that assembles a 3D MLLM from a vision encoder, a projector and a
// Hugging Face LLM folder (docs/MLLM.md). The model folder ctmllm saves, and the one the fixture
// `mllm/tiny` uses:
//
//   config.json            this config
//   vision.safetensors     ViT3D parameters (MONAI / M3D-CLIP names; `vision_weights_prefix` for
//                          M3D's pretrained_ViT.bin, found automatically when omitted)
//   projector.safetensors  projector parameters (`projector_weights_prefix`, e.g. M3D-LaMed's
//                          "model.mm_projector.")
//   llm/                   config.json + weights (+ tokenizer files) of the decoder
//
// Keys: vision {ViT3DConfig}, projector {ProjectorConfig; grid from the ViT}, image_token_id,
// visual_tokens_per_volume (checked), bos_token_id (default: the LLM's), visual_token_placement
// ("placeholders": at the <im_patch> ids of each row, default; "after_bos": the published fixed rule,
// positions 1..N whatever the ids say), segmentation_mask (false: CT only; true: a second volume,
// its tokens after the CT's), mask_num_classes (117, TotalSegmentator: label l enters as l / 117),
// anyres {"crops": [cd, ch, cw], "global_view": true}, preprocess {hu_min, hu_max, slice_mm},
// region_prompts {"chest": "...", ...}, added_special_tokens ["<im_patch>", ...] (re-added at
// load so ids match), paths llm, tokenizer, vision_weights, projector_weights (relative to the
// folder), custom_projector {"name": "...", "num_tokens": M} (a user-defined projector replaces the
// built-in one: Model::set_projector). Unknown keys are ignored; a value that cannot be honoured is
// an Error naming the key.
#include <array>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/projector/config.hpp"
#include "ctmllm/vision/config.hpp"
#include "ctmllm/vision/preprocess.hpp"

namespace ctmllm::mllm {

enum class VisualPlacement { placeholders, after_bos };

// Larger volumes (PAPER.md step 6): the input is crops × the ViT's img_size; each crop and, with
// global_view, the whole volume area-resized to img_size go through the encoder and projector;
// their tokens are concatenated, the global view first.
struct AnyResConfig {
  std::array<int64_t, 3> crops{1, 1, 1};
  bool global_view = true;

  bool enabled() const { return crops[0] * crops[1] * crops[2] > 1; }
  int64_t views() const { return enabled() ? crops[0] * crops[1] * crops[2] + (global_view ? 1 : 0) : 1; }
};

// A user-defined projector (projector::CustomProjector) in place of the built-in one: what the
// config needs of it to count visual tokens and to check the module attached at load.
struct CustomProjectorInfo {
  std::string name;
  int64_t num_tokens = 0;  // per view
};

struct MllmConfig {
  vision::ViT3DConfig vision;
  projector::ProjectorConfig projector;
  int64_t image_token_id = -1;
  std::optional<int64_t> bos_token_id;
  VisualPlacement placement = VisualPlacement::placeholders;
  bool segmentation_mask = false;
  int64_t mask_num_classes = 117;
  AnyResConfig anyres;
  vision::CtPreprocessOptions preprocess;  // size = the model's input (img_size × crops)
  std::map<std::string, std::string> region_prompts = default_region_prompts();
  std::vector<std::string> added_special_tokens;
  std::string llm = "llm", tokenizer, vision_weights = "vision.safetensors",
              projector_weights = "projector.safetensors";
  std::optional<std::string> vision_weights_prefix;
  std::string projector_weights_prefix;
  std::optional<CustomProjectorInfo> custom_projector;  // set by Model::set_projector

  // The paper's prompts: "you are a <thoracic|abdominal|pelvic> radiologist; describe the findings".
  static std::map<std::string, std::string> default_region_prompts() {
    return {{"chest", "You are a thoracic radiologist. Describe the findings of this chest CT in detail."},
            {"abdomen", "You are an abdominal radiologist. Describe the findings of this abdomen CT in detail."},
            {"pelvis", "You are a pelvic radiologist. Describe the findings of this pelvis CT in detail."}};
  }

  // Visual tokens of one volume (all its AnyRes views), and of a whole input (CT, then the mask).
  int64_t tokens_per_volume() const {
    return (custom_projector ? custom_projector->num_tokens : projector.num_tokens()) * anyres.views();
  }
  int64_t visual_tokens() const { return tokens_per_volume() * (segmentation_mask ? 2 : 1); }
  // The volume the model takes, [D, H, W].
  std::array<int64_t, 3> input_size() const {
    return {vision.img_size[0] * anyres.crops[0], vision.img_size[1] * anyres.crops[1],
            vision.img_size[2] * anyres.crops[2]};
  }
  std::string region_prompt(const std::string& region) const {
    const auto it = region_prompts.find(region);
    CTMLLM_CHECK(it != region_prompts.end(), "MllmConfig: no prompt for region '", region, "' (the config has ",
                 region_prompts.size(), " region prompts)");
    return it->second;
  }

  static MllmConfig from_json(const nlohmann::json& j, const std::string& source) {
    CTMLLM_CHECK(j.is_object(), source, ": an MLLM config must be a JSON object");
    const io::JsonFields f(j, source);
    MllmConfig c;
    CTMLLM_CHECK(f.has("vision") && f.has("projector"), source, ": needs 'vision' and 'projector' objects");
    c.vision = vision::ViT3DConfig::from_json(j["vision"], source + ": vision");
    c.projector = projector::ProjectorConfig::from_json(j["projector"], source + ": projector", c.vision.grid());
    CTMLLM_CHECK(c.projector.in_dim == c.vision.hidden_size, source, ": projector in_dim ", c.projector.in_dim,
                 " differs from the vision hidden_size ", c.vision.hidden_size);
    c.image_token_id = f.integer("image_token_id");
    CTMLLM_CHECK(c.image_token_id >= 0, source, ": 'image_token_id' must be >= 0");
    c.bos_token_id = f.optional_integer("bos_token_id");
    const std::string placement = f.string("visual_token_placement", "placeholders");
    if (placement == "placeholders") c.placement = VisualPlacement::placeholders;
    else if (placement == "after_bos") c.placement = VisualPlacement::after_bos;
    else fail(source, ": 'visual_token_placement' must be 'placeholders' or 'after_bos', got '", placement, "'");
    c.segmentation_mask = f.boolean("segmentation_mask", false);
    c.mask_num_classes = f.integer("mask_num_classes", c.mask_num_classes);
    CTMLLM_CHECK(c.mask_num_classes > 0, source, ": 'mask_num_classes' must be positive");
    if (f.has("anyres")) {
      const io::JsonFields a = f.object("anyres");
      const auto crops = vision::json_int_list(a, "crops", 3);
      for (int i = 0; i < 3; ++i) {
        CTMLLM_CHECK(crops[size_t(i)] >= 1, source, ": anyres crops must be >= 1");
        c.anyres.crops[size_t(i)] = crops[size_t(i)];
      }
      c.anyres.global_view = a.boolean("global_view", true);
    }
    if (f.has("preprocess")) {
      const io::JsonFields p = f.object("preprocess");
      c.preprocess.hu_min = p.number("hu_min", c.preprocess.hu_min);
      c.preprocess.hu_max = p.number("hu_max", c.preprocess.hu_max);
      c.preprocess.slice_mm = p.number("slice_mm", c.preprocess.slice_mm);
      CTMLLM_CHECK(c.preprocess.hu_min < c.preprocess.hu_max && c.preprocess.slice_mm >= 0, source,
                   ": preprocess needs hu_min < hu_max and slice_mm >= 0");
    }
    c.preprocess.size = c.input_size();
    if (f.has("region_prompts")) {
      CTMLLM_CHECK(j["region_prompts"].is_object(), source, ": 'region_prompts' must be an object of strings");
      c.region_prompts.clear();
      for (const auto& [region, prompt] : j["region_prompts"].items()) {
        CTMLLM_CHECK(prompt.is_string(), source, ": region_prompts.", region, " must be a string");
        c.region_prompts[region] = prompt.get<std::string>();
      }
    }
    if (f.has("added_special_tokens")) {
      CTMLLM_CHECK(j["added_special_tokens"].is_array(), source, ": 'added_special_tokens' must be a list of strings");
      for (const auto& t : j["added_special_tokens"]) {
        CTMLLM_CHECK(t.is_string(), source, ": 'added_special_tokens' must hold strings");
        c.added_special_tokens.push_back(t.get<std::string>());
      }
    }
    c.llm = f.string("llm", c.llm);
    c.tokenizer = f.string("tokenizer", "");
    c.vision_weights = f.string("vision_weights", c.vision_weights);
    c.projector_weights = f.string("projector_weights", c.projector_weights);
    if (f.has("vision_weights_prefix")) c.vision_weights_prefix = f.string("vision_weights_prefix");
    c.projector_weights_prefix = f.string("projector_weights_prefix", "");
    if (f.has("custom_projector")) {
      const io::JsonFields cp = f.object("custom_projector");
      c.custom_projector = CustomProjectorInfo{cp.string("name"), cp.integer("num_tokens")};
      CTMLLM_CHECK(!c.custom_projector->name.empty() && c.custom_projector->num_tokens >= 1, source,
                   ": custom_projector needs a non-empty 'name' and 'num_tokens' >= 1");
    }
    const int64_t stated = f.integer("visual_tokens_per_volume", c.tokens_per_volume());
    CTMLLM_CHECK(stated == c.tokens_per_volume(), source, ": visual_tokens_per_volume ", stated, " disagrees with the ",
                 c.tokens_per_volume(), " tokens the projector gives per volume");
    return c;
  }
  static MllmConfig from_file(const std::string& path) {
    const std::string file = std::filesystem::is_directory(path) ? path + "/config.json" : path;
    return from_json(io::read_json_file(file), file);
  }

  nlohmann::json to_json() const {
    const vision::ViT3DConfig& v = vision;
    nlohmann::json vj = {{"in_channels", v.in_channels},   {"img_size", v.img_size},       {"patch_size", v.patch_size},
                         {"hidden_size", v.hidden_size},   {"num_layers", v.num_layers},   {"num_heads", v.num_heads},
                         {"mlp_dim", v.mlp_dim},           {"norm_eps", v.norm_eps},       {"qkv_bias", v.qkv_bias},
                         {"classification", v.classification},
                         {"position_resample", v.position_resample == vision::PositionResample::size ? "size" : "scale"}};
    const projector::ProjectorConfig& p = projector;
    nlohmann::json pj = {{"type", projector::projector_type_name(p.type)}, {"in_dim", p.in_dim}, {"out_dim", p.out_dim}};
    switch (p.type) {
      case projector::ProjectorType::spp:
        pj["pool"] = p.pool;
        pj["layer_type"] = p.mlp ? "mlp" : "linear";
        pj["layer_num"] = p.layer_num;
        pj["summary_token"] = p.summary_max ? "max" : "none";
        if (p.summary_channels[1] != 0) pj["summary_channels"] = p.summary_channels;
        break;
      case projector::ProjectorType::mlp_mix: pj["tokens_out"] = p.tokens_out; break;
      case projector::ProjectorType::linear: break;
      case projector::ProjectorType::token_packer:
        pj["embed_dim"] = p.embed_dim;
        pj["num_heads"] = p.num_heads;
        pj["scale"] = p.scale;
        pj["feature_layers"] = p.feature_layers;
        pj["norm_eps"] = p.norm_eps;
        break;
    }
    nlohmann::json j = {{"vision", vj},
                        {"projector", pj},
                        {"image_token_id", image_token_id},
                        {"visual_tokens_per_volume", tokens_per_volume()},
                        {"visual_token_placement", placement == VisualPlacement::placeholders ? "placeholders" : "after_bos"},
                        {"segmentation_mask", segmentation_mask},
                        {"mask_num_classes", mask_num_classes},
                        {"anyres", {{"crops", anyres.crops}, {"global_view", anyres.global_view}}},
                        {"preprocess", {{"hu_min", preprocess.hu_min}, {"hu_max", preprocess.hu_max}, {"slice_mm", preprocess.slice_mm}}},
                        {"region_prompts", region_prompts},
                        {"added_special_tokens", added_special_tokens},
                        {"llm", llm},
                        {"vision_weights", vision_weights},
                        {"projector_weights", projector_weights},
                        {"projector_weights_prefix", projector_weights_prefix}};
    if (bos_token_id) j["bos_token_id"] = *bos_token_id;
    if (!tokenizer.empty()) j["tokenizer"] = tokenizer;
    if (vision_weights_prefix) j["vision_weights_prefix"] = *vision_weights_prefix;
    if (custom_projector)
      j["custom_projector"] = {{"name", custom_projector->name}, {"num_tokens", custom_projector->num_tokens}};
    return j;
  }
};

}  // namespace ctmllm::mllm
