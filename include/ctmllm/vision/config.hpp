#pragma once
// ViT3DConfig: the shape of an M3D-CLIP / MONAI 3D ViT, read at run time from JSON.
//
// Keys (M3D-CLIP's config.json spells them this way): in_channels, img_size [d, h, w],
// patch_size [p1, p2, p3], hidden_size, num_layers, num_heads, mlp_dim; optional: norm_eps (1e-5),
// qkv_bias (false), classification (true: a CLS token), pos_embed ("perceptron", the only one M3D
// uses), activation ("gelu" / "gelu_exact"), dropout_rate (0: inference and M3D's training use none),
// spatial_dims (3), position_resample ("size" or "scale", see position_table.hpp). Keys with no
// effect on the network (architectures, vocab_size of the CLIP text side, ...) are ignored, as
// io/hf_config.hpp does; a value that cannot be honoured is an Error naming the key and the source.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/vision/position_table.hpp"

namespace ctmllm::vision {

// The list of integers under `key` (required); `count` > 0 fixes its length.
inline std::vector<int64_t> json_int_list(const io::JsonFields& f, const std::string& key, size_t count = 0) {
  CTMLLM_CHECK(f.has(key), f.source(), ": missing required key '", key, "'");
  const nlohmann::json& v = f.raw(key);
  CTMLLM_CHECK(v.is_array() && (count == 0 || v.size() == count), f.source(), ": '", key, "' must be a list of ",
               count ? std::to_string(count) + " " : std::string(), "integers, got ", v.dump());
  std::vector<int64_t> out;
  for (const auto& e : v) {
    CTMLLM_CHECK(e.is_number_integer(), f.source(), ": '", key, "' must hold integers, got ", v.dump());
    out.push_back(e.get<int64_t>());
  }
  return out;
}

// An integer or a list of three (a pooling size "2" means 2×2×2), as M3D configs write either.
inline std::array<int64_t, 3> json_triple(const io::JsonFields& f, const std::string& key) {
  CTMLLM_CHECK(f.has(key), f.source(), ": missing required key '", key, "'");
  if (f.raw(key).is_number_integer()) {
    const int64_t n = f.integer(key);
    return {n, n, n};
  }
  const auto v = json_int_list(f, key, 3);
  return {v[0], v[1], v[2]};
}

struct ViT3DConfig {
  int64_t in_channels = 1;
  std::array<int64_t, 3> img_size{32, 256, 256};
  std::array<int64_t, 3> patch_size{4, 16, 16};
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t mlp_dim = 3072;
  double norm_eps = 1e-5;
  bool qkv_bias = false;
  bool classification = true;
  PositionResample position_resample = PositionResample::size;

  // The patch grid of the pretraining size: the position table's shape.
  std::array<int64_t, 3> grid() const {
    return {img_size[0] / patch_size[0], img_size[1] / patch_size[1], img_size[2] / patch_size[2]};
  }
  int64_t num_patches() const { return grid()[0] * grid()[1] * grid()[2]; }

  // An Error naming `source` when the numbers cannot describe a ViT.
  void validate(const std::string& source) const {
    CTMLLM_CHECK(in_channels > 0 && hidden_size > 0 && num_layers > 0 && num_heads > 0 && mlp_dim > 0, source,
                 ": in_channels, hidden_size, num_layers, num_heads and mlp_dim must be positive");
    for (int i = 0; i < 3; ++i) {
      CTMLLM_CHECK(patch_size[i] > 0 && img_size[i] > 0, source, ": img_size and patch_size must be positive");
      CTMLLM_CHECK(img_size[i] % patch_size[i] == 0, source, ": img_size ", img_size[i], " is not divisible by patch_size ",
                   patch_size[i], " (axis ", i, ")");
    }
    CTMLLM_CHECK(hidden_size % num_heads == 0, source, ": hidden_size ", hidden_size, " is not divisible by num_heads ",
                 num_heads);
    CTMLLM_CHECK(norm_eps > 0, source, ": norm_eps must be positive");
  }

  static ViT3DConfig from_json(const nlohmann::json& j, const std::string& source) {
    CTMLLM_CHECK(j.is_object(), source, ": a ViT3D config must be a JSON object");
    const io::JsonFields f(j, source);
    ViT3DConfig c;
    c.in_channels = f.integer("in_channels", c.in_channels);
    const auto img = json_int_list(f, "img_size", 3), patch = json_int_list(f, "patch_size", 3);
    c.img_size = {img[0], img[1], img[2]};
    c.patch_size = {patch[0], patch[1], patch[2]};
    c.hidden_size = f.integer("hidden_size");
    c.num_layers = f.integer("num_layers");
    c.num_heads = f.integer("num_heads");
    c.mlp_dim = f.integer("mlp_dim");
    c.norm_eps = f.number("norm_eps", c.norm_eps);
    c.qkv_bias = f.boolean("qkv_bias", c.qkv_bias);
    c.classification = f.boolean("classification", c.classification);
    const std::string pos = f.string("pos_embed", "perceptron");
    CTMLLM_CHECK(pos == "perceptron", source, ": unsupported pos_embed '", pos, "' (only 'perceptron' is supported)");
    const std::string act = f.string("activation", "gelu");
    CTMLLM_CHECK(act == "gelu" || act == "gelu_exact", source, ": unsupported activation '", act,
                 "' (the M3D ViT uses exact GELU: 'gelu' or 'gelu_exact')");
    CTMLLM_CHECK(f.number("dropout_rate", 0.0) == 0.0, source, ": dropout_rate ", f.number("dropout_rate", 0.0),
                 " is not supported (M3D trains and runs its ViT without dropout)");
    CTMLLM_CHECK(f.integer("spatial_dims", 3) == 3, source, ": spatial_dims must be 3");
    c.position_resample = parse_position_resample(f.string("position_resample", "size"), source);
    c.validate(source);
    return c;
  }
  static ViT3DConfig from_file(const std::string& path) { return from_json(io::read_json_file(path), path); }
};

}  // namespace ctmllm::vision
