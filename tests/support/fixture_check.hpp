#pragma once
// Runs a reference fixture through the fixture runner on device D and checks every output against
// the reference key of the same name (floats by relative error, token ids exactly), and that every
// output the fixture should give was produced. Shared by the CPU fixture tests
// (tests/fixture_runner) and the GPU ones (tests/cuda/test_cuda_fixtures.cu).
#include <cstdio>
#include <set>
#include <string>

#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixture_runner.hpp"
#include "support/fixtures.hpp"

namespace ctmllm::testing {

// The reference's keys that start with one of `prefixes`, plus `others`.
inline std::set<std::string> fixture_keys(const std::string& fixture, const std::set<std::string>& prefixes,
                                          const std::set<std::string>& others = {}) {
  const io::SafeTensorsFile ref(fixture_path(fixture + "/reference.safetensors"));
  std::set<std::string> keys = others;
  for (const std::string& key : ref.names())
    for (const std::string& p : prefixes)
      if (key.starts_with(p)) keys.insert(key);
  return keys;
}

// What the runner must produce for each shipped fixture (kind as the folder: llm, vision, mllm, lora,
// train): the outputs the kind writes, with the reference's gradient and weight keys.
inline std::set<std::string> expected_outputs(const std::string& kind, const std::string& name) {
  const std::string fixture = kind + "/" + name;
  if (kind == "llm") return {"logits", "padded_logits", "greedy_output"};
  if (kind == "vision" && name == "vit3d")
    return {"output", "cls", "output_32x64x48_size", "output_32x64x48_scale", "output_native_scale"};
  if (kind == "vision") return {"output"};
  if (kind == "mllm") {
    std::set<std::string> keys = fixture_keys(fixture, {"ct.", "ct_mask."});
    for (const char* input : {"ct.input_ids", "ct.labels", "ct_mask.input_ids", "ct_mask.labels"}) keys.erase(input);
    return keys;
  }
  if (kind == "lora") return fixture_keys(fixture, {"grad.", "grad0.", "final."}, {"logits", "loss", "merged_logits"});
  return fixture_keys(fixture, {"grad.", "grad0.", "final."},
                      {"loss.0", "loss.1", "loss.2", "grad_norm.0", "grad_norm.1", "grad_norm.2"});
}

// Floats within 1e-4 relative of the reference; the AdamW trajectory (losses, norms, final weights)
// within 1e-5.
inline double fixture_tolerance(const std::string& kind, const std::string& key) {
  return kind == "train" && !key.starts_with("grad0.") ? 1e-5 : 1e-4;
}

template <class D = Cpu>
void check_against_reference(const std::string& kind, const std::string& name) {
  const std::set<std::string> expected = expected_outputs(kind, name);
  const std::string dir = fixture_path(kind + "/" + name);
  const auto out = fixture_runner::run<D>(kind == "vision" ? (name == "vit3d" ? "vision" : "projector") : kind, dir);
  const io::SafeTensorsFile ref(dir + "/reference.safetensors");
  std::set<std::string> produced;
  for (const auto& [key, t] : out.floats) {
    INFO(kind << "/" << name << " " << key << " on " << D::name);
    REQUIRE(ref.contains(key));
    const double e = rel_error(t, ref.get<float>(key));
    std::printf("fixture %s/%s (%s) %-60s rel error %.3g\n", kind.c_str(), name.c_str(), D::name, key.c_str(), e);
    CHECK(e <= fixture_tolerance(kind, key));
    produced.insert(key);
  }
  for (const auto& [key, t] : out.ints) {
    INFO(kind << "/" << name << " " << key << " on " << D::name);
    REQUIRE(ref.contains(key));
    CHECK(t.to_vector() == ref.get<int64_t>(key).to_vector());
    produced.insert(key);
  }
  for (const std::string& key : expected) {
    INFO("expected output " << key);
    CHECK(produced.count(key) == 1);
  }
}

}  // namespace ctmllm::testing
