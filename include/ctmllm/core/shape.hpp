#pragma once
// Shape: up to kMaxRank extents (B×C×D×H×W and attention's B×H×S×D fit with room to spare).
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>

#include "ctmllm/core/error.hpp"

namespace ctmllm {

inline constexpr int kMaxRank = 8;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.size()); }
  explicit Shape(std::span<const int64_t> dims) { assign(dims.data(), dims.size()); }

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }
  int64_t back() const { return dims_[rank_ - 1]; }

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  void push_back(int64_t d) {
    CTMLLM_CHECK(rank_ < kMaxRank, "Shape: rank would exceed ", kMaxRank);
    dims_[rank_++] = d;
  }
  void insert(int pos, int64_t d) {
    CTMLLM_CHECK(rank_ < kMaxRank, "Shape: rank would exceed ", kMaxRank);
    for (int i = rank_; i > pos; --i) dims_[i] = dims_[i - 1];
    dims_[pos] = d;
    ++rank_;
  }
  void erase(int pos) {
    for (int i = pos; i + 1 < rank_; ++i) dims_[i] = dims_[i + 1];
    --rank_;
  }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + "]";
  }
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

 private:
  void assign(const int64_t* d, size_t n) {
    CTMLLM_CHECK(n <= size_t(kMaxRank), "Shape: rank ", n, " exceeds the maximum rank ", kMaxRank);
    rank_ = int(n);
    for (size_t i = 0; i < n; ++i) {
      CTMLLM_CHECK(d[i] >= 0, "Shape: negative extent ", d[i], " in dimension ", i);
      dims_[i] = d[i];
    }
  }
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// Maps a possibly negative dimension index into [0, rank); `what` names the caller in the error.
inline int normalize_dim(int dim, int rank, const char* what) {
  const int d = dim < 0 ? dim + rank : dim;
  CTMLLM_CHECK(d >= 0 && d < rank, what, ": dimension ", dim, " out of range for rank ", rank);
  return d;
}

// Row-major (contiguous) strides of a shape, in elements.
inline Shape contiguous_strides(const Shape& s) {
  Shape st = s;
  int64_t acc = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// The shape two operands broadcast to (NumPy/PyTorch rules), or an Error naming both shapes.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what) {
  const int r = a.rank() > b.rank() ? a.rank() : b.rank();
  Shape out;
  for (int i = 0; i < r; ++i) {
    const int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    CTMLLM_CHECK(da == db || da == 1 || db == 1, what, ": shapes ", a, " and ", b, " do not broadcast");
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

}  // namespace ctmllm
