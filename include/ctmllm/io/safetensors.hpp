#pragma once
// safetensors: read through mmap (zero-copy when the stored dtype is the requested one and the data
// is aligned), convert other dtypes on load, and write with metadata.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
// then the data section; offsets are relative to its start.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/tensor.hpp"
#include "ctmllm/io/mapped_file.hpp"

namespace ctmllm::io {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

inline const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}
inline bool parse_safetensors_dtype(const std::string& s, DType& out) {
  static const std::unordered_map<std::string, DType> table = {
      {"F64", DType::F64}, {"F32", DType::F32}, {"BF16", DType::BF16}, {"F16", DType::F16}, {"I64", DType::I64},
      {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},     {"U8", DType::U8},   {"BOOL", DType::Bool}};
  auto it = table.find(s);
  if (it == table.end()) return false;
  out = it->second;
  return true;
}

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

namespace detail {
// Converts `n` elements stored as `from` into T.
template <class T>
void convert_elements(const std::byte* src, DType from, T* dst, int64_t n) {
  auto run = [&](auto tag) {
    using S = decltype(tag);
    for (int64_t i = 0; i < n; ++i) {
      S v;
      std::memcpy(&v, src + i * sizeof(S), sizeof(S));
      dst[i] = cast<T>(v);
    }
  };
  switch (from) {
    case DType::F64: run(double{}); break;
    case DType::F32: run(float{}); break;
    case DType::BF16: run(bf16{}); break;
    case DType::F16: run(half{}); break;
    case DType::I64: run(int64_t{}); break;
    case DType::I32: run(int32_t{}); break;
    case DType::I16: run(int16_t{}); break;
    case DType::I8: run(int8_t{}); break;
    case DType::U8: run(uint8_t{}); break;
    case DType::Bool:
      for (int64_t i = 0; i < n; ++i) dst[i] = cast<T>(uint8_t(src[i] != std::byte{0}));
      break;
  }
}
inline bool is_float_dtype(DType t) { return t == DType::F64 || t == DType::F32 || t == DType::BF16 || t == DType::F16; }
}  // namespace detail

class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::string& path) : file_(path) { parse(); }
  explicit SafeTensorsFile(MappedFile bytes) : file_(std::move(bytes)) { parse(); }

  const std::string& path() const { return file_.path(); }
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo& info(const std::string& name) const {
    auto it = infos_.find(name);
    CTMLLM_CHECK(it != infos_.end(), path(), ": no tensor named '", name, "'");
    return it->second;
  }
  std::span<const std::byte> raw(const std::string& name) const {
    const TensorInfo& ti = info(name);
    return {data_ + ti.begin, size_t(ti.end - ti.begin)};
  }

  // The tensor as T: a view into the mapping when stored as T and aligned, a converted copy
  // otherwise. Converting floats to integers is refused (it would silently truncate).
  template <class T>
  Tensor<T, Cpu> get(const std::string& name) const {
    const TensorInfo& ti = info(name);
    const std::byte* p = data_ + ti.begin;
    if (ti.dtype == dtype_v<T> && reinterpret_cast<uintptr_t>(p) % alignof(T) == 0)
      return Tensor<T, Cpu>::wrap(file_.share(p), reinterpret_cast<T*>(const_cast<std::byte*>(p)), ti.shape);
    CTMLLM_CHECK(is_floating_v<T> || !detail::is_float_dtype(ti.dtype), path(), ": tensor '", name, "' is ",
                 dtype_name(ti.dtype), " and cannot be loaded as ", dtype_name(dtype_v<T>));
    Tensor<T, Cpu> out = Tensor<T, Cpu>::empty(ti.shape);
    detail::convert_elements(p, ti.dtype, out.data(), ti.shape.numel());
    return out;
  }

 private:
  void parse() {
    const std::string& f = path();
    CTMLLM_CHECK(file_.size() >= 8, f, ": truncated safetensors file (", file_.size(), " bytes, no header length)");
    uint64_t n = 0;
    std::memcpy(&n, file_.data(), 8);
    CTMLLM_CHECK(n <= file_.size() - 8, f, ": header length ", n, " runs past the end of the file (", file_.size(),
                 " bytes)");
    CTMLLM_CHECK(n <= (uint64_t(100) << 20), f, ": header length ", n, " exceeds the 100 MB limit");
    const char* h = reinterpret_cast<const char*>(file_.data()) + 8;
    nlohmann::json j = nlohmann::json::parse(h, h + n, nullptr, /*allow_exceptions=*/false);
    CTMLLM_CHECK(!j.is_discarded() && j.is_object(), f, ": header is not a valid JSON object");
    data_ = file_.data() + 8 + n;
    const uint64_t data_size = file_.size() - 8 - n;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      const auto& v = it.value();
      if (key == "__metadata__") {
        CTMLLM_CHECK(v.is_object(), f, ": __metadata__ must be an object of strings");
        for (auto m = v.begin(); m != v.end(); ++m) {
          CTMLLM_CHECK(m.value().is_string(), f, ": __metadata__ value '", m.key(), "' is not a string");
          metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      CTMLLM_CHECK(v.is_object(), f, ": entry '", key, "' is not an object");
      TensorInfo ti;
      ti.name = key;
      CTMLLM_CHECK(v.contains("dtype") && v["dtype"].is_string(), f, ": tensor '", key, "' has no dtype string");
      CTMLLM_CHECK(parse_safetensors_dtype(v["dtype"].get<std::string>(), ti.dtype), f, ": tensor '", key,
                   "' has unknown dtype '", v["dtype"].get<std::string>(), "'");
      CTMLLM_CHECK(v.contains("shape") && v["shape"].is_array(), f, ": tensor '", key, "' has no shape array");
      CTMLLM_CHECK(v["shape"].size() <= size_t(kMaxRank), f, ": tensor '", key, "' has rank ", v["shape"].size(),
                   " (at most ", kMaxRank, " supported)");
      uint64_t numel = 1;
      for (const auto& d : v["shape"]) {
        CTMLLM_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), f, ": tensor '", key,
                     "' has an invalid shape entry");
        const uint64_t e = d.get<uint64_t>();
        CTMLLM_CHECK(e == 0 || numel <= (uint64_t(1) << 62) / e, f, ": tensor '", key, "' shape overflows");
        numel *= e;
        ti.shape.push_back(int64_t(e));
      }
      const auto& off = v.contains("data_offsets") ? v["data_offsets"] : nlohmann::json();
      CTMLLM_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(), f,
                   ": tensor '", key, "' has no valid data_offsets [begin, end]");
      ti.begin = off[0].get<uint64_t>();
      ti.end = off[1].get<uint64_t>();
      CTMLLM_CHECK(ti.begin <= ti.end && ti.end <= data_size, f, ": tensor '", key, "' data_offsets [", ti.begin, ", ",
                   ti.end, "] lie outside the data section (", data_size, " bytes)");
      CTMLLM_CHECK(ti.end - ti.begin == numel * dtype_size(ti.dtype), f, ": tensor '", key, "' shape ", ti.shape, " ",
                   dtype_name(ti.dtype), " needs ", numel * dtype_size(ti.dtype), " bytes but data_offsets span ",
                   ti.end - ti.begin);
      ranges.push_back({ti.begin, ti.end});
      names_.push_back(key);
      infos_[key] = std::move(ti);
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      CTMLLM_CHECK(ranges[i].first >= ranges[i - 1].second, f, ": tensors overlap in the data section at byte ",
                   ranges[i].first);
    std::sort(names_.begin(), names_.end());
  }

  MappedFile file_;
  const std::byte* data_ = nullptr;
  std::vector<std::string> names_;
  std::unordered_map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors of any element type and writes one safetensors file (names sorted, data 8-byte
// aligned, written to a temporary file and renamed so a reader never sees half a file).
class SafeTensorsWriter {
 public:
  template <class T>
  void add(const std::string& name, const Tensor<T, Cpu>& t) {
    CTMLLM_CHECK(!entries_.count(name), "SafeTensorsWriter: tensor '", name, "' added twice");
    const Tensor<T, Cpu> c = t.contiguous();
    Entry e{dtype_v<T>, c.shape(), std::vector<std::byte>(size_t(c.numel()) * sizeof(T))};
    if (c.numel()) std::memcpy(e.bytes.data(), c.data(), e.bytes.size());
    entries_[name] = std::move(e);
  }
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  void write(const std::string& path) const {
    nlohmann::json h = nlohmann::json::object();
    uint64_t off = 0;
    for (const auto& [name, e] : entries_) {
      h[name] = {{"dtype", safetensors_dtype_name(e.dtype)},
                 {"shape", std::vector<int64_t>(e.shape.begin(), e.shape.end())},
                 {"data_offsets", {off, off + e.bytes.size()}}};
      off += e.bytes.size();
    }
    if (!metadata_.empty()) h["__metadata__"] = metadata_;
    std::string header = h.dump();
    header.append((8 - header.size() % 8) % 8, ' ');
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      CTMLLM_CHECK(out.good(), path, ": cannot open for writing");
      const uint64_t n = header.size();
      out.write(reinterpret_cast<const char*>(&n), 8);
      out.write(header.data(), std::streamsize(header.size()));
      for (const auto& [name, e] : entries_) out.write(reinterpret_cast<const char*>(e.bytes.data()), std::streamsize(e.bytes.size()));
      CTMLLM_CHECK(out.good(), path, ": write failed");
    }
    CTMLLM_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename the temporary file into place");
  }

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    std::vector<std::byte> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace ctmllm::io
