// gzip: round trips at every level, multi-member streams and padding as gzip -d reads them, the
// decompression-bomb cap, and clean errors on truncated or corrupt streams.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ctmllm/io/gzip.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::message_of;
using testing::scratch_dir;

namespace {
// Compressible but not trivial: runs of random lengths over a few byte values.
std::vector<std::byte> sample_bytes(size_t n, uint64_t seed) {
  std::vector<std::byte> v(n);
  uint64_t s = seed;
  for (size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = std::byte((s >> 60) < 12 ? (i / 97) & 7 : (s >> 33) & 0xff);
  }
  return v;
}

std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("gzip round trip at every level and for empty input", "[io][gzip]") {
  const auto data = sample_bytes(300000, 1);
  for (int level = -1; level <= 9; ++level) {
    const auto packed = io::gzip_compress(data, level);
    CHECK(io::is_gzip(packed));
    if (level != 0) CHECK(packed.size() < data.size());
    CHECK(io::gunzip(packed, "mem") == data);
  }
  const auto empty = io::gzip_compress({}, 6);
  CHECK(io::gunzip(empty, "empty").empty());
  CHECK_THROWS_AS(io::gzip_compress(data, 10), Error);
  CHECK_THROWS_AS(io::gzip_compress(data, -2), Error);
}

TEST_CASE("gzip members concatenate, zero padding is ignored, other trailing bytes are an error", "[io][gzip]") {
  const auto a = sample_bytes(5000, 2), b = sample_bytes(7000, 3);
  const auto two = concat(io::gzip_compress(a), io::gzip_compress(b));
  CHECK(io::gunzip(two, "two") == concat(a, b));
  CHECK(io::gunzip(concat(two, std::vector<std::byte>(512)), "padded") == concat(a, b));
  const auto gap = concat(concat(io::gzip_compress(a), std::vector<std::byte>(3)), io::gzip_compress(b));
  CHECK(io::gunzip(gap, "gap") == concat(a, b));
  const std::vector<std::byte> junk = {std::byte{'x'}, std::byte{'y'}, std::byte{'z'}};
  const std::string m = message_of([&] { io::gunzip(concat(two, junk), "junk.gz"); });
  CHECK(m.find("junk.gz") != std::string::npos);
}

TEST_CASE("gzip errors: truncated, corrupt data, bad CRC, decompression bomb", "[io][gzip][errors]") {
  const auto data = sample_bytes(100000, 4);
  const auto packed = io::gzip_compress(data);
  for (size_t keep : {size_t(0), size_t(1), size_t(10), packed.size() / 2, packed.size() - 4, packed.size() - 1}) {
    const std::string m = message_of([&] { io::gunzip(std::span(packed).first(keep), "cut.gz"); });
    INFO("kept " << keep << " bytes: " << m);
    CHECK(m.find("cut.gz") != std::string::npos);
  }
  {
    auto bad = packed;
    bad[bad.size() - 6] ^= std::byte{0xff};  // inside the CRC32 trailer
    CHECK(message_of([&] { io::gunzip(bad, "crc.gz"); }).find("crc.gz: corrupt") != std::string::npos);
  }
  {
    auto bad = packed;
    bad[2] = std::byte{9};  // compression method other than deflate
    CHECK(message_of([&] { io::gunzip(bad, "method.gz"); }).find("method.gz") != std::string::npos);
  }
  {
    // Flipping bytes through the deflate data must never crash; most flips are caught by zlib or the CRC.
    int caught = 0;
    for (size_t i = 10; i + 8 < packed.size(); i += packed.size() / 50) {
      auto bad = packed;
      bad[i] ^= std::byte{0x5a};
      try {
        io::gunzip(bad, "flip.gz");
      } catch (const Error&) {
        ++caught;
      }
    }
    CHECK(caught > 0);
  }
  const auto zeros = io::gzip_compress(std::vector<std::byte>(1 << 20), 9);
  CHECK(zeros.size() < 2000);
  CHECK(io::gunzip(zeros, "exact", 1 << 20).size() == size_t(1) << 20);
  const std::string m = message_of([&] { io::gunzip(zeros, "bomb.gz", (1 << 20) - 1); });
  CHECK(m.find("bomb.gz") != std::string::npos);
  CHECK(m.find("limit") != std::string::npos);
}

TEST_CASE("files: plain ones stay mapped, gzip ones are inflated, writes land whole", "[io][gzip]") {
  const auto data = sample_bytes(40000, 5);
  const std::string plain = scratch_dir("plain.bin"), packed = scratch_dir("packed.bin.gz");
  io::write_maybe_gzipped(plain, data, false);
  io::write_maybe_gzipped(packed, data, true, 9);
  const io::FileBytes p = io::read_maybe_gzipped(plain), g = io::read_maybe_gzipped(packed);
  CHECK(!p.gzipped());
  CHECK(g.gzipped());
  CHECK(std::vector<std::byte>(p.bytes().begin(), p.bytes().end()) == data);
  CHECK(std::vector<std::byte>(g.bytes().begin(), g.bytes().end()) == data);
  CHECK(g.name() == packed);
  const io::FileBytes copy = g;  // copies share the inflated bytes
  CHECK(copy.bytes().data() == g.bytes().data());
  CHECK_THROWS_AS(io::read_maybe_gzipped(packed, 1000), Error);
  CHECK_THROWS_AS(io::read_maybe_gzipped(scratch_dir("missing.gz")), Error);
  CHECK_THROWS_AS(io::write_maybe_gzipped("/nonexistent-dir/x.gz", data, true), Error);

  const io::FileBytes m = io::load_maybe_gzipped(data, "buffer");
  CHECK(!m.gzipped());
  CHECK(m.bytes().size() == data.size());
  CHECK(m.bytes().data() != data.data());  // plain bytes are copied

  // A file gzip-compressed by Python (nibabel's writer): the NIfTI-1 header and data of head_ct.
  const io::FileBytes ct = io::read_maybe_gzipped(testing::data_path("head_ct.nii.gz"));
  CHECK(ct.gzipped());
  CHECK(ct.bytes().size() == 352 + size_t(256) * 256 * 108 * 2);
  int32_t sizeof_hdr;
  std::memcpy(&sizeof_hdr, ct.bytes().data(), 4);
  CHECK(sizeof_hdr == 348);
  std::remove(plain.c_str());
  std::remove(packed.c_str());
}
