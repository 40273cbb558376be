#pragma once
// Tensor<T, Device>: a strided view over shared storage.
//
// A tensor is (storage, element offset, shape, strides). Views (slice, select, reshape when the
// strides allow, permute, transpose, expand, squeeze, unsqueeze) share storage and copy nothing;
// contiguous(), clone(), to<U>() and to_device<D>() allocate. Copies of a Tensor object are shallow,
// like torch.Tensor: constness protects the view, not the values.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "ctmllm/core/device.hpp"
#include "ctmllm/core/dtype.hpp"
#include "ctmllm/core/error.hpp"
#include "ctmllm/core/shape.hpp"
#include "ctmllm/core/strided.hpp"

namespace ctmllm {

namespace detail {
// One dimension of an element offset's decomposition: its stride (> 0) and the range [lo, hi] of
// its index difference.
struct OffsetDim {
  int64_t stride, lo, hi;
};
// Whether delta = Σ k_i·stride_i for some k_i in [lo_i, hi_i], i >= first, with dims sorted by
// stride (largest first) and each stride above what the dims after it reach: then only ⌊δ/s⌋ and
// ⌊δ/s⌋ + 1 can work at a dim, two branches each.
inline bool offset_reachable(int64_t delta, const std::vector<OffsetDim>& dims, size_t first) {
  if (first == dims.size()) return delta == 0;
  const OffsetDim& d = dims[first];
  const int64_t q = delta / d.stride - (delta % d.stride < 0 ? 1 : 0);
  for (const int64_t k : {q, q + 1})
    if (k >= d.lo && k <= d.hi && offset_reachable(delta - k * d.stride, dims, first + 1)) return true;
  return false;
}
}  // namespace detail

template <class T, class D = Cpu>
class Tensor {
 public:
  using value_type = T;
  using device_type = D;

  Tensor() = default;  // undefined: defined() is false

  // Allocation ------------------------------------------------------------------------------
  static Tensor empty(const Shape& shape) {
    Tensor t;
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.storage_ = D::allocate(size_t(shape.numel()) * sizeof(T));
    return t;
  }
  // All-zero bytes are 0 in every element type, so zeros are set in place on any device.
  static Tensor zeros(const Shape& shape) {
    Tensor t = empty(shape);
    D::zero(t.data(), size_t(t.numel()) * sizeof(T));
    return t;
  }
  static Tensor ones(const Shape& shape) { return full(shape, cast<T>(1)); }
  static Tensor full(const Shape& shape, T value) {
    if constexpr (std::is_same_v<D, Cpu>) {
      Tensor t = empty(shape);
      std::fill_n(t.data(), t.numel(), value);
      return t;
    } else {
      return Tensor<T, Cpu>::full(shape, value).template to_device<D>();
    }
  }
  // Copies `values` (row-major) into a new tensor of the given shape.
  static Tensor from(std::span<const T> values, const Shape& shape) {
    CTMLLM_CHECK(int64_t(values.size()) == shape.numel(), "Tensor::from: ", values.size(),
                 " values do not fill shape ", shape, " (", shape.numel(), " elements)");
    Tensor t = empty(shape);
    D::copy_from_host(t.data(), values.data(), values.size() * sizeof(T));
    return t;
  }
  static Tensor from(std::initializer_list<T> values, const Shape& shape) {
    return from(std::span<const T>(values.begin(), values.size()), shape);
  }
  // Wraps memory owned elsewhere (an mmap'd file, a caller's buffer) without copying; `owner`
  // keeps it alive for as long as any view exists.
  static Tensor wrap(std::shared_ptr<std::byte> owner, T* data, const Shape& shape) {
    Tensor t;
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.storage_ = std::shared_ptr<std::byte>(std::move(owner), reinterpret_cast<std::byte*>(data));
    return t;
  }

  // Introspection ---------------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int rank() const { return shape_.rank(); }
  int64_t size(int dim) const { return shape_[normalize_dim(dim, rank(), "Tensor::size")]; }
  int64_t stride(int dim) const { return strides_[normalize_dim(dim, rank(), "Tensor::stride")]; }
  int64_t numel() const { return shape_.numel(); }
  int64_t offset() const { return offset_; }
  static constexpr DType dtype() { return dtype_v<T>; }
  T* data() const { return reinterpret_cast<T*>(storage_.get()) + offset_; }
  bool shares_storage_with(const Tensor& o) const { return storage_ && storage_ == o.storage_; }
  // Whether this view and o (any element type) may share an element: exact for two views with the
  // same strides whose dimensions nest (each stride beyond what the smaller ones reach: the rows of a
  // KV cache's layers, interleaved columns), otherwise whether their address spans intersect. In-place
  // writes (copy_from, add_, index_copy_, convert_, rope_into_cache) read a source that overlaps
  // their destination through a copy taken first, so the result is the one of reading every source
  // element before any write.
  template <class U>
  bool memory_overlaps(const Tensor<U, D>& o) const {
    if (numel() == 0 || o.numel() == 0 || !storage_ || !o.storage()) return false;
    const auto span = [](const auto* p, const Shape& shape, const Shape& strides, size_t element) {
      int64_t lo = 0, hi = 0;  // element offsets reached below and above p
      for (int d = 0; d < shape.rank(); ++d) (strides[d] < 0 ? lo : hi) += (shape[d] - 1) * strides[d];
      const auto start = reinterpret_cast<uintptr_t>(p);
      return std::pair{start + uintptr_t(lo * int64_t(element)), start + uintptr_t((hi + 1) * int64_t(element))};
    };
    const auto [a_lo, a_hi] = span(data(), shape_, strides_, sizeof(T));
    const auto [b_lo, b_hi] = span(o.data(), o.shape(), o.strides(), sizeof(U));
    if (a_hi <= b_lo || b_hi <= a_lo) return false;
    if (!std::is_same_v<U, T> || o.strides() != strides_) return true;
    // Same strides: element a of this view and b of o coincide iff Σ (a_i − b_i)·stride_i equals
    // the distance from this view's first element to o's.
    const intptr_t bytes = intptr_t(reinterpret_cast<uintptr_t>(o.data()) - reinterpret_cast<uintptr_t>(data()));
    if (bytes % intptr_t(sizeof(T)) != 0) return true;
    std::vector<detail::OffsetDim> dims;
    for (int d = 0; d < rank(); ++d) {
      const int64_t s = strides_[d], lo = -(o.size(d) - 1), hi = shape_[d] - 1;
      if (s == 0 || (lo == 0 && hi == 0)) continue;
      dims.push_back(s > 0 ? detail::OffsetDim{s, lo, hi} : detail::OffsetDim{-s, -hi, -lo});
    }
    std::sort(dims.begin(), dims.end(), [](const auto& x, const auto& y) { return x.stride > y.stride; });
    int64_t reach = 0;  // of the dims after the current one
    for (size_t i = dims.size(); i-- > 0;) {
      if (dims[i].stride <= reach) return true;  // dims that do not nest: the spans decided
      reach += std::max(-dims[i].lo, dims[i].hi) * dims[i].stride;
    }
    return detail::offset_reachable(int64_t(bytes / intptr_t(sizeof(T))), dims, 0);
  }
  const std::shared_ptr<std::byte>& storage() const { return storage_; }

  bool is_contiguous() const {
    int64_t expect = 1;
    for (int i = rank() - 1; i >= 0; --i) {
      if (shape_[i] != 1 && strides_[i] != expect) return false;
      expect *= shape_[i];
    }
    return true;
  }

  // The distance between consecutive rows when the tensor is read as [numel / cols, cols] with
  // contiguous rows (cols its last dimension): cols when contiguous, wider for the column halves of
  // a fused projection's output, 0 for one row repeated (expanded); -1 when a row is not contiguous
  // or the rows do not step evenly.
  int64_t row_stride() const {
    if (rank() == 0) return 1;
    if (shape_[rank() - 1] > 1 && strides_[rank() - 1] != 1) return -1;
    int64_t stride = -1, rows = 1;  // the row stride, and the rows its dimensions span so far
    for (int d = rank() - 2; d >= 0; --d) {
      if (shape_[d] == 1) continue;
      if (stride < 0) stride = strides_[d];
      else if (strides_[d] != stride * rows) return -1;
      rows *= shape_[d];
    }
    return stride < 0 ? shape_[rank() - 1] : stride;
  }

  // "float32[2, 3] (cpu)": used in error messages.
  std::string describe() const {
    return detail::concat(dtype_name(dtype()), shape_.str(), " (", D::name, ")");
  }

  // Views -----------------------------------------------------------------------------------
  // Elements start, start+step, ... < stop along `dim`; negative start/stop count from the end.
  Tensor slice(int dim, int64_t start, int64_t stop, int64_t step = 1) const {
    dim = normalize_dim(dim, rank(), "Tensor::slice");
    const int64_t n = shape_[dim];
    if (start < 0) start += n;
    if (stop < 0) stop += n;
    CTMLLM_CHECK(step > 0, "Tensor::slice: step must be positive, got ", step);
    CTMLLM_CHECK(start >= 0 && start <= stop && stop <= n, "Tensor::slice: range [", start, ", ", stop,
                 ") is outside dimension ", dim, " of ", describe());
    Tensor t = *this;
    t.offset_ += start * strides_[dim];
    t.shape_[dim] = (stop - start + step - 1) / step;
    t.strides_[dim] *= step;
    return t;
  }
  // Index `index` along `dim`, removing that dimension.
  Tensor select(int dim, int64_t index) const {
    dim = normalize_dim(dim, rank(), "Tensor::select");
    if (index < 0) index += shape_[dim];
    CTMLLM_CHECK(index >= 0 && index < shape_[dim], "Tensor::select: index ", index, " out of range for dimension ",
                 dim, " of ", describe());
    Tensor t = *this;
    t.offset_ += index * strides_[dim];
    t.shape_.erase(dim);
    t.strides_.erase(dim);
    return t;
  }
  Tensor permute(std::span<const int> order) const {
    CTMLLM_CHECK(int(order.size()) == rank(), "Tensor::permute: ", order.size(), " axes given for ", describe());
    Tensor t = *this;
    bool seen[kMaxRank] = {};
    for (int i = 0; i < rank(); ++i) {
      const int d = normalize_dim(order[i], rank(), "Tensor::permute");
      CTMLLM_CHECK(!seen[d], "Tensor::permute: axis ", d, " repeated for ", describe());
      seen[d] = true;
      t.shape_[i] = shape_[d];
      t.strides_[i] = strides_[d];
    }
    return t;
  }
  Tensor permute(std::initializer_list<int> order) const { return permute(std::span<const int>(order.begin(), order.size())); }
  Tensor transpose(int a, int b) const {
    a = normalize_dim(a, rank(), "Tensor::transpose");
    b = normalize_dim(b, rank(), "Tensor::transpose");
    Tensor t = *this;
    std::swap(t.shape_[a], t.shape_[b]);
    std::swap(t.strides_[a], t.strides_[b]);
    return t;
  }
  Tensor unsqueeze(int dim) const {
    dim = normalize_dim(dim, rank() + 1, "Tensor::unsqueeze");
    Tensor t = *this;
    const int64_t st = dim < rank() ? strides_[dim] * shape_[dim] : 1;
    t.shape_.insert(dim, 1);
    t.strides_.insert(dim, st);
    return t;
  }
  Tensor squeeze(int dim) const {
    dim = normalize_dim(dim, rank(), "Tensor::squeeze");
    CTMLLM_CHECK(shape_[dim] == 1, "Tensor::squeeze: dimension ", dim, " of ", describe(), " is not 1");
    Tensor t = *this;
    t.shape_.erase(dim);
    t.strides_.erase(dim);
    return t;
  }
  // Broadcast view: size-1 dimensions (and new leading ones) repeat with stride 0; -1 keeps a size.
  Tensor expand(std::span<const int64_t> target) const {
    const int rank_out = int(target.size());
    CTMLLM_CHECK(rank_out >= rank() && rank_out <= kMaxRank, "Tensor::expand: cannot expand ", describe(), " to rank ",
                 rank_out);
    Tensor t = *this;
    t.shape_ = Shape();
    t.strides_ = Shape();
    const int lead = rank_out - rank();
    for (int i = 0; i < rank_out; ++i) {
      const int j = i - lead;
      const int64_t src = j >= 0 ? shape_[j] : 1;
      const int64_t want = target[size_t(i)] == -1 ? src : target[size_t(i)];
      CTMLLM_CHECK(j >= 0 || target[size_t(i)] != -1, "Tensor::expand: -1 not allowed for new dimension ", i);
      CTMLLM_CHECK(want >= 0 && (src == want || src == 1), "Tensor::expand: cannot expand ", describe(),
                   " to size ", want, " in dimension ", i);
      t.shape_.push_back(want);
      t.strides_.push_back(j >= 0 && src == want ? strides_[j] : 0);
    }
    return t;
  }
  Tensor expand(std::initializer_list<int64_t> target) const { return expand(std::span<const int64_t>(target.begin(), target.size())); }
  Tensor expand(const Shape& target) const { return expand(std::span<const int64_t>(target.begin(), size_t(target.rank()))); }
  // Same elements, new shape (one extent may be -1). A view when the strides allow it.
  Tensor reshape(std::span<const int64_t> dims) const {
    const Shape target = infer_shape(dims);
    Shape st;
    if (view_strides(target, st)) return restride(target, st);
    return contiguous().restride(target, contiguous_strides(target));
  }
  Tensor reshape(std::initializer_list<int64_t> dims) const { return reshape(std::span<const int64_t>(dims.begin(), dims.size())); }
  Tensor reshape(const Shape& s) const { return reshape(std::span<const int64_t>(s.begin(), size_t(s.rank()))); }
  // Like reshape, but never copies: an Error if the strides do not allow a view.
  Tensor view(std::initializer_list<int64_t> dims) const {
    const Shape target = infer_shape(std::span<const int64_t>(dims.begin(), dims.size()));
    Shape st;
    CTMLLM_CHECK(view_strides(target, st), "Tensor::view: ", describe(), " with strides ", strides_,
                 " cannot be viewed as ", target, "; use reshape (copies)");
    return restride(target, st);
  }
  // Merges dimensions [start, end] into one.
  Tensor flatten(int start = 0, int end = -1) const {
    if (rank() == 0) return reshape({1});
    start = normalize_dim(start, rank(), "Tensor::flatten");
    end = normalize_dim(end, rank(), "Tensor::flatten");
    Shape s;
    for (int i = 0; i < start; ++i) s.push_back(shape_[i]);
    int64_t m = 1;
    for (int i = start; i <= end; ++i) m *= shape_[i];
    s.push_back(m);
    for (int i = end + 1; i < rank(); ++i) s.push_back(shape_[i]);
    return reshape(s);
  }

  // Copies ----------------------------------------------------------------------------------
  Tensor contiguous() const {
    if (is_contiguous()) return *this;
    return clone();
  }
  Tensor clone() const {
    Tensor out = empty(shape_);
    out.copy_from(*this);
    return out;
  }
  // Element-wise copy from a tensor of the same shape (any strides, any element type on the CPU; a
  // source overlapping this view is read through a copy first).
  template <class U>
  void copy_from(const Tensor<U, D>& src) const {
    CTMLLM_CHECK(src.shape() == shape_, "Tensor::copy_from: source ", src.describe(), " does not match ", describe());
    if (memory_overlaps(src)) {
      if constexpr (std::is_same_v<U, T>) {
        if (src.data() == data() && src.strides() == strides_) return;  // the same view: nothing moves
      }
      copy_from(src.clone());
      return;
    }
    if constexpr (std::is_same_v<U, T>) {
      if (is_contiguous() && src.is_contiguous()) {
        D::copy_within(data(), src.data(), size_t(numel()) * sizeof(T));
        return;
      }
    }
    if constexpr (std::is_same_v<D, Cpu>) {
      T* dst = data();
      const U* s = src.data();
      for_each_strided<2>(shape_, {strides_, src.strides()}, [&](auto off, int64_t n, auto inc) {
        T* d = dst + off[0];
        const U* p = s + off[1];
        for (int64_t i = 0; i < n; ++i) d[i * inc[0]] = cast<T>(p[i * inc[1]]);
      });
    } else {
      // On a device: the device's strided copy kernel when the program holds one (any strides on
      // both sides); without it, and for converting copies, staged through the host (slow) into a
      // contiguous destination.
      if constexpr (std::is_same_v<U, T>) {
        if (D::copy_strided(data(), strides_, src.data(), src.strides(), shape_, sizeof(T))) return;
      }
      CTMLLM_CHECK(is_contiguous(), "Tensor::copy_from: strided destination ", describe(), " is not supported on ", D::name);
      Tensor<T, Cpu> host = src.template to_device<Cpu>().template to<T>();
      D::copy_from_host(data(), host.data(), size_t(numel()) * sizeof(T));
    }
  }
  // New contiguous tensor with converted elements (round-to-nearest-even into bf16 and half).
  template <class U>
  Tensor<U, D> to() const {
    if constexpr (std::is_same_v<U, T>) {
      return contiguous();
    } else {
      static_assert(std::is_same_v<D, Cpu>, "dtype conversion on a device: convert on the CPU first");
      Tensor<U, D> out = Tensor<U, D>::empty(shape_);
      out.copy_from(*this);
      return out;
    }
  }
  // New contiguous tensor on another device.
  template <class D2>
  Tensor<T, D2> to_device() const {
    if constexpr (std::is_same_v<D2, D>) {
      return contiguous();
    } else {
      if constexpr (std::is_same_v<D2, Cpu>) {
        if (!is_contiguous() && !D::strided_copy_available()) return gathered_on_host();
      }
      const Tensor src = contiguous();  // on a device, by its strided copy kernel
      Tensor<T, D2> out = Tensor<T, D2>::empty(shape_);
      const size_t bytes = size_t(numel()) * sizeof(T);
      if constexpr (std::is_same_v<D, Cpu>) D2::copy_from_host(out.data(), src.data(), bytes);
      else if constexpr (std::is_same_v<D2, Cpu>) D::copy_to_host(out.data(), src.data(), bytes);
      else static_assert(std::is_same_v<D, Cpu> || std::is_same_v<D2, Cpu>, "copies go through the host");
      return out;
    }
  }
  void fill(T value) const {
    if constexpr (std::is_same_v<D, Cpu>) {
      T* p = data();
      for_each_strided<1>(shape_, {strides_}, [&](auto off, int64_t n, auto inc) {
        for (int64_t i = 0; i < n; ++i) p[off[0] + i * inc[0]] = value;
      });
    } else {
      copy_from(full(shape_, value));  // initialisation, not a hot path: filled on the host, one copy
    }
  }
  std::vector<T> to_vector() const {
    const Tensor<T, Cpu> host = to_device<Cpu>();
    return std::vector<T>(host.data(), host.data() + host.numel());
  }

  // Element access (CPU) -------------------------------------------------------------------
  // at(i, j, ...) checks rank and bounds; operator()(i, j, ...) does not.
  template <class... I>
  T& at(I... idx) const {
    static_assert(std::is_same_v<D, Cpu>, "element access on the CPU");
    const int64_t ii[] = {int64_t(idx)...};
    CTMLLM_CHECK(int(sizeof...(I)) == rank(), "Tensor::at: ", sizeof...(I), " indices for ", describe());
    int64_t off = offset_;
    for (int d = 0; d < rank(); ++d) {
      CTMLLM_CHECK(ii[d] >= 0 && ii[d] < shape_[d], "Tensor::at: index ", ii[d], " out of range for dimension ", d,
                   " of ", describe());
      off += ii[d] * strides_[d];
    }
    return reinterpret_cast<T*>(storage_.get())[off];
  }
  template <class... I>
  T& operator()(I... idx) const {
    const int64_t ii[] = {int64_t(idx)..., 0};
    int64_t off = offset_;
    for (int d = 0; d < int(sizeof...(I)); ++d) off += ii[d] * strides_[d];
    return reinterpret_cast<T*>(storage_.get())[off];
  }
  T item() const {
    CTMLLM_CHECK(numel() == 1, "Tensor::item: ", describe(), " does not hold exactly one element");
    T v;
    D::copy_to_host(&v, data(), sizeof(T));
    return v;
  }

 private:
  template <class, class>
  friend class Tensor;

  Shape infer_shape(std::span<const int64_t> dims) const {
    CTMLLM_CHECK(dims.size() <= size_t(kMaxRank), "Tensor::reshape: rank ", dims.size(), " exceeds ", kMaxRank);
    int infer = -1;
    int64_t known = 1;
    Shape s;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] == -1) {
        CTMLLM_CHECK(infer < 0, "Tensor::reshape: more than one -1 in the target shape");
        infer = int(i);
        s.push_back(1);
      } else {
        CTMLLM_CHECK(dims[i] >= 0, "Tensor::reshape: negative extent ", dims[i]);
        known *= dims[i];
        s.push_back(dims[i]);
      }
    }
    if (infer >= 0) {
      CTMLLM_CHECK(known != 0 && numel() % known == 0, "Tensor::reshape: cannot infer -1 reshaping ", describe());
      s[infer] = numel() / known;
    }
    CTMLLM_CHECK(s.numel() == numel(), "Tensor::reshape: ", describe(), " has ", numel(), " elements, target shape ",
                 s, " has ", s.numel());
    return s;
  }
  // Strides that view this tensor's elements as `target`, if any exist (PyTorch's rule: each run of
  // target dimensions must map onto a run of source dimensions that is contiguous in memory).
  bool view_strides(const Shape& target, Shape& out) const {
    if (numel() == 0 || is_contiguous()) {
      out = contiguous_strides(target);
      return true;
    }
    out = target;
    int ti = target.rank() - 1;
    int64_t chunk_base = strides_[rank() - 1];  // stride of the innermost element of the current chunk
    int64_t tensor_numel = 1, view_numel = 1;
    for (int si = rank() - 1; si >= 0; --si) {
      tensor_numel *= shape_[si];
      // A chunk ends where the next source dimension out is not laid out right after this one.
      if (si == 0 || (shape_[si - 1] != 1 && strides_[si - 1] != tensor_numel * chunk_base)) {
        while (ti >= 0 && (view_numel < tensor_numel || target[ti] == 1)) {
          out[ti] = view_numel * chunk_base;
          view_numel *= target[ti];
          --ti;
        }
        if (view_numel != tensor_numel) return false;
        if (si > 0) {
          chunk_base = strides_[si - 1];
          tensor_numel = 1;
          view_numel = 1;
        }
      }
    }
    return ti == -1;
  }
  // A strided device view, contiguous on the host, for programs without the device's strided copy
  // kernel: the span of storage the view covers comes over in one copy and is gathered there. (contiguous() cannot come first: on a device it copies
  // through here.) Strides are never negative, so the span starts at the view's first element.
  Tensor<T, Cpu> gathered_on_host() const {
    int64_t span = numel() == 0 ? 0 : 1;
    for (int d = 0; d < rank() && numel() > 0; ++d) span += (shape_[d] - 1) * strides_[d];
    Tensor<T, Cpu> raw = Tensor<T, Cpu>::empty(Shape{span});
    D::copy_to_host(raw.data(), data(), size_t(span) * sizeof(T));
    raw.shape_ = shape_;
    raw.strides_ = strides_;
    return raw.clone();
  }
  Tensor restride(const Shape& s, const Shape& st) const {
    Tensor t = *this;
    t.shape_ = s;
    t.strides_ = st;
    return t;
  }

  std::shared_ptr<std::byte> storage_;
  int64_t offset_ = 0;    // in elements, from the start of storage_
  Shape shape_;
  Shape strides_;
};

// Checks used by ops: they name the op and the offending tensors.
template <class T, class D>
void check_shape(const Tensor<T, D>& t, const Shape& expected, const char* op, const char* name) {
  CTMLLM_CHECK(t.shape() == expected, op, ": ", name, " must have shape ", expected, ", got ", t.describe());
}
template <class T, class D>
void check_rank(const Tensor<T, D>& t, int rank, const char* op, const char* name) {
  CTMLLM_CHECK(t.rank() == rank, op, ": ", name, " must have rank ", rank, ", got ", t.describe());
}
template <class T, class D>
void check_defined(const Tensor<T, D>& t, const char* op, const char* name) {
  CTMLLM_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
}

}  // namespace ctmllm
