#pragma once
// NIfTI-1 and NIfTI-2 volumes (single-file .nii and .nii.gz), read the way nibabel reads them, and
// a NIfTI-1 writer. docs/NIFTI.md has the full policy; the points that matter to callers:
//
// - Array order. NIfTI stores x fastest, then y, z (then t, ...). Tensors here are [z, y, x]
//   (PyTorch's D×H×W), which is the same memory order with the extents listed backwards, so element
//   (k, j, i) is voxel x=i, y=j, z=k and reading never transposes. Images with fewer than three
//   dimensions get extent 1 for the missing ones.
// - Values. volume<float>() applies scl_slope/scl_inter like nibabel's get_fdata (slope 0 or not
//   finite: no scaling), computed in double and rounded to T. stored<T>() gives the stored values
//   unscaled, when T holds every value of the stored type exactly.
// - More than one volume (dim[4..7] > 1). read_nifti refuses it; read_nifti_volume picks one and
//   read_nifti_volumes returns all as [V, z, y, x] (V = dim[4]·…·dim[7], t fastest).
// - Geometry. spacing is pixdim[1..3] in x, y, z order (the reverse of the tensor's dimensions);
//   the affine is nibabel's best affine (sform if sform_code > 0, else qform if qform_code > 0,
//   else the pixdim fallback), mapping voxel (x, y, z, 1) to world coordinates; axcodes are
//   nibabel's aff2axcodes of it, e.g. "RAS".
#include <Eigen/LU>
#include <Eigen/SVD>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ctmllm/core/tensor.hpp"
#include "ctmllm/io/gzip.hpp"

namespace ctmllm::io {

static_assert(std::endian::native == std::endian::little, "NIfTI I/O assumes a little-endian host");

// Voxel (x, y, z, 1) -> world (x, y, z, 1); row-major, affine[row][column].
using Affine = std::array<std::array<double, 4>, 4>;

// NIFTI_TYPE_* datatype codes.
namespace nifti_type {
inline constexpr int kBinary = 1, kUInt8 = 2, kInt16 = 4, kInt32 = 8, kFloat32 = 16, kComplex64 = 32, kFloat64 = 64,
                     kRgb24 = 128, kInt8 = 256, kUInt16 = 512, kUInt32 = 768, kInt64 = 1024, kUInt64 = 1280,
                     kFloat128 = 1536, kComplex128 = 1792, kComplex256 = 2048, kRgba32 = 2304;
}  // namespace nifti_type

inline const char* nifti_type_name(int code) {
  using namespace nifti_type;
  switch (code) {
    case kBinary: return "binary";
    case kUInt8: return "uint8";
    case kInt16: return "int16";
    case kInt32: return "int32";
    case kFloat32: return "float32";
    case kComplex64: return "complex64";
    case kFloat64: return "float64";
    case kRgb24: return "RGB24";
    case kInt8: return "int8";
    case kUInt16: return "uint16";
    case kUInt32: return "uint32";
    case kInt64: return "int64";
    case kUInt64: return "uint64";
    case kFloat128: return "float128";
    case kComplex128: return "complex128";
    case kComplex256: return "complex256";
    case kRgba32: return "RGBA32";
  }
  return "unknown";
}

// Bytes per voxel of the readable datatypes; 0 for the others.
inline int nifti_type_size(int code) {
  using namespace nifti_type;
  switch (code) {
    case kUInt8: case kInt8: return 1;
    case kInt16: case kUInt16: return 2;
    case kInt32: case kUInt32: case kFloat32: return 4;
    case kInt64: case kUInt64: case kFloat64: return 8;
  }
  return 0;
}

// The header as decoded (NIfTI-1's narrower fields widened), after nibabel's load-time fixes:
// qfac other than ±1 reads as 1, zero voxel sizes as 1, negative ones as their absolute value,
// xform codes outside 0..5 as 0, and dims past dim[0] as 1.
struct NiftiHeader {
  int version = 1;          // 1 or 2
  bool big_endian = false;  // byte order on disk
  int datatype = 0;         // a nifti_type code
  int bitpix = 0;           // as stored; the datatype decides the voxel size
  std::array<int64_t, 8> dim{};     // dim[0] = number of dimensions, dim[1..] = x, y, z, t, ...
  std::array<double, 8> pixdim{};   // pixdim[0] = qfac, pixdim[1..3] = voxel size
  int64_t vox_offset = 0;           // byte offset of the voxel data in the (inflated) file
  double scl_slope = 0, scl_inter = 0;
  double cal_min = 0, cal_max = 0;
  int intent_code = 0;
  int xyzt_units = 0;
  int qform_code = 0, sform_code = 0;
  std::array<double, 3> quatern{};  // b, c, d
  std::array<double, 3> qoffset{};
  std::array<std::array<double, 4>, 3> srow{};
  std::string descrip;

  // nibabel's rule: scaling applies unless the slope is 0 or not finite.
  bool has_scaling() const { return scl_slope != 0 && std::isfinite(scl_slope); }
};

namespace detail {

template <class T>
T load_swapped(const std::byte* p, bool swap) {
  using U = std::conditional_t<sizeof(T) == 1, uint8_t,
            std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
  U u;
  std::memcpy(&u, p, sizeof(U));
  if (swap) {
    if constexpr (sizeof(U) == 2) u = __builtin_bswap16(u);
    if constexpr (sizeof(U) == 4) u = __builtin_bswap32(u);
    if constexpr (sizeof(U) == 8) u = __builtin_bswap64(u);
  }
  return std::bit_cast<T>(u);
}

// Calls f(S{}) with S the C++ type of a readable NIfTI datatype.
template <class F>
void visit_nifti_type(int code, F&& f) {
  using namespace nifti_type;
  switch (code) {
    case kUInt8: f(uint8_t{}); break;
    case kInt8: f(int8_t{}); break;
    case kInt16: f(int16_t{}); break;
    case kUInt16: f(uint16_t{}); break;
    case kInt32: f(int32_t{}); break;
    case kUInt32: f(uint32_t{}); break;
    case kInt64: f(int64_t{}); break;
    case kUInt64: f(uint64_t{}); break;
    case kFloat32: f(float{}); break;
    case kFloat64: f(double{}); break;
    default: fail("NIfTI datatype ", code, " (", nifti_type_name(code), ") is not readable");
  }
}

// Whether T holds every value of S exactly.
template <class S, class T>
constexpr bool holds_all_values() {
  using LS = std::numeric_limits<S>;
  using LT = std::numeric_limits<T>;
  if constexpr (std::is_floating_point_v<T>) return LT::digits >= LS::digits;
  else if constexpr (std::is_floating_point_v<S>) return false;
  else return std::cmp_less_equal(LT::min(), LS::min()) && std::cmp_greater_equal(LT::max(), LS::max());
}

// "int16", "uint32", "float64", ... for a C++ arithmetic type.
template <class T>
std::string type_name() {
  if constexpr (std::is_floating_point_v<T>) return "float" + std::to_string(8 * sizeof(T));
  else return (std::is_signed_v<T> ? "int" : "uint") + std::to_string(8 * sizeof(T));
}

// Quaternion (w, b, c, d) -> rotation matrix, as nibabel's quat2mat.
inline std::array<std::array<double, 3>, 3> quat_to_rotation(double w, double x, double y, double z) {
  const double n = w * w + x * x + y * y + z * z;
  if (n < std::numeric_limits<double>::epsilon()) return {{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}};
  const double s = 2.0 / n;
  const double X = x * s, Y = y * s, Z = z * s;
  const double wX = w * X, wY = w * Y, wZ = w * Z, xX = x * X, xY = x * Y, xZ = x * Z, yY = y * Y, yZ = y * Z,
               zZ = z * Z;
  return {
      {{1.0 - (yY + zZ), xY - wZ, xZ + wY}, {xY + wZ, 1.0 - (xX + zZ), yZ - wX}, {xZ - wY, yZ + wX, 1.0 - (xX + yY)}}};
}

inline Eigen::Matrix3d linear_part(const Affine& a) {
  Eigen::Matrix3d m;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) m(r, c) = a[r][c];
  return m;
}

// The closest orthogonal matrix to `m` restricted to its numerical rank (polar decomposition via
// SVD, singular values below max·3·eps dropped), as nibabel's io_orientation computes it.
inline Eigen::Matrix3d closest_orthogonal(const Eigen::Matrix3d& m) {
  Eigen::JacobiSVD<Eigen::Matrix3d> svd(m, Eigen::ComputeFullU | Eigen::ComputeFullV);
  const Eigen::Vector3d s = svd.singularValues();
  const double tol = s.maxCoeff() * 3 * std::numeric_limits<double>::epsilon();
  Eigen::Matrix3d r = Eigen::Matrix3d::Zero();
  for (int k = 0; k < 3; ++k)
    if (s(k) > tol) r += svd.matrixU().col(k) * svd.matrixV().col(k).transpose();
  return r;
}

}  // namespace detail

// nibabel's aff2axcodes: for each voxel axis x, y, z the world direction it points to most, as
// "L"/"R", "P"/"A", "I"/"S" (world axes are RAS+); '?' for an axis that maps to nothing.
inline std::string axcodes_of(const Affine& affine) {
  Eigen::Matrix3d rzs = detail::linear_part(affine);
  for (int c = 0; c < 3; ++c) {
    const double n = rzs.col(c).norm();
    if (n != 0) rzs.col(c) /= n;
  }
  Eigen::Matrix3d r = detail::closest_orthogonal(rzs);
  // Strongest input axis first (stable on ties), each taking the world axis it leans on most and
  // removing it from the others' choice.
  std::array<int, 3> order{0, 1, 2};
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return r.col(a).cwiseAbs2().maxCoeff() > r.col(b).cwiseAbs2().maxCoeff();
  });
  static constexpr char kLabels[3][2] = {{'L', 'R'}, {'P', 'A'}, {'I', 'S'}};
  std::string codes = "???";
  for (int in : order) {
    const Eigen::Vector3d col = r.col(in);
    if (col.cwiseAbs().maxCoeff() <= 1e-8) continue;  // numpy.allclose(col, 0)
    int out = 0;
    for (int k = 1; k < 3; ++k)
      if (std::abs(col(k)) > std::abs(col(out))) out = k;
    codes[size_t(in)] = kLabels[out][col(out) < 0 ? 0 : 1];
    r.row(out).setZero();
  }
  return codes;
}

// A parsed NIfTI file: the header validated against the data, the voxels converted on request.
class NiftiFile {
 public:
  explicit NiftiFile(const std::string& path, uint64_t max_inflated_bytes = kDefaultMaxInflatedBytes)
      : bytes_(read_maybe_gzipped(path, max_inflated_bytes)) {
    parse();
  }
  // A .nii or .nii.gz image already in memory; `name` stands for the file in errors.
  static NiftiFile parse(std::span<const std::byte> bytes, const std::string& name = "<memory>",
                         uint64_t max_inflated_bytes = kDefaultMaxInflatedBytes) {
    return NiftiFile(load_maybe_gzipped(bytes, name, max_inflated_bytes));
  }

  const std::string& name() const { return bytes_.name(); }
  const NiftiHeader& header() const { return h_; }
  Shape volume_shape() const { return {h_.dim[3], h_.dim[2], h_.dim[1]}; }  // [z, y, x]
  int64_t num_volumes() const { return h_.dim[4] * h_.dim[5] * h_.dim[6] * h_.dim[7]; }
  const std::array<double, 3>& spacing() const { return spacing_; }  // x, y, z
  const Affine& affine() const { return affine_; }
  const std::string& axcodes() const { return axcodes_; }

  // Volume `index` as [z, y, x], scaled (nibabel's get_fdata in precision T).
  template <class T = float>
  Tensor<T, Cpu> volume(int64_t index = 0) const {
    check_index(index);
    return convert<T, true>(index, 1, volume_shape());
  }
  // Every volume as [V, z, y, x], scaled.
  template <class T = float>
  Tensor<T, Cpu> volumes() const {
    const Shape s = volume_shape();
    return convert<T, true>(0, num_volumes(), {num_volumes(), s[0], s[1], s[2]});
  }
  // Volume `index` as [z, y, x] with the stored values, unscaled; T must hold them all exactly.
  template <class T>
  Tensor<T, Cpu> stored(int64_t index = 0) const {
    check_index(index);
    return convert<T, false>(index, 1, volume_shape());
  }

 private:
  explicit NiftiFile(FileBytes bytes) : bytes_(std::move(bytes)) { parse(); }

  void check_index(int64_t index) const {
    CTMLLM_CHECK(index >= 0 && index < num_volumes(), name(), ": volume index ", index, " out of range (the image has ",
                 num_volumes(), " volumes)");
  }

  template <class T, bool kScaled>
  Tensor<T, Cpu> convert(int64_t first, int64_t count, const Shape& shape) const {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "NIfTI voxels convert to arithmetic types");
    static_assert(!kScaled || std::is_floating_point_v<T>, "scaled values are floating point: use float or double");
    Tensor<T, Cpu> out = Tensor<T, Cpu>::empty(shape);
    const int64_t per_volume = volume_shape().numel();
    const int size = nifti_type_size(h_.datatype);
    const std::byte* src = bytes_.bytes().data() + h_.vox_offset + first * per_volume * size;
    const int64_t n = count * per_volume;
    const bool swap = h_.big_endian;
    const bool scale = kScaled && h_.has_scaling() && !(h_.scl_slope == 1 && h_.scl_inter == 0);
    const double slope = h_.scl_slope, inter = h_.scl_inter;
    T* dst = out.data();
    detail::visit_nifti_type(h_.datatype, [&](auto tag) {
      using S = decltype(tag);
      if constexpr (!kScaled && !detail::holds_all_values<S, T>()) {
        fail(name(), ": stored ", nifti_type_name(h_.datatype), " values do not all fit ", detail::type_name<T>(),
             " exactly; read them as a wider type or use volume<float>() for scaled values");
      } else if (scale) {
        for (int64_t i = 0; i < n; ++i)
          dst[i] = T(double(detail::load_swapped<S>(src + i * sizeof(S), swap)) * slope + inter);
      } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = T(detail::load_swapped<S>(src + i * sizeof(S), swap));
      }
    });
    return out;
  }

  void parse() {
    const std::span<const std::byte> b = bytes_.bytes();
    const std::string& f = name();
    CTMLLM_CHECK(b.size() >= 348, f, ": ", b.size(), " bytes is too short for a NIfTI header (348 bytes at least)");
    int32_t sizeof_hdr;
    std::memcpy(&sizeof_hdr, b.data(), 4);
    const int32_t swapped = int32_t(__builtin_bswap32(uint32_t(sizeof_hdr)));
    if (sizeof_hdr == 348 || swapped == 348) h_.version = 1;
    else if (sizeof_hdr == 540 || swapped == 540) h_.version = 2;
    else
      fail(f, ": sizeof_hdr is ", sizeof_hdr,
           " (expected 348 for NIfTI-1 or 540 for NIfTI-2 in either byte order); not a NIfTI file");
    h_.big_endian = sizeof_hdr != 348 && sizeof_hdr != 540;
    const bool v2 = h_.version == 2;
    CTMLLM_CHECK(!v2 || b.size() >= 540, f, ": ", b.size(), " bytes is too short for a NIfTI-2 header (540 bytes)");
    auto get = [&](auto tag, size_t off) { return detail::load_swapped<decltype(tag)>(b.data() + off, h_.big_endian); };
    auto i16 = [&](size_t off) { return get(int16_t{}, off); };
    auto i32 = [&](size_t off) { return get(int32_t{}, off); };
    auto i64 = [&](size_t off) { return get(int64_t{}, off); };
    // NIfTI-1 stores reals as float32, NIfTI-2 as float64.
    auto real = [&](size_t off1, size_t off2) { return v2 ? get(double{}, off2) : double(get(float{}, off1)); };

    check_magic(b.subspan(v2 ? 4 : 344, v2 ? 8 : 4));

    h_.datatype = v2 ? i16(12) : i16(70);
    h_.bitpix = v2 ? i16(14) : i16(72);
    const int size = nifti_type_size(h_.datatype);
    if (size == 0) {
      if (std::strcmp(nifti_type_name(h_.datatype), "unknown") == 0) fail(f, ": unknown datatype code ", h_.datatype);
      fail(f, ": datatype ", h_.datatype, " (", nifti_type_name(h_.datatype), ") is not supported; readable: uint8, ",
           "int8, int16, uint16, int32, uint32, int64, uint64, float32, float64");
    }

    for (int i = 0; i < 8; ++i) h_.dim[i] = v2 ? i64(16 + 8 * i) : i16(40 + 2 * i);
    const int64_t ndim = h_.dim[0];
    CTMLLM_CHECK(ndim >= 1 && ndim <= 7, f, ": dim[0] = ", ndim, " (the number of dimensions) must be 1..7");
    uint64_t numel = 1;
    for (int i = 1; i < 8; ++i) {
      if (i > ndim) {
        h_.dim[i] = 1;
        continue;
      }
      CTMLLM_CHECK(h_.dim[i] >= 1, f, ": dim[", i, "] = ", h_.dim[i], " must be positive");
      CTMLLM_CHECK(numel <= (uint64_t(1) << 62) / uint64_t(h_.dim[i]), f, ": dims overflow (dim[", i, "] = ", h_.dim[i],
                   ")");
      numel *= uint64_t(h_.dim[i]);
    }
    CTMLLM_CHECK(numel <= (uint64_t(1) << 62) / uint64_t(size), f, ": dims overflow");

    for (int i = 0; i < 8; ++i) h_.pixdim[i] = real(76 + 4 * i, 104 + 8 * i);
    if (h_.pixdim[0] != 1 && h_.pixdim[0] != -1) h_.pixdim[0] = 1;
    for (int i = 1; i <= 3; ++i) {
      CTMLLM_CHECK(std::isfinite(h_.pixdim[i]), f, ": pixdim[", i, "] = ", h_.pixdim[i], " is not a finite voxel size");
      h_.pixdim[i] = h_.pixdim[i] == 0 ? 1 : std::abs(h_.pixdim[i]);
    }

    const size_t min_offset = v2 ? 544 : 352;  // header plus the 4-byte extension flag
    if (v2) {
      h_.vox_offset = i64(168);
    } else {
      const float off = get(float{}, 108);
      CTMLLM_CHECK(std::isfinite(off) && off >= 0 && off <= float(uint64_t(1) << 62), f, ": vox_offset = ", off,
                   " is not a valid byte offset");
      h_.vox_offset = int64_t(off);
    }
    CTMLLM_CHECK(h_.vox_offset >= int64_t(min_offset), f, ": vox_offset = ", h_.vox_offset,
                 " lies inside the header (a single-file NIfTI-", h_.version, " needs at least ", min_offset, ")");
    const uint64_t data_bytes = numel * uint64_t(size);
    CTMLLM_CHECK(uint64_t(h_.vox_offset) <= b.size() && data_bytes <= b.size() - uint64_t(h_.vox_offset), f,
                 ": truncated: ", numel, " ", nifti_type_name(h_.datatype), " voxels need ", data_bytes,
                 " bytes from offset ", h_.vox_offset, " but the ", bytes_.gzipped() ? "inflated " : "", "file has ",
                 b.size(), " bytes");

    h_.scl_slope = real(112, 176);
    h_.scl_inter = real(116, 184);
    CTMLLM_CHECK(!h_.has_scaling() || std::isfinite(h_.scl_inter), f, ": scl_inter = ", h_.scl_inter,
                 " is not finite while scl_slope = ", h_.scl_slope, " asks for scaling");
    h_.cal_max = real(124, 192);
    h_.cal_min = real(128, 200);
    h_.intent_code = v2 ? i32(504) : i16(68);
    h_.xyzt_units = v2 ? i32(500) : int(uint8_t(b[123]));
    h_.qform_code = v2 ? i32(344) : i16(252);
    h_.sform_code = v2 ? i32(348) : i16(254);
    if (h_.qform_code < 0 || h_.qform_code > 5) h_.qform_code = 0;
    if (h_.sform_code < 0 || h_.sform_code > 5) h_.sform_code = 0;
    for (int i = 0; i < 3; ++i) {
      h_.quatern[i] = real(256 + 4 * i, 352 + 8 * i);
      h_.qoffset[i] = real(268 + 4 * i, 376 + 8 * i);
      for (int c = 0; c < 4; ++c) h_.srow[i][c] = real(280 + 16 * i + 4 * c, 400 + 32 * i + 8 * c);
    }
    const char* descrip = reinterpret_cast<const char*>(b.data() + (v2 ? 240 : 148));
    h_.descrip.assign(descrip, strnlen(descrip, 80));

    const int nspatial = int(std::min<int64_t>(ndim, 3));
    for (int i = 0; i < 3; ++i) spacing_[i] = i < nspatial ? h_.pixdim[i + 1] : 1.0;
    affine_ = checked_affine();
    axcodes_ = axcodes_of(affine_);
  }

  void check_magic(std::span<const std::byte> m) const {
    const std::string f = name();
    const char* want = h_.version == 2 ? "n+2" : "n+1";
    const char* pair = h_.version == 2 ? "ni2" : "ni1";
    std::string printable;
    for (std::byte c : m.first(4)) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u < 0x7f) printable += char(u);
      else printable += {'\\', 'x', "0123456789abcdef"[u >> 4], "0123456789abcdef"[u & 15]};
    }
    auto is = [&](const char* s) { return std::memcmp(m.data(), s, 4) == 0; };
    CTMLLM_CHECK(!is(pair), f, ": magic '", pair, "' marks the header of a two-file NIfTI pair (.hdr + .img); only ",
                 "single-file .nii/.nii.gz images are supported");
    CTMLLM_CHECK(is(want), f, ": bad magic '", printable, "' (expected '", want, "' for the NIfTI-", h_.version,
                 " header size found)");
    if (h_.version == 2) {
      // Bytes 4..7 of the NIfTI-2 magic catch files mangled by a text-mode transfer; all zero is tolerated.
      static constexpr unsigned char kEol[4] = {0x0d, 0x0a, 0x1a, 0x0a}, kZero[4] = {};
      CTMLLM_CHECK(
          std::memcmp(m.data() + 4, kEol, 4) == 0 || std::memcmp(m.data() + 4, kZero, 4) == 0, f,
          ": NIfTI-2 magic bytes 4..7 are not \\r\\n\\x1a\\n; the file looks corrupted by an end-of-line conversion");
    }
  }

  Affine best_affine() const {
    const std::string& f = name();
    Affine a{};
    a[3] = {0, 0, 0, 1};
    if (h_.sform_code > 0) {
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 4; ++c) {
          CTMLLM_CHECK(std::isfinite(h_.srow[r][c]), f, ": sform (sform_code ", h_.sform_code,
                       ") has a non-finite entry srow[", r, "][", c, "] = ", h_.srow[r][c]);
          a[r][c] = h_.srow[r][c];
        }
      return a;
    }
    if (h_.qform_code > 0) {
      const auto [b, c, d] = h_.quatern;
      for (double v : {b, c, d, h_.qoffset[0], h_.qoffset[1], h_.qoffset[2]})
        CTMLLM_CHECK(std::isfinite(v), f, ": qform (qform_code ", h_.qform_code,
                     ") has a non-finite quaternion or offset");
      // nibabel's fillpositive: w = sqrt(1 − b² − c² − d²), 0 within the stored precision, else an error.
      const double w2 = 1.0 - (b * b + c * c + d * d);
      const double thresh = 3 * (h_.version == 2 ? std::numeric_limits<double>::epsilon()
                                                 : double(std::numeric_limits<float>::epsilon()));
      CTMLLM_CHECK(std::abs(w2) < thresh || w2 >= 0, f, ": qform quaternion (b, c, d) = (", b, ", ", c, ", ", d,
                   ") has norm above 1");
      const double w = std::abs(w2) < thresh ? 0.0 : std::sqrt(w2);
      const auto rot = detail::quat_to_rotation(w, b, c, d);
      const double zoom[3] = {h_.pixdim[1], h_.pixdim[2], h_.pixdim[3] * h_.pixdim[0]};
      for (int r = 0; r < 3; ++r) {
        for (int k = 0; k < 3; ++k) a[r][k] = rot[r][k] * zoom[k];
        a[r][3] = h_.qoffset[r];
      }
      return a;
    }
    // nibabel's shape_zoom_affine: voxel sizes on the diagonal, x flipped, the volume centred on 0.
    for (int i = 0; i < 3; ++i) {
      const double zoom = i == 0 ? -spacing_[0] : spacing_[i];
      a[i][i] = zoom;
      a[i][3] = -double(h_.dim[i + 1] - 1) / 2.0 * zoom;
    }
    return a;
  }
  // The affine's entries are finite whichever way it came (a huge pixdim could overflow the product).
  Affine checked_affine() const {
    const Affine a = best_affine();
    for (const auto& row : a)
      for (double v : row)
        CTMLLM_CHECK(std::isfinite(v), name(), ": the affine (from ",
                     h_.sform_code > 0   ? "sform"
                     : h_.qform_code > 0 ? "qform"
                                         : "pixdim",
                     ") overflows to a non-finite value");
    return a;
  }

  FileBytes bytes_;
  NiftiHeader h_;
  std::array<double, 3> spacing_{};
  Affine affine_{};
  std::string axcodes_;
};

// A volume with its geometry, as the vision pipeline consumes it.
struct NiftiImage {
  Tensor<float, Cpu> data;         // [z, y, x] scaled values; [V, z, y, x] from read_nifti_volumes
  NiftiHeader header;
  std::array<double, 3> spacing{};  // voxel size along x, y, z (pixdim[1..3]): data's dimensions reversed
  Affine affine{};                  // voxel (x, y, z, 1) -> world
  std::string axcodes;              // e.g. "RAS"
};

namespace detail {
inline NiftiImage make_image(const NiftiFile& f, Tensor<float, Cpu> data) {
  return NiftiImage{std::move(data), f.header(), f.spacing(), f.affine(), f.axcodes()};
}
}  // namespace detail

// The one 3-D volume of a NIfTI file; an Error when it holds more than one (see read_nifti_volume).
inline NiftiImage read_nifti(const std::string& path, uint64_t max_inflated_bytes = kDefaultMaxInflatedBytes) {
  const NiftiFile f(path, max_inflated_bytes);
  const auto& d = f.header().dim;
  CTMLLM_CHECK(f.num_volumes() == 1, path, ": has ", f.num_volumes(), " volumes (dim[4..7] = ", d[4], ", ", d[5], ", ",
               d[6], ", ", d[7],
               "); read one with read_nifti_volume(path, index) or all with read_nifti_volumes(path)");
  return detail::make_image(f, f.volume<float>(0));
}

// Volume `index` (counting t fastest, then u, v, w) of a 4-D or higher image, as [z, y, x].
inline NiftiImage read_nifti_volume(const std::string& path, int64_t index,
                                    uint64_t max_inflated_bytes = kDefaultMaxInflatedBytes) {
  const NiftiFile f(path, max_inflated_bytes);
  return detail::make_image(f, f.volume<float>(index));
}

// All volumes as [V, z, y, x] (V = 1 for a 3-D image).
inline NiftiImage read_nifti_volumes(const std::string& path, uint64_t max_inflated_bytes = kDefaultMaxInflatedBytes) {
  const NiftiFile f(path, max_inflated_bytes);
  return detail::make_image(f, f.volumes<float>());
}

// Writing ------------------------------------------------------------------------------------------

struct NiftiWriteOptions {
  int gzip_level = 6;      // for .nii.gz: 0 (stored) .. 9 (smallest)
  int sform_code = 2;      // NIFTI_XFORM_ALIGNED_ANAT, as nibabel writes
  int qform_code = 2;      // the qform holds the affine's closest rotation + zooms (shears dropped)
  int xyzt_units = 2;      // NIFTI_UNITS_MM
  int intent_code = 0;     // e.g. 1002 (NIFTI_INTENT_LABEL) for a segmentation mask
  std::string description;  // descrip, at most 79 bytes
};

namespace detail {
template <class T>
constexpr int nifti_code_of() {
  using namespace nifti_type;
  if constexpr (std::is_same_v<T, uint8_t>) return kUInt8;
  else if constexpr (std::is_same_v<T, int8_t>) return kInt8;
  else if constexpr (std::is_same_v<T, int16_t>) return kInt16;
  else if constexpr (std::is_same_v<T, int32_t>) return kInt32;
  else if constexpr (std::is_same_v<T, int64_t>) return kInt64;
  else if constexpr (std::is_same_v<T, float>) return kFloat32;
  else if constexpr (std::is_same_v<T, double>) return kFloat64;
  else return 0;
}

template <class T>
void put_le(std::vector<std::byte>& buf, size_t off, T v) {
  std::memcpy(buf.data() + off, &v, sizeof(T));
}

// Rotation -> unit quaternion (w, b, c, d) with w >= 0 (Shepperd's method, stable for all angles).
inline std::array<double, 4> rotation_to_quat(const Eigen::Matrix3d& r) {
  double w, x, y, z;
  const double tr = r.trace();
  if (tr > 0) {
    const double s = 0.5 / std::sqrt(tr + 1.0);
    w = 0.25 / s, x = (r(2, 1) - r(1, 2)) * s, y = (r(0, 2) - r(2, 0)) * s, z = (r(1, 0) - r(0, 1)) * s;
  } else if (r(0, 0) > r(1, 1) && r(0, 0) > r(2, 2)) {
    const double s = 2.0 * std::sqrt(1.0 + r(0, 0) - r(1, 1) - r(2, 2));
    w = (r(2, 1) - r(1, 2)) / s, x = 0.25 * s, y = (r(0, 1) + r(1, 0)) / s, z = (r(0, 2) + r(2, 0)) / s;
  } else if (r(1, 1) > r(2, 2)) {
    const double s = 2.0 * std::sqrt(1.0 + r(1, 1) - r(0, 0) - r(2, 2));
    w = (r(0, 2) - r(2, 0)) / s, x = (r(0, 1) + r(1, 0)) / s, y = 0.25 * s, z = (r(1, 2) + r(2, 1)) / s;
  } else {
    const double s = 2.0 * std::sqrt(1.0 + r(2, 2) - r(0, 0) - r(1, 1));
    w = (r(1, 0) - r(0, 1)) / s, x = (r(0, 2) + r(2, 0)) / s, y = (r(1, 2) + r(2, 1)) / s, z = 0.25 * s;
  }
  if (w < 0) w = -w, x = -x, y = -y, z = -z;
  return {w, x, y, z};
}
}  // namespace detail

// The bytes of a little-endian single-file NIfTI-1 image holding `volume` ([z, y, x], or
// [V, z, y, x] for a 4-D image) with voxel size `spacing` (x, y, z). The affine defaults to
// diag(spacing) (voxel 0 at the origin, RAS); a given one must have column norms equal to spacing.
template <class T>
std::vector<std::byte> encode_nifti(const Tensor<T, Cpu>& volume, const std::array<double, 3>& spacing,
                                    const std::optional<Affine>& affine = std::nullopt,
                                    const NiftiWriteOptions& opts = {}) {
  constexpr int code = detail::nifti_code_of<T>();
  static_assert(code != 0, "write_nifti: element type must be uint8, int8, int16, int32, int64, float or double");
  CTMLLM_CHECK(volume.rank() == 3 || volume.rank() == 4, "write_nifti: volume must be [z, y, x] or [V, z, y, x], got ",
               volume.describe());
  for (int i = 0; i < volume.rank(); ++i)
    CTMLLM_CHECK(volume.size(i) >= 1 && volume.size(i) <= 32767, "write_nifti: extent ", volume.size(i), " of ",
                 volume.describe(), " does not fit NIfTI-1 (1..32767)");
  for (int i = 0; i < 3; ++i)
    CTMLLM_CHECK(std::isfinite(spacing[i]) && spacing[i] > 0, "write_nifti: spacing[", i, "] = ", spacing[i],
                 " must be a positive voxel size");
  for (int code_value : {opts.sform_code, opts.qform_code})
    CTMLLM_CHECK(code_value >= 0 && code_value <= 5, "write_nifti: xform code ", code_value, " is outside 0..5");
  CTMLLM_CHECK(opts.description.size() < 80, "write_nifti: description is ", opts.description.size(),
               " bytes (at most 79)");

  Affine a{};
  if (affine) {
    a = *affine;
    for (const auto& row : a)
      for (double v : row) CTMLLM_CHECK(std::isfinite(v), "write_nifti: the affine has a non-finite entry");
    CTMLLM_CHECK(a[3][0] == 0 && a[3][1] == 0 && a[3][2] == 0 && a[3][3] == 1,
                 "write_nifti: the affine's last row must be [0, 0, 0, 1]");
    // Voxel sizes are the column norms of the affine; a mismatch is usually spacing given as z, y, x.
    const Eigen::Matrix3d m = detail::linear_part(a);
    for (int i = 0; i < 3; ++i)
      CTMLLM_CHECK(std::abs(m.col(i).norm() - spacing[i]) <= 1e-3 * spacing[i], "write_nifti: spacing (x, y, z) = (",
                   spacing[0], ", ", spacing[1], ", ", spacing[2], ") disagrees with the affine's column norms (",
                   m.col(0).norm(), ", ", m.col(1).norm(), ", ", m.col(2).norm(), "); spacing is in x, y, z order");
  } else {
    for (int i = 0; i < 4; ++i) a[i][i] = i < 3 ? spacing[i] : 1.0;
  }

  // qform as nibabel's set_qform: unit columns, a flipped third column when the determinant is
  // negative (qfac = −1), then the closest rotation to that.
  Eigen::Matrix3d r = detail::linear_part(a);
  for (int c = 0; c < 3; ++c) r.col(c) /= r.col(c).norm();
  const double qfac = r.determinant() < 0 ? -1.0 : 1.0;
  r.col(2) *= qfac;
  const auto quat = detail::rotation_to_quat(detail::closest_orthogonal(r));

  const Tensor<T, Cpu> c = volume.contiguous();
  const bool four_d = c.rank() == 4;
  const int64_t nx = c.size(-1), ny = c.size(-2), nz = c.size(-3), nv = four_d ? c.size(0) : 1;
  const size_t data_bytes = size_t(c.numel()) * sizeof(T);
  std::vector<std::byte> buf(352 + data_bytes);
  using detail::put_le;
  put_le<int32_t>(buf, 0, 348);
  buf[38] = std::byte{'r'};  // "regular", as nibabel writes
  const int16_t dims[8] = {int16_t(four_d ? 4 : 3), int16_t(nx), int16_t(ny), int16_t(nz), int16_t(nv), 1, 1, 1};
  for (int i = 0; i < 8; ++i) put_le<int16_t>(buf, 40 + 2 * i, dims[i]);
  put_le<int16_t>(buf, 68, int16_t(opts.intent_code));
  put_le<int16_t>(buf, 70, int16_t(code));
  put_le<int16_t>(buf, 72, int16_t(8 * sizeof(T)));
  const float pixdim[8] = {float(qfac), float(spacing[0]), float(spacing[1]), float(spacing[2]), 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) put_le<float>(buf, 76 + 4 * i, pixdim[i]);
  put_le<float>(buf, 108, 352.f);  // vox_offset
  put_le<float>(buf, 112, 1.f);    // scl_slope: values are stored as they are
  put_le<float>(buf, 116, 0.f);    // scl_inter
  buf[123] = std::byte(uint8_t(opts.xyzt_units));
  std::memcpy(buf.data() + 148, opts.description.data(), opts.description.size());
  put_le<int16_t>(buf, 252, int16_t(opts.qform_code));
  put_le<int16_t>(buf, 254, int16_t(opts.sform_code));
  for (int i = 0; i < 3; ++i) {
    put_le<float>(buf, 256 + 4 * i, float(quat[size_t(i) + 1]));
    put_le<float>(buf, 268 + 4 * i, float(a[i][3]));
    for (int k = 0; k < 4; ++k) put_le<float>(buf, 280 + 16 * i + 4 * k, float(a[i][k]));
  }
  std::memcpy(buf.data() + 344, "n+1\0", 4);
  // Bytes 348..351 stay zero: no header extensions.
  if (data_bytes) std::memcpy(buf.data() + 352, c.data(), data_bytes);
  return buf;
}

// Writes `volume` as NIfTI-1: .nii plain, .nii.gz gzip-compressed (see encode_nifti for the rest).
template <class T>
void write_nifti(const std::string& path, const Tensor<T, Cpu>& volume, const std::array<double, 3>& spacing,
                 const std::optional<Affine>& affine = std::nullopt, const NiftiWriteOptions& opts = {}) {
  auto ends_with = [&](const std::string& s) {
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  const bool gz = ends_with(".nii.gz");
  CTMLLM_CHECK(gz || ends_with(".nii"), path, ": a NIfTI file name must end in .nii or .nii.gz");
  CTMLLM_CHECK(opts.gzip_level >= 0 && opts.gzip_level <= 9, path, ": gzip_level ", opts.gzip_level,
               " is outside 0..9");
  write_maybe_gzipped(path, encode_nifti(volume, spacing, affine, opts), gz, opts.gzip_level);
}

}  // namespace ctmllm::io
