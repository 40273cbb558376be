// CheckpointDir: one name -> tensor view over the four Hugging Face weight layouts (safetensors,
// sharded safetensors, pytorch_model.bin, sharded .bin) and single files; index validation.
#include <filesystem>
#include <fstream>

#include "ctmllm/io/checkpoint.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::message_of;
namespace fs = std::filesystem;

namespace {
// A scratch folder holding copies of the sharded safetensors fixture, with `index` as its index.
std::string sharded_with_index(const std::string& name, const std::string& index) {
  const fs::path dir = testing::scratch_dir(name);
  fs::create_directories(dir);
  for (const char* shard : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"})
    fs::copy_file(testing::fixture_path(std::string("io/model/sharded/") + shard), dir / shard);
  std::ofstream(dir / "model.safetensors.index.json") << index;
  return dir.string();
}
}  // namespace

TEST_CASE("every weight layout gives the same names, dtypes, shapes and values", "[io][checkpoint]") {
  const io::SafeTensorsFile ref(testing::fixture_path("io/model/safetensors/model.safetensors"));
  for (const char* layout : {"safetensors", "sharded", "bin", "bin_sharded"}) {
    INFO(layout);
    const io::CheckpointDir ck(testing::fixture_path(std::string("io/model/") + layout));
    CHECK(ck.names() == ref.names());
    for (const std::string& name : ref.names()) {
      INFO(name);
      CHECK(ck.dtype(name) == ref.info(name).dtype);
      CHECK(ck.shape(name) == ref.info(name).shape);
      CHECK(ck.get<float>(name).to_vector() == ref.get<float>(name).to_vector());
    }
    CHECK(ck.dtype("model.layers.0.mlp.up_proj.weight") == DType::BF16);
    CHECK_THROWS_AS(ck.get<float>("missing.weight"), Error);
    CHECK_THROWS_AS(ck.get<int64_t>("lm_head.weight"), Error);  // float -> int
  }
}

TEST_CASE("shards stay mapped: a tensor stored as T comes back as a view", "[io][checkpoint]") {
  const io::CheckpointDir ck(testing::fixture_path("io/model/sharded"));
  CHECK(ck.get<float>("lm_head.weight").data() == ck.get<float>("lm_head.weight").data());
  CHECK(ck.get<bf16>("model.layers.0.mlp.up_proj.weight").data() == ck.get<bf16>("model.layers.0.mlp.up_proj.weight").data());
  CHECK(ck.file("lm_head.weight").find("model-00002-of-00002.safetensors") != std::string::npos);
  CHECK(ck.file("model.embed_tokens.weight").find("model-00001-of-00002.safetensors") != std::string::npos);
}

TEST_CASE("single files: an index, a safetensors file, a torch archive by content", "[io][checkpoint]") {
  const io::CheckpointDir idx(testing::fixture_path("io/model/bin_sharded/pytorch_model.bin.index.json"));
  CHECK(idx.names().size() == 5);
  const io::CheckpointDir pth(testing::fixture_path("io/torch/state_dict.pth"));
  CHECK(pth.contains("vision_tower.vision_tower.blocks.0.attn.qkv.weight"));
  CHECK(pth.shape("vision_tower.vision_tower.blocks.0.attn.qkv.weight") == Shape{12, 4});
  const io::CheckpointDir llama(testing::fixture_path("llm/llama"));
  CHECK(llama.contains("model.embed_tokens.weight"));
  CHECK(llama.shape("model.embed_tokens.weight") == Shape{384, 64});
}

TEST_CASE("a bad folder or index raises ctmllm::Error naming the file and the tensor", "[io][checkpoint][errors]") {
  CHECK(message_of([] { io::CheckpointDir(testing::fixture_path("io/config")); }).find("no model.safetensors") != std::string::npos);
  CHECK_THROWS_AS(io::CheckpointDir(testing::fixture_path("io/nope")), Error);

  const std::string s1 = "model-00001-of-00002.safetensors", s2 = "model-00002-of-00002.safetensors";
  auto index = [](const std::string& weight_map) { return R"({"metadata": {}, "weight_map": )" + weight_map + "}"; };
  CHECK_NOTHROW(io::CheckpointDir(sharded_with_index("ok", index(R"({"lm_head.weight": ")" + s2 + R"("})"))));

  std::string m = message_of([&] { io::CheckpointDir(sharded_with_index("missing", index(R"({"lm_head.weight": "model-00003.safetensors"})"))); });
  CHECK(m.find("model.safetensors.index.json") != std::string::npos);
  CHECK(m.find("model-00003.safetensors") != std::string::npos);
  CHECK(m.find("does not exist") != std::string::npos);

  m = message_of([&] { io::CheckpointDir(sharded_with_index("wrong", index(R"({"lm_head.weight": ")" + s1 + R"("})"))); });
  CHECK(m.find("'lm_head.weight'") != std::string::npos);
  CHECK(m.find("does not hold it") != std::string::npos);

  m = message_of([&] { io::CheckpointDir(sharded_with_index("escape", index(R"({"lm_head.weight": "../)" + s2 + R"("})"))); });
  CHECK(m.find("not a file beside the index") != std::string::npos);
  CHECK_THROWS_AS(io::CheckpointDir(sharded_with_index("abs", index(R"({"lm_head.weight": "/etc/passwd"})"))), Error);
  CHECK_THROWS_AS(io::CheckpointDir(sharded_with_index("nomap", R"({"metadata": {}})")), Error);
  CHECK_THROWS_AS(io::CheckpointDir(sharded_with_index("notstr", index(R"({"lm_head.weight": 3})"))), Error);
  CHECK_THROWS_AS(io::CheckpointDir(sharded_with_index("json", "{not json")), Error);
  for (const char* name : {"ok", "missing", "wrong", "escape", "abs", "nomap", "notstr", "json"})
    fs::remove_all(testing::scratch_dir(name));
}
