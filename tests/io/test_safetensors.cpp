// safetensors: reading the PyTorch fixtures, writing and reading back every dtype with metadata,
// zero-copy views, and clean errors on corrupt files.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ctmllm/io/safetensors.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::scratch_dir;

namespace {
// A file with a hand-written header and `data_bytes` zero bytes of data.
std::string write_raw(const std::string& name, const std::string& header, size_t data_bytes, int64_t length_override = -1) {
  const std::string p = scratch_dir(name);
  std::ofstream out(p, std::ios::binary);
  const uint64_t n = length_override >= 0 ? uint64_t(length_override) : header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(header.data(), std::streamsize(header.size()));
  const std::string zeros(data_bytes, '\0');
  out.write(zeros.data(), std::streamsize(zeros.size()));
  return p;
}
}  // namespace

TEST_CASE("reads tensors and metadata written by the Python safetensors library", "[io][safetensors]") {
  io::SafeTensorsFile f(testing::fixture_path("ops/cross_entropy.safetensors"));
  CHECK(f.names() == std::vector<std::string>{"dlogits", "logits", "loss", "target"});
  CHECK(f.info("logits").shape == Shape{2, 6, 29});
  CHECK(f.info("target").dtype == DType::I64);
  CHECK(f.metadata().at("ignore_index") == "-100");
  const auto target = f.get<int64_t>("target");
  CHECK(target.at(0, 0) == -100);
  CHECK_THROWS_AS(f.get<float>("nope"), Error);
}

TEST_CASE("zero-copy when the dtype matches, converted otherwise", "[io][safetensors]") {
  io::SafeTensorsFile f(testing::fixture_path("ops/linear.safetensors"));
  const auto w = f.get<float>("w");
  const auto raw = f.raw("w");
  CHECK(reinterpret_cast<const std::byte*>(w.data()) == raw.data());
  const auto wd = f.get<double>("w");
  CHECK(wd.at(3, 5) == double(w.at(3, 5)));
  CHECK_THROWS_AS(f.get<int64_t>("w"), Error);  // float -> int would truncate
}

TEST_CASE("write then read every dtype with metadata", "[io][safetensors]") {
  io::SafeTensorsWriter w;
  w.add("f64", Tensor<double>::from({1.5, -2.25}, {2}));
  w.add("f32", Tensor<float>::from({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3}).transpose(0, 1));  // strided input
  w.add("bf16", Tensor<float>::from({1.f, -3.5f}, {2}).to<bf16>());
  w.add("f16", Tensor<float>::from({0.5f, 65504.f}, {2}).to<half>());
  w.add("i64", Tensor<int64_t>::from({-(int64_t(1) << 40), 3}, {2}));
  w.add("i32", Tensor<int32_t>::from({-7}, {1}));
  w.add("i16", Tensor<int16_t>::from({-300, 300}, {2}));
  w.add("i8", Tensor<int8_t>::from({-128, 127}, {2}));
  w.add("u8", Tensor<uint8_t>::from({0, 255}, {2}));
  w.add("bool", Tensor<bool>::from({true, false, true}, {3}));
  w.add("scalar", Tensor<float>::from({9.f}, Shape{}));
  w.set_metadata("format", "pt");
  const std::string p = scratch_dir("roundtrip.safetensors");
  w.write(p);
  io::SafeTensorsFile r(p);
  CHECK(r.metadata().at("format") == "pt");
  CHECK(r.get<double>("f64").to_vector() == std::vector<double>{1.5, -2.25});
  CHECK(r.get<float>("f32").shape() == Shape{3, 2});
  CHECK(r.get<float>("f32").to_vector() == std::vector<float>{1.f, 4.f, 2.f, 5.f, 3.f, 6.f});
  CHECK(r.get<float>("bf16").to_vector() == std::vector<float>{1.f, -3.5f});
  CHECK(r.get<float>("f16").to_vector() == std::vector<float>{0.5f, 65504.f});
  CHECK(r.get<int64_t>("i64").at(0) == -(int64_t(1) << 40));
  CHECK(r.get<int32_t>("i32").at(0) == -7);
  CHECK(r.get<int64_t>("i16").to_vector() == std::vector<int64_t>{-300, 300});
  CHECK(r.get<int32_t>("i8").to_vector() == std::vector<int32_t>{-128, 127});
  CHECK(r.get<uint8_t>("u8").at(1) == 255);
  CHECK(r.get<uint8_t>("bool").to_vector() == std::vector<uint8_t>{1, 0, 1});
  CHECK(r.get<float>("scalar").rank() == 0);
  CHECK(r.get<float>("scalar").item() == 9.f);
  std::remove(p.c_str());
}

TEST_CASE("corrupt files raise ctmllm::Error naming the file and field", "[io][safetensors][errors]") {
  const std::string ok_entry = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK_NOTHROW(io::SafeTensorsFile(write_raw("ok", ok_entry, 8)));
  CHECK_THROWS_AS(io::SafeTensorsFile(scratch_dir("missing")), Error);
  {
    const std::string p = scratch_dir("tiny");
    std::ofstream(p) << "abc";
    CHECK_THROWS_AS(io::SafeTensorsFile(p), Error);  // no room for the header length
  }
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("hdrlen", ok_entry, 8, 1 << 20)), Error);  // header past EOF
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("json", "{not json", 0)), Error);
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("dtype", R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2)), Error);
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("range", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)), Error);
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("size", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)), Error);
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("overlap",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)), Error);
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("rank",
      R"({"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}})", 1)), Error);
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("neg", R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1)), Error);
  CHECK_THROWS_AS(io::SafeTensorsFile(write_raw("meta", R"({"__metadata__":{"k":1}})", 0)), Error);
  try {
    io::SafeTensorsFile(write_raw("named", R"({"weight":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})", 8));
    FAIL("no error");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find("named") != std::string::npos);   // the file
    CHECK(m.find("weight") != std::string::npos);  // the tensor
  }
}

TEST_CASE("parses from memory with the same checks", "[io][safetensors]") {
  const std::string header = R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})";
  const size_t n = 8 + header.size() + 4;
  auto buf = std::shared_ptr<std::byte>(new std::byte[n](), std::default_delete<std::byte[]>());
  const uint64_t len = header.size();
  std::memcpy(buf.get(), &len, 8);
  std::memcpy(buf.get() + 8, header.data(), header.size());
  const int32_t v = 42;
  std::memcpy(buf.get() + 8 + header.size(), &v, 4);
  io::SafeTensorsFile f(io::MappedFile::from_memory("<memory>", buf, n));
  CHECK(f.get<int32_t>("a").item() == 42);
  CHECK_THROWS_AS(io::SafeTensorsFile(io::MappedFile::from_memory("<memory>", buf, n - 1)), Error);
}
