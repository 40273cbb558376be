// Uses an installed ctmllm from another CMake project: a Tensor and its views, an op checked
// against a formula, and a safetensors write/read round trip compared value by value.
// Exits 1 on any mismatch; argv[1] is a scratch directory.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ctmllm/core.hpp>
#include <ctmllm/io/safetensors.hpp>
#include <ctmllm/ops/activation.hpp>

namespace {
int checks = 0, failures = 0;
void expect(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}
template <class T>
bool same_bits(const ctmllm::Tensor<T>& a, const ctmllm::Tensor<T>& b) {
  if (!(a.shape() == b.shape())) return false;
  const auto va = a.to_vector(), vb = b.to_vector();
  return std::memcmp(va.data(), vb.data(), va.size() * sizeof(T)) == 0;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace ctmllm;
  const std::filesystem::path dir = argc > 1 ? argv[1] : ".";

  // Tensor: views share storage and index correctly.
  const auto t = Tensor<float>::from({0, 1, 2, 3, 4, 5}, {2, 3});
  const auto tt = t.transpose(0, 1);
  expect(tt.shape() == Shape{3, 2} && tt.shares_storage_with(t), "transpose is a view");
  expect(tt.at(2, 1) == 5.0f && tt.at(1, 0) == 1.0f, "transpose indexes");
  const auto c = tt.contiguous();
  expect(c.is_contiguous() && c.to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5}, "contiguous copy of a transpose");
  expect(t.slice(1, 1, 3).at(1, 0) == 4.0f, "slice");
  bool threw = false;
  try {
    (void)t.at(2, 0);
  } catch (const Error&) {
    threw = true;
  }
  expect(threw, "out-of-range index raises ctmllm::Error");

  // An op: exact GELU against 0.5·x·(1 + erf(x/√2)) in double.
  Rng rng(1234);
  const auto x = rng.normal<float>({4, 5, 6}, 0.0, 2.0);
  const auto y = ops::gelu(x);
  double worst = 0;
  const auto xv = x.to_vector(), yv = y.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) {
    const double r = 0.5 * double(xv[i]) * (1.0 + std::erf(double(xv[i]) / std::sqrt(2.0)));
    worst = std::max(worst, std::abs(double(yv[i]) - r) / (1.0 + std::abs(r)));
  }
  expect(y.shape() == x.shape() && worst < 1e-6, "gelu matches the erf formula (worst " + std::to_string(worst) + ")");

  // safetensors: write several dtypes and metadata, read back, compare every value.
  const std::string path = (dir / "consumer_roundtrip.safetensors").string();
  const auto ids = Tensor<int64_t>::from({-3, 0, 7, int64_t(1) << 40}, {2, 2});
  const auto w16 = x.slice(0, 1, 3).to<bf16>();  // from a strided view
  {
    io::SafeTensorsWriter w;
    w.add("vision.patch_embed.weight", x);
    w.add("ids", ids);
    w.add("half_weights", w16);
    w.set_metadata("format", "pt");
    w.write(path);
  }
  {
    io::SafeTensorsFile f(path);
    expect(f.names() == std::vector<std::string>{"half_weights", "ids", "vision.patch_embed.weight"}, "tensor names");
    expect(f.metadata().count("format") && f.metadata().at("format") == "pt", "metadata");
    expect(f.info("half_weights").dtype == DType::BF16, "bf16 dtype kept");
    expect(same_bits(f.get<float>("vision.patch_embed.weight"), x), "float32 round trip");
    expect(same_bits(f.get<int64_t>("ids"), ids), "int64 round trip");
    expect(same_bits(f.get<bf16>("half_weights"), w16), "bf16 round trip");
    const auto widened = f.get<float>("half_weights");  // converted on load
    expect(widened.shape() == Shape{2, 5, 6} && widened.at(1, 4, 5) == float(w16.at(1, 4, 5)), "bf16 -> float on load");
  }
  // A truncated copy is refused with an Error, not a crash.
  {
    const std::string cut = (dir / "consumer_truncated.safetensors").string();
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(cut, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
    bool refused = false;
    try {
      io::SafeTensorsFile bad(cut);
    } catch (const Error& e) {
      refused = std::string(e.what()).find("consumer_truncated") != std::string::npos;
    }
    expect(refused, "truncated safetensors raises an Error naming the file");
  }

  std::printf("consumer: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
