#pragma once
// gzip through zlib's inflate/deflate: whole buffers in memory, which is how volumes are read (a CT
// is tens to hundreds of MB inflated), and a file reader that maps plain files and inflates gzip ones.
//
// Reading follows gzip -d and Python's gzip module (what nibabel uses): concatenated members are
// one stream, zero bytes after the last member are padding, anything else after it must be another
// member. Every CRC and length trailer is checked by zlib. A cap on the inflated size guards against
// decompression bombs (a few KB of gzip can claim terabytes).
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/io/mapped_file.hpp"

namespace ctmllm::io {

inline constexpr uint64_t kDefaultMaxInflatedBytes = uint64_t(4) << 30;  // 4 GiB

inline bool is_gzip(std::span<const std::byte> bytes) {
  return bytes.size() >= 2 && bytes[0] == std::byte{0x1f} && bytes[1] == std::byte{0x8b};
}

// Inflates all gzip members of `in` (zero bytes between members are skipped, as Python does);
// `name` (a path, or what the bytes are) appears in every error.
inline std::vector<std::byte> gunzip(std::span<const std::byte> in, const std::string& name,
                                     uint64_t max_bytes = kDefaultMaxInflatedBytes) {
  z_stream zs{};
  CTMLLM_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, name, ": zlib inflateInit2 failed");
  struct End {
    z_stream* s;
    ~End() { inflateEnd(s); }
  } end{&zs};

  // One byte past the cap tells "exactly max_bytes" apart from "more than max_bytes".
  const uint64_t capacity = max_bytes == UINT64_MAX ? max_bytes : max_bytes + 1;
  // The trailer's ISIZE (inflated size mod 2^32 of the last member) sizes the buffer for the usual
  // one-member file; deflate cannot expand more than ~1032:1, which bounds a lying trailer.
  uint64_t guess = 64 << 10;
  if (in.size() >= 18) {
    const auto* t = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
    const uint64_t isize = uint64_t(t[0]) | uint64_t(t[1]) << 8 | uint64_t(t[2]) << 16 | uint64_t(t[3]) << 24;
    guess = std::max(guess, std::min<uint64_t>(isize + 1, uint64_t(in.size()) * 1032));
  }
  std::vector<std::byte> out(size_t(std::min(guess, capacity)));
  size_t in_pos = 0, out_len = 0;
  auto check_cap = [&] {
    CTMLLM_CHECK(out_len <= max_bytes, name, ": gzip data inflates past the limit of ", max_bytes,
                 " bytes (a corrupt file or a decompression bomb)");
  };
  for (;;) {
    check_cap();
    if (out_len == out.size()) out.resize(size_t(std::min<uint64_t>(uint64_t(out.size()) * 2, capacity)));
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data() + in_pos));
    zs.avail_in = uInt(std::min<size_t>(in.size() - in_pos, UINT_MAX));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_len);
    zs.avail_out = uInt(std::min<size_t>(out.size() - out_len, UINT_MAX));
    const uInt avail_in = zs.avail_in, avail_out = zs.avail_out;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    in_pos += avail_in - zs.avail_in;
    out_len += avail_out - zs.avail_out;
    if (rc == Z_STREAM_END) {
      size_t next = in_pos;
      while (next < in.size() && in[next] == std::byte{0}) ++next;
      if (next == in.size()) {
        check_cap();
        break;
      }
      in_pos = next;
      CTMLLM_CHECK(inflateReset(&zs) == Z_OK, name, ": zlib inflateReset failed");
      continue;
    }
    if (rc == Z_OK || (rc == Z_BUF_ERROR && zs.avail_out == 0)) continue;
    CTMLLM_CHECK(rc != Z_BUF_ERROR, name, ": truncated gzip stream (input ends after ", in.size(), " bytes, ", out_len,
                 " bytes inflated)");
    fail(name, ": corrupt gzip stream at input byte ", in_pos, " (", zs.msg ? zs.msg : zError(rc), ")");
  }
  out.resize(out_len);
  return out;
}

// One gzip member holding `in`; level -1 (zlib's default, 6) or 0 (stored) .. 9 (smallest).
inline std::vector<std::byte> gzip_compress(std::span<const std::byte> in, int level = Z_DEFAULT_COMPRESSION) {
  CTMLLM_CHECK(level >= -1 && level <= 9, "gzip_compress: level ", level, " is outside -1..9");
  z_stream zs{};
  CTMLLM_CHECK(deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK,
               "gzip_compress: zlib deflateInit2 failed");
  struct End {
    z_stream* s;
    ~End() { deflateEnd(s); }
  } end{&zs};
  std::vector<std::byte> out(size_t(deflateBound(&zs, uLong(in.size()))));
  size_t in_pos = 0, out_len = 0;
  for (;;) {
    if (out_len == out.size()) out.resize(out.size() * 2);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data() + in_pos));
    zs.avail_in = uInt(std::min<size_t>(in.size() - in_pos, UINT_MAX));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_len);
    zs.avail_out = uInt(std::min<size_t>(out.size() - out_len, UINT_MAX));
    const uInt avail_in = zs.avail_in, avail_out = zs.avail_out;
    const bool last = in_pos + avail_in == in.size();
    const int rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
    in_pos += avail_in - zs.avail_in;
    out_len += avail_out - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    CTMLLM_CHECK(rc == Z_OK || rc == Z_BUF_ERROR, "gzip_compress: deflate failed (", zError(rc), ")");
  }
  out.resize(out_len);
  return out;
}

// The bytes of a file or buffer, gzip already undone: a plain file stays memory-mapped (no copy), a
// gzip one is inflated into memory. Copies share the bytes.
class FileBytes {
 public:
  FileBytes(std::string name, MappedFile mapped) : name_(std::move(name)), mapped_(std::move(mapped)) {}
  FileBytes(std::string name, std::vector<std::byte> owned, bool gzipped)
      : name_(std::move(name)), owned_(std::make_shared<const std::vector<std::byte>>(std::move(owned))),
        gzipped_(gzipped) {}

  const std::string& name() const { return name_; }
  bool gzipped() const { return gzipped_; }
  std::span<const std::byte> bytes() const { return mapped_ ? mapped_->bytes() : std::span<const std::byte>(*owned_); }

 private:
  std::string name_;
  std::optional<MappedFile> mapped_;
  std::shared_ptr<const std::vector<std::byte>> owned_;
  bool gzipped_ = false;
};

// Whole file, inflated when it starts with the gzip magic (the content decides, not the name).
inline FileBytes read_maybe_gzipped(const std::string& path, uint64_t max_inflated_bytes = kDefaultMaxInflatedBytes) {
  MappedFile file(path);
  if (!is_gzip(file.bytes())) return FileBytes(path, std::move(file));
  return FileBytes(path, gunzip(file.bytes(), path, max_inflated_bytes), true);
}

// The same for bytes already in memory (a network buffer, a fuzzer's input); plain bytes are copied.
inline FileBytes load_maybe_gzipped(std::span<const std::byte> bytes, const std::string& name,
                                    uint64_t max_inflated_bytes = kDefaultMaxInflatedBytes) {
  if (!is_gzip(bytes)) return FileBytes(name, std::vector<std::byte>(bytes.begin(), bytes.end()), false);
  return FileBytes(name, gunzip(bytes, name, max_inflated_bytes), true);
}

// Writes `bytes` (gzip-compressed at `gzip_level` when `compress`) through a temporary file renamed
// into place, so no reader ever sees half a file.
inline void write_maybe_gzipped(const std::string& path, std::span<const std::byte> bytes, bool compress,
                                int gzip_level = Z_DEFAULT_COMPRESSION) {
  std::vector<std::byte> packed;
  if (compress) {
    packed = gzip_compress(bytes, gzip_level);
    bytes = packed;
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    CTMLLM_CHECK(out.good(), path, ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    out.flush();
    if (!out.good()) {
      out.close();
      std::remove(tmp.c_str());
      fail(path, ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": cannot rename the temporary file into place");
  }
}

}  // namespace ctmllm::io
