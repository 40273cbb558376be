#pragma once
// A read-only ZIP reader over a MappedFile, enough for the archives torch.save writes (and any other
// single-disk, unencrypted archive): end-of-central-directory and ZIP64 records, the central
// directory, local headers, STORED entries as zero-copy spans and DEFLATE entries inflated by zlib.
//
// Sizes and offsets come from the central directory (torch writes zeros in the local headers and a
// data descriptor after the data). Every offset and size is checked against the file before use.
// STORED entries are not CRC-checked: they are used in place (multi-GB weights, mmap'd), and a bad
// byte in them cannot make a reader misbehave. Inflated entries are CRC-checked.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/io/mapped_file.hpp"

namespace ctmllm::io {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 STORED, 8 DEFLATE
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;         // uncompressed
  uint64_t data_offset = 0;  // first byte of the (compressed) data in the file
};

// The bytes of one entry: a view into the mapping (STORED) or a freshly inflated buffer (DEFLATE).
// `owner` keeps either alive.
struct ZipData {
  std::shared_ptr<std::byte> owner;
  size_t size = 0;
  const std::byte* data() const { return owner.get(); }
  std::span<const std::byte> bytes() const { return {owner.get(), size}; }
};

class ZipArchive {
 public:
  static constexpr uint16_t kStored = 0, kDeflate = 8;

  explicit ZipArchive(const std::string& path) : ZipArchive(MappedFile(path)) {}
  explicit ZipArchive(MappedFile file) : file_(std::move(file)) { parse(); }

  const std::string& path() const { return file_.path(); }
  // In central-directory order.
  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr when absent.
  const ZipEntry* find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  const ZipEntry& entry(const std::string& name) const {
    const ZipEntry* e = find(name);
    CTMLLM_CHECK(e, path(), ": no archive member '", name, "'");
    return *e;
  }

  ZipData read(const ZipEntry& e) const {
    const std::byte* src = file_.data() + e.data_offset;
    if (e.method == kStored) return {file_.share(src), size_t(e.size)};
    return inflate_entry(e, src);
  }
  ZipData read(const std::string& name) const { return read(entry(name)); }

 private:
  static uint16_t u16(const std::byte* p) { return uint16_t(uint16_t(p[0]) | uint16_t(p[1]) << 8); }
  static uint32_t u32(const std::byte* p) { return uint32_t(u16(p)) | uint32_t(u16(p + 2)) << 16; }
  static uint64_t u64(const std::byte* p) { return uint64_t(u32(p)) | uint64_t(u32(p + 4)) << 32; }

  // The `n` bytes at `off`, or an Error naming `what` when they run past the end of the file.
  const std::byte* at(uint64_t off, uint64_t n, const char* what) const {
    CTMLLM_CHECK(off <= file_.size() && n <= file_.size() - off, path(), ": ", what, " at byte ", off, " (", n,
                 " bytes) runs past the end of the file (", file_.size(), " bytes)");
    return file_.data() + off;
  }

  void parse() {
    const uint64_t size = file_.size();
    CTMLLM_CHECK(size >= 22, path(), ": not a zip archive (", size, " bytes, too small for an end-of-central-directory record)");
    // The end-of-central-directory record: 22 bytes plus a comment of up to 65535, so search back.
    uint64_t eocd = 0;
    bool found = false;
    const uint64_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (uint64_t p = size - 22;; --p) {
      const std::byte* q = file_.data() + p;
      if (u32(q) == 0x06054b50u && p + 22 + u16(q + 20) == size) {
        eocd = p;
        found = true;
        break;
      }
      if (p == lowest) break;
    }
    CTMLLM_CHECK(found, path(), ": not a zip archive (no end-of-central-directory record)");
    const std::byte* e = file_.data() + eocd;
    CTMLLM_CHECK(u16(e + 4) == 0 && u16(e + 6) == 0, path(), ": multi-disk zip archives are not supported");
    uint64_t count = u16(e + 10), cd_size = u32(e + 12), cd_offset = u32(e + 16);
    // A ZIP64 locator sits right before the record; torch always writes one.
    if (eocd >= 20 && u32(file_.data() + eocd - 20) == 0x07064b50u) {
      const std::byte* loc = file_.data() + eocd - 20;
      CTMLLM_CHECK(u32(loc + 4) == 0 && u32(loc + 16) <= 1, path(), ": multi-disk zip64 archives are not supported");
      const uint64_t rec = u64(loc + 8);
      CTMLLM_CHECK(rec <= eocd - 20, path(), ": zip64 end-of-central-directory offset ", rec, " is out of place");
      const std::byte* z = at(rec, 56, "zip64 end-of-central-directory record");
      CTMLLM_CHECK(u32(z) == 0x06064b50u, path(), ": bad zip64 end-of-central-directory signature at byte ", rec);
      CTMLLM_CHECK(u32(z + 16) == 0 && u32(z + 20) == 0, path(), ": multi-disk zip64 archives are not supported");
      count = u64(z + 32);
      cd_size = u64(z + 40);
      cd_offset = u64(z + 48);
    }
    const std::byte* cd = at(cd_offset, cd_size, "central directory");
    // Every central-directory header takes at least 46 bytes: a cheap bound before reserving.
    CTMLLM_CHECK(count <= cd_size / 46, path(), ": central directory claims ", count, " entries in ", cd_size, " bytes");
    entries_.reserve(size_t(count));
    uint64_t pos = 0;
    for (uint64_t i = 0; i < count; ++i) {
      CTMLLM_CHECK(cd_size - pos >= 46, path(), ": central directory entry ", i, " is truncated");
      const std::byte* h = cd + pos;
      CTMLLM_CHECK(u32(h) == 0x02014b50u, path(), ": bad central directory signature for entry ", i);
      const uint16_t flags = u16(h + 8);
      ZipEntry ent;
      ent.method = u16(h + 10);
      ent.crc32 = u32(h + 16);
      ent.compressed_size = u32(h + 20);
      ent.size = u32(h + 24);
      const uint64_t name_len = u16(h + 28), extra_len = u16(h + 30), comment_len = u16(h + 32);
      uint64_t disk = u16(h + 34), local = u32(h + 42);
      const uint64_t total = 46 + name_len + extra_len + comment_len;
      CTMLLM_CHECK(cd_size - pos >= total, path(), ": central directory entry ", i, " is truncated");
      ent.name.assign(reinterpret_cast<const char*>(h + 46), size_t(name_len));
      read_zip64_extra(h + 46 + name_len, extra_len, ent, local, disk);
      CTMLLM_CHECK(disk == 0, path(), ": member '", ent.name, "' lies on another disk");
      CTMLLM_CHECK((flags & 1u) == 0, path(), ": member '", ent.name, "' is encrypted");
      CTMLLM_CHECK(ent.method == kStored || ent.method == kDeflate, path(), ": member '", ent.name,
                   "' uses compression method ", ent.method, " (only STORED and DEFLATE are supported)");
      CTMLLM_CHECK(ent.method != kStored || ent.compressed_size == ent.size, path(), ": stored member '", ent.name,
                   "' has compressed size ", ent.compressed_size, " != size ", ent.size);
      // The local header repeats the name; its extra field (torch pads it for alignment) may differ.
      const std::byte* lh = at(local, 30, "local header");
      CTMLLM_CHECK(u32(lh) == 0x04034b50u, path(), ": bad local header signature for member '", ent.name, "'");
      const uint64_t lname = u16(lh + 26), lextra = u16(lh + 28);
      const std::byte* ln = at(local + 30, lname, "local header name");
      CTMLLM_CHECK(lname == name_len && std::memcmp(ln, h + 46, size_t(name_len)) == 0, path(), ": local header of member '",
                   ent.name, "' names a different member");
      ent.data_offset = local + 30 + lname + lextra;
      at(ent.data_offset, ent.compressed_size, "member data");
      CTMLLM_CHECK(index_.emplace(ent.name, entries_.size()).second, path(), ": member '", ent.name, "' appears twice");
      entries_.push_back(std::move(ent));
      pos += total;
    }
  }

  // ZIP64 extended information (id 0x0001): 64-bit values for the fields saturated in the header, in
  // the fixed order size, compressed size, local header offset, disk.
  void read_zip64_extra(const std::byte* p, uint64_t len, ZipEntry& ent, uint64_t& local, uint64_t& disk) const {
    const bool need_size = ent.size == 0xffffffffu, need_csize = ent.compressed_size == 0xffffffffu,
               need_local = local == 0xffffffffu, need_disk = disk == 0xffffu;
    uint64_t q = 0;
    while (len - q >= 4) {
      const uint16_t id = u16(p + q), n = u16(p + q + 2);
      CTMLLM_CHECK(n <= len - q - 4, path(), ": extra field of member '", ent.name, "' is truncated");
      if (id == 0x0001) {
        const std::byte* f = p + q + 4;
        uint64_t left = n;
        auto take = [&](bool need, uint64_t& v, uint64_t bytes) {
          if (!need) return;
          CTMLLM_CHECK(left >= bytes, path(), ": zip64 extra field of member '", ent.name, "' is too short");
          v = bytes == 8 ? u64(f) : u32(f);
          f += bytes;
          left -= bytes;
        };
        take(need_size, ent.size, 8);
        take(need_csize, ent.compressed_size, 8);
        take(need_local, local, 8);
        take(need_disk, disk, 4);
        return;
      }
      q += 4 + n;
    }
    CTMLLM_CHECK(!(need_size || need_csize || need_local || need_disk), path(), ": member '", ent.name,
                 "' needs a zip64 extra field but has none");
  }

  ZipData inflate_entry(const ZipEntry& e, const std::byte* src) const {
    // DEFLATE cannot expand data more than 1032:1; a larger claim is a corrupt or hostile header.
    CTMLLM_CHECK(e.size / 1032 <= e.compressed_size, path(), ": member '", e.name, "' claims ", e.size,
                 " bytes from ", e.compressed_size, " compressed bytes");
    CTMLLM_CHECK(e.size <= std::numeric_limits<uInt>::max() && e.compressed_size <= std::numeric_limits<uInt>::max(),
                 path(), ": compressed member '", e.name, "' is too large (", e.size, " bytes)");
    std::shared_ptr<std::byte> buf(new std::byte[e.size ? size_t(e.size) : 1], std::default_delete<std::byte[]>());
    z_stream zs{};
    CTMLLM_CHECK(inflateInit2(&zs, -MAX_WBITS) == Z_OK, path(), ": zlib inflateInit2 failed");
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(src));
    zs.avail_in = uInt(e.compressed_size);
    zs.next_out = reinterpret_cast<Bytef*>(buf.get());
    zs.avail_out = uInt(e.size);
    const int rc = inflate(&zs, Z_FINISH);
    const uint64_t produced = zs.total_out;
    inflateEnd(&zs);
    CTMLLM_CHECK(rc == Z_STREAM_END && produced == e.size, path(), ": member '", e.name,
                 "' does not inflate to its recorded size ", e.size, " (corrupt DEFLATE data)");
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(buf.get()), uInt(e.size));
    CTMLLM_CHECK(crc == e.crc32, path(), ": member '", e.name, "' fails its CRC-32 check");
    return {std::move(buf), size_t(e.size)};
  }

  MappedFile file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace ctmllm::io
