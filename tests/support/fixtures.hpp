#pragma once
// Access to the golden reference data copied into tests/fixtures (see tests/fixtures/README.md).
#include <cstdlib>
#include <string>

#include "ctmllm/core/tensor.hpp"
#include "ctmllm/io/safetensors.hpp"

namespace ctmllm::testing {

// The tests/ folder's fixtures and data as the build saw them, or under $CTMLLM_TESTS_DIR when set (a
// test binary run from another checkout: benchmarks/gpu/prebuild.sh's binaries on the GPU machine).
inline std::string tests_subdir(const char* built_in, const char* name) {
  const char* dir = std::getenv("CTMLLM_TESTS_DIR");
  return dir && *dir ? std::string(dir) + "/" + name : std::string(built_in);
}
inline std::string fixture_path(const std::string& relative) {
  return tests_subdir(CTMLLM_TEST_FIXTURES, "fixtures") + "/" + relative;
}
inline std::string data_path(const std::string& relative) { return tests_subdir(CTMLLM_TEST_DATA, "data") + "/" + relative; }

// One reference file, e.g. Fixture f("ops/layer_norm.safetensors"); f.get<float>("x").
class Fixture {
 public:
  explicit Fixture(const std::string& relative) : file_(fixture_path(relative)) {}
  template <class T = float>
  Tensor<T, Cpu> get(const std::string& name) const { return file_.get<T>(name).clone(); }
  bool has(const std::string& name) const { return file_.contains(name); }
  const std::string& meta(const std::string& key) const {
    auto it = file_.metadata().find(key);
    CTMLLM_CHECK(it != file_.metadata().end(), file_.path(), ": no metadata key '", key, "'");
    return it->second;
  }

 private:
  io::SafeTensorsFile file_;
};

}  // namespace ctmllm::testing
