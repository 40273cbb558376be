#pragma once
// CheckpointDir: one name -> tensor view over a Hugging Face model's weights, whatever their
// layout, so a model loader only does name lookups:
//   model.safetensors.index.json + shards   (sharded safetensors)
//   model.safetensors
//   pytorch_model.bin.index.json + shards   (sharded torch.save)
//   pytorch_model.bin
// (looked for in that order in a folder), or a single file given directly: an *.index.json, a
// safetensors file or a torch.save archive (told apart by content, e.g. M3D's pretrained_ViT.bin).
// Every file stays memory-mapped; get<T> is zero-copy wherever the file format allows it.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "ctmllm/io/hf_config.hpp"
#include "ctmllm/io/safetensors.hpp"
#include "ctmllm/io/torch_checkpoint.hpp"

namespace ctmllm::io {

class CheckpointDir {
 public:
  explicit CheckpointDir(const std::string& path) : path_(path) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(path)) {
      CTMLLM_CHECK(fs::exists(path), path, ": no such file or folder");
      open_file(path);
      return;
    }
    for (const char* candidate : {"model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                                  "pytorch_model.bin"}) {
      const std::string p = path + "/" + candidate;
      if (fs::exists(p)) {
        open_file(p);
        return;
      }
    }
    fail(path, ": no model.safetensors(.index.json) or pytorch_model.bin(.index.json) in this folder");
  }

  const std::string& path() const { return path_; }
  // Sorted.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  // The file that holds `name`.
  const std::string& file(const std::string& name) const {
    return std::visit([](const auto& f) -> const std::string& { return f.path(); }, files_[locate(name)]);
  }
  DType dtype(const std::string& name) const {
    return std::visit([&](const auto& f) { return f.info(name).dtype; }, files_[locate(name)]);
  }
  Shape shape(const std::string& name) const {
    return std::visit([&](const auto& f) { return f.info(name).shape; }, files_[locate(name)]);
  }
  // Converts like SafeTensorsFile::get (floats never become integers); zero-copy when stored as T.
  template <class T>
  Tensor<T, Cpu> get(const std::string& name) const {
    return std::visit([&](const auto& f) { return f.template get<T>(name); }, files_[locate(name)]);
  }

 private:
  using File = std::variant<SafeTensorsFile, TorchCheckpoint>;

  size_t locate(const std::string& name) const {
    auto it = where_.find(name);
    CTMLLM_CHECK(it != where_.end(), path_, ": no tensor named '", name, "'");
    return it->second;
  }

  static bool is_zip(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    return in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
  }

  // Opens one weights file and indexes every tensor in it.
  size_t add(const std::string& file) {
    if (is_zip(file)) files_.emplace_back(std::in_place_type<TorchCheckpoint>, file);
    else files_.emplace_back(std::in_place_type<SafeTensorsFile>, file);
    return files_.size() - 1;
  }

  void open_file(const std::string& file) {
    if (file.size() >= 11 && file.compare(file.size() - 11, 11, ".index.json") == 0) return open_index(file);
    const size_t i = add(file);
    std::visit([&](const auto& f) {
      for (const std::string& n : f.names()) where_[n] = i;
    }, files_[i]);
    for (const auto& [n, _] : where_) names_.push_back(n);
  }

  // {"metadata": {...}, "weight_map": {tensor name: shard file}}: every shard must exist and hold
  // every tensor mapped to it. Tensors a shard holds beyond the map are not visible (as in transformers).
  void open_index(const std::string& index) {
    const nlohmann::json j = read_json_file(index);
    CTMLLM_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), index, ": no 'weight_map' object");
    const std::string dir = std::filesystem::path(index).parent_path().string();
    std::map<std::string, size_t> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      CTMLLM_CHECK(it.value().is_string(), index, ": weight_map entry '", it.key(), "' is not a file name");
      const std::string shard = it.value().get<std::string>();
      // Shards sit beside the index: no absolute paths, no way out of the folder.
      const std::filesystem::path sp(shard);
      bool escapes = sp.is_absolute() || shard.empty();
      for (const auto& part : sp) escapes = escapes || part == "..";
      CTMLLM_CHECK(!escapes, index, ": shard '", shard, "' of tensor '", it.key(), "' is not a file beside the index");
      auto s = shards.find(shard);
      if (s == shards.end()) {
        const std::string p = (dir.empty() ? shard : dir + "/" + shard);
        CTMLLM_CHECK(std::filesystem::is_regular_file(p), index, ": shard '", shard, "' (of tensor '", it.key(),
                     "') does not exist");
        s = shards.emplace(shard, add(p)).first;
      }
      const bool present = std::visit([&](const auto& f) { return f.contains(it.key()); }, files_[s->second]);
      CTMLLM_CHECK(present, index, ": tensor '", it.key(), "' is mapped to shard '", shard, "', which does not hold it");
      where_[it.key()] = s->second;
      names_.push_back(it.key());
    }
  }

  std::string path_;
  std::vector<File> files_;
  std::map<std::string, size_t> where_;
  std::vector<std::string> names_;
};

}  // namespace ctmllm::io
