#pragma once
// ProjectorConfig: which projector maps the ViT's tokens to the LLM width, read at run time from JSON.
//
//   type          "spp" | "mlp_mix" | "linear" | "token_packer"                     (required)
//   grid          [d, h, w]: the ViT's patch grid; N = d·h·w input tokens   (required unless given)
//   in_dim        the ViT width E; out_dim: the LLM width H                          (required)
//   spp:          pool (int or [3], default 2), layer_type "mlp" | "linear" (default "mlp"),
//                 layer_num (default 2), summary_token "none" | "max" (default "none"; a ctmllm
//                 extension, see spp.hpp), summary_channels [first, count] (with "max": count
//                 summary tokens, one per channel first..first+count-1, instead of one), tokens_out
//                 (optional: checked against the pooled grid plus the summary tokens)
//   mlp_mix:      tokens_out M (required)
//   token_packer: embed_dim (1024), num_heads (8), scale (int or [3], default 2),
//                 feature_layers ([5, 7, 10, 11]), norm_eps (1e-6)
// Other keys are ignored; a value that cannot be honoured is an Error naming the key and the source.
#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/ops/pool3d.hpp"
#include "ctmllm/vision/config.hpp"

namespace ctmllm::projector {

enum class ProjectorType { spp, mlp_mix, linear, token_packer };

inline const char* projector_type_name(ProjectorType t) {
  switch (t) {
    case ProjectorType::spp: return "spp";
    case ProjectorType::mlp_mix: return "mlp_mix";
    case ProjectorType::linear: return "linear";
    case ProjectorType::token_packer: return "token_packer";
  }
  return "?";
}

struct ProjectorConfig {
  ProjectorType type = ProjectorType::spp;
  std::array<int64_t, 3> grid{8, 16, 16};
  int64_t in_dim = 768;
  int64_t out_dim = 4096;
  // spp
  std::array<int64_t, 3> pool{2, 2, 2};
  bool mlp = true;        // layer_type "mlp": GELU between the Linears; "linear": none
  int64_t layer_num = 2;  // number of Linears
  bool summary_max = false;  // summary_token "max": summary tokens after the pooled ones
  // summary_channels [first, count]: count == 0 -> one summary token with every channel; else one
  // token per channel first..first+count-1, channels first+count.. holding which one (spp.hpp).
  std::array<int64_t, 2> summary_channels{0, 0};
  int64_t summary_tokens() const { return summary_max ? std::max<int64_t>(1, summary_channels[1]) : 0; }
  // mlp_mix
  int64_t tokens_out = 256;
  // token_packer
  int64_t embed_dim = 1024;
  int64_t num_heads = 8;
  std::array<int64_t, 3> scale{2, 2, 2};
  std::vector<int> feature_layers{5, 7, 10, 11};
  double norm_eps = 1e-6;

  int64_t tokens_in() const { return grid[0] * grid[1] * grid[2]; }
  // The tokens the projector hands the LLM.
  int64_t num_tokens() const {
    switch (type) {
      case ProjectorType::spp: {
        const Shape pooled = ops::avg_pool3d_output_shape({1, 1, grid[0], grid[1], grid[2]}, pool, pool);
        return pooled[2] * pooled[3] * pooled[4] + summary_tokens();
      }
      case ProjectorType::mlp_mix: return tokens_out;
      case ProjectorType::linear: return tokens_in();
      case ProjectorType::token_packer: return tokens_in() / (scale[0] * scale[1] * scale[2]);
    }
    return 0;
  }

  // An Error naming `source` when the numbers cannot describe this projector.
  void validate(const std::string& source) const {
    CTMLLM_CHECK(in_dim > 0 && out_dim > 0, source, ": in_dim and out_dim must be positive");
    for (int i = 0; i < 3; ++i) CTMLLM_CHECK(grid[i] > 0, source, ": grid must be positive");
    switch (type) {
      case ProjectorType::spp:
        CTMLLM_CHECK(layer_num > 0, source, ": layer_num must be positive");
        for (int i = 0; i < 3; ++i)
          CTMLLM_CHECK(pool[i] > 0 && pool[i] <= grid[i], source, ": pool ", Shape{pool[0], pool[1], pool[2]},
                       " does not fit grid ", Shape{grid[0], grid[1], grid[2]});
        if (summary_channels[1] != 0)
          CTMLLM_CHECK(summary_max && summary_channels[0] >= 0 && summary_channels[1] > 0 &&
                           summary_channels[0] + 2 * summary_channels[1] <= out_dim,
                       source, ": summary_channels [", summary_channels[0], ", ", summary_channels[1],
                       "] needs summary_token 'max' and first + 2 * count <= out_dim ", out_dim,
                       " (count channels read, count more mark which)");
        break;
      case ProjectorType::mlp_mix: CTMLLM_CHECK(tokens_out > 0, source, ": tokens_out must be positive"); break;
      case ProjectorType::linear: break;
      case ProjectorType::token_packer:
        CTMLLM_CHECK(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0, source, ": embed_dim ", embed_dim,
                     " must be a positive multiple of num_heads ", num_heads);
        CTMLLM_CHECK(!feature_layers.empty(), source, ": token_packer needs at least one feature layer");
        CTMLLM_CHECK(norm_eps > 0, source, ": norm_eps must be positive");
        for (int i = 0; i < 3; ++i)
          CTMLLM_CHECK(scale[i] > 0 && grid[i] % scale[i] == 0, source, ": grid ", Shape{grid[0], grid[1], grid[2]},
                       " is not divisible by scale ", Shape{scale[0], scale[1], scale[2]});
        break;
    }
  }

  // This config after validate(source): for initialiser lists, so nothing is sized from bad numbers.
  ProjectorConfig validated(const std::string& source) const {
    validate(source);
    return *this;
  }

  // `grid` stands in when the JSON has none (e.g. the ViT's: ViT3DConfig::grid()).
  static ProjectorConfig from_json(const nlohmann::json& j, const std::string& source,
                                   const std::optional<std::array<int64_t, 3>>& grid = std::nullopt) {
    CTMLLM_CHECK(j.is_object(), source, ": a projector config must be a JSON object");
    const io::JsonFields f(j, source);
    ProjectorConfig c;
    const std::string type = f.string("type");
    if (type == "spp") c.type = ProjectorType::spp;
    else if (type == "mlp_mix") c.type = ProjectorType::mlp_mix;
    else if (type == "linear") c.type = ProjectorType::linear;
    else if (type == "token_packer") c.type = ProjectorType::token_packer;
    else fail(source, ": unknown projector type '", type, "' (spp, mlp_mix, linear, token_packer)");
    if (f.has("grid")) c.grid = vision::json_triple(f, "grid");
    else if (grid) c.grid = *grid;
    else fail(source, ": missing required key 'grid' (the ViT's patch grid)");
    c.in_dim = f.integer("in_dim");
    c.out_dim = f.integer("out_dim");
    if (c.type == ProjectorType::spp) {
      if (f.has("pool")) c.pool = vision::json_triple(f, "pool");
      const std::string layer_type = f.string("layer_type", "mlp");
      CTMLLM_CHECK(layer_type == "mlp" || layer_type == "linear", source, ": layer_type must be 'mlp' or 'linear', got '",
                   layer_type, "'");
      c.mlp = layer_type == "mlp";
      c.layer_num = f.integer("layer_num", c.layer_num);
      const std::string summary = f.string("summary_token", "none");
      CTMLLM_CHECK(summary == "none" || summary == "max", source, ": summary_token must be 'none' or 'max', got '",
                   summary, "'");
      c.summary_max = summary == "max";
      if (f.has("summary_channels")) {
        const std::vector<int64_t> sc = vision::json_int_list(f, "summary_channels", 2);
        c.summary_channels = {sc[0], sc[1]};
      }
    }
    if (c.type == ProjectorType::mlp_mix) c.tokens_out = f.integer("tokens_out");
    if (c.type == ProjectorType::token_packer) {
      c.embed_dim = f.integer("embed_dim", c.embed_dim);
      c.num_heads = f.integer("num_heads", c.num_heads);
      if (f.has("scale")) c.scale = vision::json_triple(f, "scale");
      if (f.has("feature_layers")) {
        c.feature_layers.clear();
        for (int64_t l : vision::json_int_list(f, "feature_layers")) c.feature_layers.push_back(int(l));
      }
      c.norm_eps = f.number("norm_eps", c.norm_eps);
    }
    c.validate(source);
    if (c.type == ProjectorType::spp && f.has("tokens_out"))
      CTMLLM_CHECK(f.integer("tokens_out") == c.num_tokens(), source, ": tokens_out ", f.integer("tokens_out"),
                   " disagrees with the ", c.num_tokens(), " tokens that pool (and summary_token) give on grid");
    return c;
  }
  static ProjectorConfig from_file(const std::string& path,
                                   const std::optional<std::array<int64_t, 3>>& grid = std::nullopt) {
    return from_json(io::read_json_file(path), path, grid);
  }
};

// Checks a projector input: tokens [B, N, E] with N and E as configured.
template <class T, class D>
void check_tokens(const autograd::Variable<T, D>& x, int64_t n, int64_t e, const char* op, const char* name) {
  CTMLLM_CHECK(x.defined(), op, ": ", name, " is undefined");
  CTMLLM_CHECK(x.rank() == 3 && x.size(1) == n && x.size(2) == e, op, ": ", name, " must be [B, ", n, ", ", e,
               "], got ", x.value().describe());
}

}  // namespace ctmllm::projector
