#pragma once
// PyTorch checkpoints (.bin / .pth / .pt) in the zip format torch.save writes since 1.6:
//   <prefix>/data.pkl     the pickled object (a state dict: name -> tensor)
//   <prefix>/data/<key>   one raw little-endian storage per key
//   <prefix>/byteorder    "little" (absent in old files, which are little-endian)
// The pickle goes through the restricted unpickler (nothing is executed). A tensor is a strided
// view (storage offset, size, stride) of a storage; contiguous views whose dtype is the one asked
// for come back zero-copy from the mapping, others are gathered or converted into a new tensor.
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ctmllm/core/tensor.hpp"
#include "ctmllm/io/pickle.hpp"
#include "ctmllm/io/safetensors.hpp"
#include "ctmllm/io/zip.hpp"

namespace ctmllm::io {

struct TorchTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  Shape strides;           // in elements
  int64_t offset = 0;      // storage offset, in elements
  std::string storage;     // storage key: the archive member <prefix>/data/<key>
};

class TorchCheckpoint {
 public:
  explicit TorchCheckpoint(const std::string& path) : TorchCheckpoint(MappedFile(path)) {}
  // Any bytes behind a MappedFile (MappedFile::from_memory for a buffer or a fuzzer input).
  explicit TorchCheckpoint(MappedFile file) : zip_(open_zip(std::move(file))) { load(); }

  const std::string& path() const { return zip_.path(); }
  // In the order of the pickled dict (a state dict's module order).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TorchTensorInfo& info(const std::string& name) const {
    auto it = infos_.find(name);
    CTMLLM_CHECK(it != infos_.end(), path(), ": no tensor named '", name, "'");
    return it->second;
  }

  // The tensor as T: a view into the mapping when it is contiguous in its storage, stored as T and
  // aligned; a gathered or converted copy otherwise. Floats are never converted to integers.
  template <class T>
  Tensor<T, Cpu> get(const std::string& name) const {
    const TorchTensorInfo& ti = info(name);
    const Storage& st = storages_.at(ti.storage);
    CTMLLM_CHECK(is_floating_v<T> || !detail::is_float_dtype(ti.dtype), path(), ": tensor '", name, "' is ",
                 dtype_name(ti.dtype), " and cannot be loaded as ", dtype_name(dtype_v<T>));
    const size_t isz = dtype_size(ti.dtype);
    const std::byte* base = st.data.data();
    const bool dense = contiguous(ti.shape, ti.strides);
    const std::byte* first = base + size_t(ti.offset) * isz;
    if (dense && ti.shape.numel() > 0 && ti.dtype == dtype_v<T> && reinterpret_cast<uintptr_t>(first) % alignof(T) == 0)
      return Tensor<T, Cpu>::wrap(std::shared_ptr<std::byte>(st.data.owner, const_cast<std::byte*>(first)),
                                  reinterpret_cast<T*>(const_cast<std::byte*>(first)), ti.shape);
    Tensor<T, Cpu> out = Tensor<T, Cpu>::empty(ti.shape);
    if (ti.shape.numel() == 0) return out;
    if (dense) {
      detail::convert_elements(first, ti.dtype, out.data(), ti.shape.numel());
      return out;
    }
    // Strided: walk the output in row-major order with an odometer over the source strides.
    const int rank = ti.shape.rank();
    int64_t idx[kMaxRank] = {};
    int64_t src = ti.offset;
    T* dst = out.data();
    for (int64_t i = 0, n = ti.shape.numel(); i < n; ++i) {
      detail::convert_elements(base + size_t(src) * isz, ti.dtype, dst + i, 1);
      for (int d = rank - 1; d >= 0; --d) {
        src += ti.strides[d];
        if (++idx[d] < ti.shape[d]) break;
        src -= ti.strides[d] * ti.shape[d];
        idx[d] = 0;
      }
    }
    return out;
  }

 private:
  struct Storage {
    DType dtype;
    int64_t numel;
    ZipData data;
  };

  static ZipArchive open_zip(MappedFile file) {
    // Before 1.6 (and with _use_new_zipfile_serialization=False) torch.save wrote a bare pickle
    // stream starting with a magic number; name it rather than report "not a zip archive".
    static const unsigned char legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    CTMLLM_CHECK(file.size() < sizeof legacy || std::memcmp(file.data(), legacy, sizeof legacy) != 0, file.path(),
                 ": legacy (pre-1.6) torch.save format is not supported; re-save it with a current torch.save");
    return ZipArchive(std::move(file));
  }

  static bool contiguous(const Shape& shape, const Shape& strides) {
    int64_t expect = 1;
    for (int i = shape.rank() - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }

  void load() {
    // The one top-level folder that holds data.pkl names the archive (torch uses the file stem or "archive").
    std::string& prefix = prefix_;
    for (const ZipEntry& e : zip_.entries()) {
      const size_t slash = e.name.find('/');
      if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
        CTMLLM_CHECK(prefix.empty(), path(), ": more than one data.pkl in the archive");
        prefix = e.name.substr(0, slash + 1);
      }
    }
    CTMLLM_CHECK(!prefix.empty(), path(), ": no <name>/data.pkl member: not a torch.save checkpoint");
    if (const ZipEntry* bo = zip_.find(prefix + "byteorder")) {
      const ZipData d = zip_.read(*bo);
      const std::string order(reinterpret_cast<const char*>(d.data()), d.size);
      CTMLLM_CHECK(order == "little", path(), ": byteorder '", order, "' is not supported (only little-endian)");
    }
    const ZipData pkl = zip_.read(prefix + "data.pkl");
    const pickle::Pickle p = pickle::unpickle(pkl.bytes(), path() + ": " + prefix + "data.pkl");
    CTMLLM_CHECK(p.root.kind == pickle::Kind::Dict, path(), ": the checkpoint holds a ", pickle::kind_name(p.root.kind),
                 ", not a dict of tensors");
    std::unordered_set<uint32_t> visited;
    collect(p, p.root, "", 0, visited);
  }

  // Flattens nested dicts and lists into dotted names ("model.layers.0.weight"); values that are
  // neither containers nor tensors (an epoch counter, a config string) are not tensors and are skipped.
  void collect(const pickle::Pickle& p, const pickle::Value& v, const std::string& name, int depth,
               std::unordered_set<uint32_t>& visited) {
    using pickle::Kind;
    CTMLLM_CHECK(depth <= 32, path(), ": checkpoint nested more than 32 levels deep at '", name, "'");
    auto child = [&](const std::string& key) { return name.empty() ? key : name + "." + key; };
    if (v.kind == Kind::Dict || v.kind == Kind::List || v.kind == Kind::Tuple) {
      // A container reached twice would be a cycle or a DAG whose walk could blow up exponentially.
      CTMLLM_CHECK(visited.insert(v.ref).second, path(), ": container at '", name, "' is referenced twice");
      const auto& items = p.items(v);
      if (v.kind == Kind::Dict) {
        for (size_t i = 0; i + 1 < items.size(); i += 2) {
          const pickle::Value& k = items[i];
          CTMLLM_CHECK(k.kind == Kind::String || k.kind == Kind::Int, path(), ": dict key of type ",
                       pickle::kind_name(k.kind), " under '", name, "'");
          collect(p, items[i + 1], child(k.kind == Kind::String ? p.str(k) : std::to_string(k.i)), depth + 1, visited);
        }
      } else {
        for (size_t i = 0; i < items.size(); ++i) collect(p, items[i], child(std::to_string(i)), depth + 1, visited);
      }
    } else if (v.kind == Kind::Call) {
      add_tensor(p, v, name);
    }
  }

  void add_tensor(const pickle::Pickle& p, const pickle::Value& call, const std::string& name) {
    using pickle::Kind;
    const std::string& fn = p.str(p.items(call)[0]);
    const auto& args = p.items(p.items(call)[1]);
    if (fn == "torch._utils._rebuild_parameter") {
      // (tensor, requires_grad, backward_hooks): the tensor is what matters.
      CTMLLM_CHECK(args.size() == 3 && args[0].kind == Kind::Call &&
                       p.str(p.items(args[0])[0]) == "torch._utils._rebuild_tensor_v2",
                   path(), ": malformed nn.Parameter '", name, "'");
      return add_tensor(p, args[0], name);
    }
    CTMLLM_CHECK(fn == "torch._utils._rebuild_tensor_v2", path(), ": '", name, "' is built by ", fn, ", not a tensor");
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    CTMLLM_CHECK(args.size() == 6 || args.size() == 7, path(), ": tensor '", name, "' has ", args.size(),
                 " rebuild arguments (6 or 7 expected)");
    CTMLLM_CHECK(args[0].kind == Kind::PersistentId && args[1].kind == Kind::Int && args[2].kind == Kind::Tuple &&
                     args[3].kind == Kind::Tuple,
                 path(), ": tensor '", name, "' has malformed rebuild arguments");
    TorchTensorInfo ti;
    ti.name = name;
    ti.offset = args[1].i;
    const auto& size = p.items(args[2]);
    const auto& stride = p.items(args[3]);
    CTMLLM_CHECK(size.size() == stride.size() && size.size() <= size_t(kMaxRank), path(), ": tensor '", name,
                 "' has ", size.size(), " sizes and ", stride.size(), " strides (rank at most ", kMaxRank, ")");
    // Extents and strides are non-negative and below 2^48, so the sums and products below cannot overflow.
    const int64_t limit = int64_t(1) << 48;
    int64_t numel = 1, last = ti.offset;  // `last`: the highest element index the view touches
    CTMLLM_CHECK(ti.offset >= 0 && ti.offset < limit, path(), ": tensor '", name, "' has storage offset ", ti.offset);
    for (size_t d = 0; d < size.size(); ++d) {
      CTMLLM_CHECK(size[d].kind == Kind::Int && stride[d].kind == Kind::Int && size[d].i >= 0 && size[d].i < limit &&
                       stride[d].i >= 0 && stride[d].i < limit,
                   path(), ": tensor '", name, "' has an invalid size or stride in dimension ", d);
      ti.shape.push_back(size[d].i);
      ti.strides.push_back(stride[d].i);
      CTMLLM_CHECK(size[d].i == 0 || numel <= limit / size[d].i, path(), ": tensor '", name, "' has too many elements");
      numel *= size[d].i;
      if (size[d].i > 0) last += (size[d].i - 1) * stride[d].i;
      CTMLLM_CHECK(last < limit, path(), ": tensor '", name, "' spans too many elements");
    }
    const auto& [key, st] = storage(p, p.items(args[0])[0], name);
    ti.dtype = st.dtype;
    ti.storage = key;
    CTMLLM_CHECK(numel == 0 || last < st.numel, path(), ": tensor '", name, "' (offset ", ti.offset, ", size ",
                 ti.shape, ", stride ", ti.strides, ") reaches element ", last, " of a storage of ", st.numel);
    CTMLLM_CHECK(infos_.emplace(name, std::move(ti)).second, path(), ": tensor name '", name, "' appears twice");
    names_.push_back(name);
  }

  // Resolves the persistent id ('storage', storage_type, key, location, numel), loading the
  // member on first use.
  const std::pair<const std::string, Storage>& storage(const pickle::Pickle& p, const pickle::Value& pid, const std::string& name) {
    using pickle::Kind;
    CTMLLM_CHECK(pid.kind == Kind::Tuple && p.items(pid).size() == 5, path(), ": tensor '", name,
                 "' has a malformed storage reference");
    const auto& f = p.items(pid);
    CTMLLM_CHECK(f[0].kind == Kind::String && p.str(f[0]) == "storage" && f[1].kind == Kind::Global &&
                     f[2].kind == Kind::String && f[3].kind == Kind::String && f[4].kind == Kind::Int && f[4].i >= 0,
                 path(), ": tensor '", name, "' has a malformed storage reference");
    const DType dtype = storage_dtype(p.str(f[1]), name);
    const std::string& key = p.str(f[2]);
    const int64_t numel = f[4].i;
    auto it = storages_.find(key);
    if (it != storages_.end()) {
      CTMLLM_CHECK(it->second.dtype == dtype && it->second.numel == numel, path(), ": storage '", key, "' is used as ",
                   dtype_name(it->second.dtype), "[", it->second.numel, "] and as ", dtype_name(dtype), "[", numel, "]");
      return *it;
    }
    const std::string member = prefix_ + "data/" + key;
    const ZipEntry* e = zip_.find(member);
    CTMLLM_CHECK(e, path(), ": storage of tensor '", name, "' is missing (no member '", member, "')");
    CTMLLM_CHECK(numel <= int64_t(e->size / dtype_size(dtype)) && e->size == uint64_t(numel) * dtype_size(dtype), path(),
                 ": member '", member, "' holds ", e->size, " bytes, but its storage is ", dtype_name(dtype), "[", numel, "]");
    return *storages_.emplace(key, Storage{dtype, numel, zip_.read(*e)}).first;
  }

  DType storage_dtype(const std::string& type, const std::string& name) const {
    static const std::pair<const char*, DType> table[] = {
        {"torch.FloatStorage", DType::F32}, {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
        {"torch.DoubleStorage", DType::F64}, {"torch.LongStorage", DType::I64}, {"torch.IntStorage", DType::I32},
        {"torch.ShortStorage", DType::I16},  {"torch.CharStorage", DType::I8},  {"torch.ByteStorage", DType::U8},
        {"torch.BoolStorage", DType::Bool}};
    for (const auto& [n, t] : table)
      if (type == n) return t;
    fail(path(), ": tensor '", name, "' has storage type ", type, ", which is not supported");
  }

  ZipArchive zip_;
  std::string prefix_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, TorchTensorInfo> infos_;
  std::unordered_map<std::string, Storage> storages_;
};

// An ordered name -> tensor view of a torch.save'd state dict.
inline TorchCheckpoint load_torch_state_dict(const std::string& path) { return TorchCheckpoint(path); }

}  // namespace ctmllm::io
