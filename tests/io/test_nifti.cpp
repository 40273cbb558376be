// NIfTI: every file in tests/data against nibabel's readings (nifti_reference.json), both byte
// orders of both versions, qform and fallback affines, the 4-D policy, writer round trips, and
// ctmllm::Error (never a crash) on damaged headers, data and gzip streams.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "ctmllm/io/nifti.hpp"
#include "support/catch.hpp"
#include "support/files_and_errors.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using testing::message_of;
using testing::scratch_dir;

namespace {
std::vector<std::byte> inflated(const std::string& file) {
  const io::FileBytes b = io::read_maybe_gzipped(testing::data_path(file));
  return {b.bytes().begin(), b.bytes().end()};
}

template <class T>
void put(std::vector<std::byte>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

// Numeric header fields as (offset, bytes per value, count), to flip a file's byte order.
struct Field {
  size_t offset, size, count;
};
const std::vector<Field> kNifti1Fields = {{0, 4, 1},  {32, 4, 1},  {36, 2, 1},  {40, 2, 8},   {56, 4, 3},
                                          {68, 2, 4}, {76, 4, 8},  {108, 4, 3}, {120, 2, 1},  {124, 4, 4},
                                          {140, 4, 2}, {252, 2, 2}, {256, 4, 18}};
const std::vector<Field> kNifti2Fields = {{0, 4, 1},   {12, 2, 2},  {16, 8, 8},   {80, 8, 3},  {104, 8, 8},
                                          {168, 8, 1}, {176, 8, 6}, {224, 8, 2},  {344, 4, 2}, {352, 8, 18},
                                          {496, 4, 3}};

void swap_bytes(std::vector<std::byte>& b, size_t offset, size_t size, size_t count) {
  for (size_t i = 0; i < count; ++i)
    std::reverse(b.begin() + long(offset + i * size), b.begin() + long(offset + (i + 1) * size));
}

// The same image in the other byte order: header fields and voxels swapped.
std::vector<std::byte> flip_byte_order(std::vector<std::byte> b, const std::vector<Field>& fields, size_t vox_offset,
                                       size_t voxel_size) {
  for (const Field& f : fields) swap_bytes(b, f.offset, f.size, f.count);
  swap_bytes(b, vox_offset, voxel_size, (b.size() - vox_offset) / voxel_size);
  return b;
}

// nibabel's name for an on-disk dtype: the plain name in native (little-endian) order, else ">i2" style.
std::string numpy_dtype(int code, bool big_endian) {
  if (!big_endian) return io::nifti_type_name(code);
  const std::string name = io::nifti_type_name(code);
  const char kind = name[0] == 'u' ? 'u' : name[0] == 'f' ? 'f' : 'i';
  return ">" + std::string(1, kind) + std::to_string(io::nifti_type_size(code));
}

std::vector<int64_t> parse_index(const std::string& s) {  // "(11, 13, 8)"
  std::vector<int64_t> v;
  std::stringstream in(s.substr(1));
  int64_t x;
  char sep;
  while (in >> x) {
    v.push_back(x);
    in >> sep;
  }
  return v;
}

template <class T>
int expected_code(T) {  // NIFTI_TYPE_* of each writable type
  if constexpr (std::is_same_v<T, uint8_t>) return 2;
  else if constexpr (std::is_same_v<T, int8_t>) return 256;
  else if constexpr (std::is_same_v<T, int16_t>) return 4;
  else if constexpr (std::is_same_v<T, int32_t>) return 8;
  else if constexpr (std::is_same_v<T, int64_t>) return 1024;
  else if constexpr (std::is_same_v<T, float>) return 16;
  else return 64;
}

io::Affine rotated_affine() {  // Rz(30°)·diag(−0.5, 0.75, 2) + (10, −20, 5): LAS-like with qfac −1
  const double c = std::cos(std::numbers::pi / 6), s = std::sin(std::numbers::pi / 6);
  return {{{-0.5 * c, -0.75 * s, 0, 10}, {-0.5 * s, 0.75 * c, 0, -20}, {0, 0, 2, 5}, {0, 0, 0, 1}}};
}

void check_affine(const io::Affine& got, const io::Affine& want, double tol) {
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      INFO("affine[" << r << "][" << c << "]");
      CHECK(std::abs(got[r][c] - want[r][c]) <= tol * (1 + std::abs(want[r][c])));
    }
}
}  // namespace

TEST_CASE("every file in tests/data reads as nibabel reads it", "[io][nifti]") {
  std::ifstream in(testing::data_path("nifti_reference.json"));
  const nlohmann::json ref = nlohmann::json::parse(in);
  const std::map<std::string, std::string> axcodes = {  // nibabel.aff2axcodes(img.affine)
      {"anatomical.nii", "LAS"},  {"example4d.nii.gz", "LAS"},         {"example_nifti2.nii.gz", "LAS"},
      {"head_ct.nii.gz", "RAS"},  {"head_ct_bone_mask.nii.gz", "RAS"}, {"reoriented_anat_moved.nii", "RAS"},
      {"standard.nii.gz", "RAS"}};
  CHECK(ref.size() == axcodes.size());
  for (auto it = ref.begin(); it != ref.end(); ++it) {
    const std::string file = it.key();
    const nlohmann::json& r = it.value();
    INFO(file);
    const io::NiftiFile f(testing::data_path(file));
    const io::NiftiHeader& h = f.header();
    CHECK(h.version == r["nifti_version"].get<int>());
    const auto shape = r["shape_xyz"].get<std::vector<int64_t>>();
    REQUIRE(h.dim[0] == int64_t(shape.size()));
    for (size_t i = 0; i < shape.size(); ++i) CHECK(h.dim[i + 1] == shape[i]);
    CHECK(f.volume_shape() == Shape{shape[2], shape[1], shape[0]});
    CHECK(f.num_volumes() == (shape.size() == 4 ? shape[3] : 1));
    CHECK(numpy_dtype(h.datatype, h.big_endian) == r["on_disk_dtype"].get<std::string>());
    CHECK((h.big_endian ? ">" : "<") == r["endianness"].get<std::string>());
    const auto zooms = r["zooms"].get<std::vector<double>>();
    for (size_t i = 0; i < zooms.size(); ++i) CHECK(h.pixdim[i + 1] == Catch::Approx(zooms[i]).epsilon(1e-12));
    for (size_t i = 0; i < 3; ++i) CHECK(f.spacing()[i] == Catch::Approx(zooms[i]).epsilon(1e-12));
    // nibabel moves the scaling into the data proxy on load and reports null for its header when
    // it is the identity (these files store slope 1, intercept 0).
    const bool identity = !h.has_scaling() || (h.scl_slope == 1 && h.scl_inter == 0);
    if (r["scl_slope"].is_null()) CHECK(identity);
    else CHECK(h.scl_slope == r["scl_slope"].get<double>());
    CHECK(h.qform_code == r["qform_code"].get<int>());
    CHECK(h.sform_code == r["sform_code"].get<int>());
    io::Affine want;
    for (int row = 0; row < 4; ++row)
      for (int col = 0; col < 4; ++col) want[row][col] = r["affine"][row][col].get<double>();
    check_affine(f.affine(), want, 1e-12);
    CHECK(f.axcodes() == axcodes.at(file));

    // Statistics over all volumes of the scaled values, as nibabel's get_fdata() gives them.
    const Tensor<float, Cpu> all = f.volumes<float>();
    CHECK(all.shape() == Shape{f.num_volumes(), shape[2], shape[1], shape[0]});
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (int64_t i = 0; i < all.numel(); ++i) {
      const double v = all.data()[i];
      lo = std::min(lo, v), hi = std::max(hi, v), sum += v;
    }
    CHECK(lo == Catch::Approx(r["min"].get<double>()).epsilon(1e-6));
    CHECK(hi == Catch::Approx(r["max"].get<double>()).epsilon(1e-6));
    CHECK(sum == Catch::Approx(r["sum"].get<double>()).epsilon(1e-6));
    CHECK(sum / double(all.numel()) == Catch::Approx(r["mean"].get<double>()).epsilon(1e-6));
    for (auto v = r["value_at_index"].begin(); v != r["value_at_index"].end(); ++v) {
      const auto xyz = parse_index(v.key());
      INFO("voxel " << v.key());
      const int64_t t = xyz.size() == 4 ? xyz[3] : 0;
      CHECK(all.at(t, xyz[2], xyz[1], xyz[0]) == Catch::Approx(v.value().get<double>()).epsilon(1e-6));
      CHECK(f.volume<double>(t).at(xyz[2], xyz[1], xyz[0]) == Catch::Approx(v.value().get<double>()).epsilon(1e-12));
    }
  }
}

TEST_CASE("read_nifti gives z, y, x with geometry, 4-D needs a volume index", "[io][nifti]") {
  const io::NiftiImage ct = io::read_nifti(testing::data_path("head_ct.nii.gz"));
  CHECK(ct.data.shape() == Shape{108, 256, 256});
  CHECK(ct.data.at(36, 85, 85) == 14.f);  // nibabel's voxel (x, y, z) = (85, 85, 36)
  CHECK(ct.spacing[2] == 1.5);
  CHECK(ct.axcodes == "RAS");
  CHECK(ct.header.descrip == "head CT (Debian invesalius-examples Cranium)");
  CHECK(ct.header.xyzt_units == 2);

  const std::string ex4d = testing::data_path("example4d.nii.gz");
  const std::string m = message_of([&] { io::read_nifti(ex4d); });
  CHECK(m.find("example4d.nii.gz") != std::string::npos);
  CHECK(m.find("2 volumes") != std::string::npos);
  const io::NiftiImage all = io::read_nifti_volumes(ex4d);
  const io::NiftiImage second = io::read_nifti_volume(ex4d, 1);
  CHECK(all.data.shape() == Shape{2, 24, 96, 128});
  CHECK(second.data.shape() == Shape{24, 96, 128});
  CHECK(second.data.at(12, 48, 64) == 266.f);
  CHECK(testing::max_abs_diff(second.data, all.data.select(0, 1).contiguous()) == 0);
  CHECK_THROWS_AS(io::read_nifti_volume(ex4d, 2), Error);
  CHECK_THROWS_AS(io::read_nifti_volume(ex4d, -1), Error);
  CHECK(io::read_nifti_volumes(testing::data_path("standard.nii.gz")).data.shape() == Shape{1, 7, 5, 4});
}

TEST_CASE("stored<T> gives unscaled stored values when T holds them all", "[io][nifti]") {
  const io::NiftiFile ct(testing::data_path("head_ct.nii.gz"));
  const Tensor<int16_t, Cpu> raw = ct.stored<int16_t>();
  CHECK(raw.at(54, 128, 128) == 3);
  CHECK(testing::max_abs_diff(raw, ct.volume<float>()) == 0);
  CHECK(ct.stored<int32_t>().at(36, 85, 85) == 14);
  CHECK(ct.stored<float>().at(36, 85, 85) == 14.f);
  CHECK_THROWS_AS(ct.stored<int8_t>(), Error);
  CHECK_THROWS_AS(ct.stored<uint16_t>(), Error);
  const io::NiftiFile anat(testing::data_path("anatomical.nii"));  // big-endian int16
  CHECK(anat.stored<int16_t>().at(8, 13, 11) == 10168);
  const io::NiftiFile moved(testing::data_path("reoriented_anat_moved.nii"));  // big-endian float32
  CHECK(moved.stored<float>().at(7, 8, 7) == 10534.6240234375f);
  CHECK_THROWS_AS(moved.stored<int32_t>(), Error);
  CHECK(io::NiftiFile(testing::data_path("head_ct_bone_mask.nii.gz")).stored<uint8_t>().at(54, 128, 128) == 0);
}

TEST_CASE("both byte orders of NIfTI-1 and NIfTI-2 read the same", "[io][nifti]") {
  {
    const auto be = inflated("anatomical.nii");  // big-endian on disk
    const auto le = flip_byte_order(be, kNifti1Fields, 352, 2);
    const io::NiftiFile a = io::NiftiFile::parse(be, "be.nii"), b = io::NiftiFile::parse(le, "le.nii");
    CHECK(a.header().big_endian);
    CHECK(!b.header().big_endian);
    CHECK(testing::max_abs_diff(a.volume<float>(), b.volume<float>()) == 0);
    check_affine(a.affine(), b.affine(), 0);
    CHECK(a.header().descrip == b.header().descrip);
  }
  {
    const auto le = inflated("example_nifti2.nii.gz");
    const auto be = flip_byte_order(le, kNifti2Fields, 608, 2);
    const io::NiftiFile a = io::NiftiFile::parse(le, "le.nii"), b = io::NiftiFile::parse(be, "be.nii");
    CHECK(a.header().version == 2);
    CHECK(b.header().version == 2);
    CHECK(b.header().big_endian);
    CHECK(b.header().dim == a.header().dim);
    CHECK(b.header().pixdim == a.header().pixdim);
    CHECK(testing::max_abs_diff(a.volumes<float>(), b.volumes<float>()) == 0);
    check_affine(a.affine(), b.affine(), 0);
    CHECK(b.axcodes() == "LAS");
  }
}

TEST_CASE("qform and the pixdim fallback give nibabel's affines", "[io][nifti]") {
  {
    auto b = inflated("example4d.nii.gz");
    put<int16_t>(b, 254, 0);  // sform_code 0: the qform (code 1) decides
    const io::NiftiFile f = io::NiftiFile::parse(b, "qform.nii");
    // nibabel: Nifti1Header.get_qform() of example4d.nii.gz
    const io::Affine want = {
        {{-2.0, 7.7548180833491463e-26, -6.9382408668406282e-27, 1.1785510253906250e+02},
         {7.7548180833491463e-26, 1.9737114380100416e+00, -3.5552822510990678e-01, -3.5722942352294922e+01},
         {6.3074942946417280e-27, 3.2320761047403213e-01, 2.1710816877290404e+00, -7.2487983703613281e+00},
         {0, 0, 0, 1}}};
    check_affine(f.affine(), want, 1e-7);
    CHECK(f.axcodes() == "LAS");
  }
  {
    auto b = inflated("anatomical.nii");  // big-endian: a zero code is zero in either order
    put<int16_t>(b, 254, 0);
    check_affine(io::NiftiFile::parse(b, "q.nii").affine(),
                 {{{-2, 0, 0, 32}, {0, 2, 0, -40}, {0, 0, 2, -16}, {0, 0, 0, 1}}}, 1e-12);
    put<int16_t>(b, 252, 0);  // no codes: nibabel's get_base_affine
    const io::NiftiFile f = io::NiftiFile::parse(b, "base.nii");
    check_affine(f.affine(), {{{-2, 0, 0, 32}, {0, 2, 0, -40}, {0, 0, 2, -24}, {0, 0, 0, 1}}}, 1e-12);
    CHECK(f.axcodes() == "LAS");
  }
  {
    auto b = inflated("standard.nii.gz");
    put<int16_t>(b, 254, 0);
    check_affine(io::NiftiFile::parse(b, "base.nii").affine(),
                 {{{-1, 0, 0, 1.5}, {0, 3, 0, -6}, {0, 0, 2, -6}, {0, 0, 0, 1}}}, 1e-12);
  }
}

TEST_CASE("axcodes follow nibabel's aff2axcodes", "[io][nifti]") {
  CHECK(io::axcodes_of({{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}}) == "RAS");
  CHECK(io::axcodes_of({{{-1, 0, 0, 0}, {0, -1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}}) == "LPS");
  CHECK(io::axcodes_of({{{0, 0, 2, 0}, {-3, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 0, 1}}}) == "PSR");
  CHECK(io::axcodes_of({{{0, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}}) == "?AS");
  CHECK(io::axcodes_of(rotated_affine()) == "LAS");
}

TEST_CASE("write_nifti round-trips every dtype through .nii and .nii.gz", "[io][nifti]") {
  auto round_trip = [](auto tag, const std::string& ext) {
    using T = decltype(tag);
    INFO(dtype_name(dtype_v<T>) << " " << ext);
    Tensor<T, Cpu> v = Tensor<T, Cpu>::empty({5, 4, 3});  // z, y, x
    for (int64_t i = 0; i < v.numel(); ++i) {
      const double x = double(i * 37 % 61) - (std::is_signed_v<T> ? 30.0 : 0.0);
      v.data()[i] = std::is_floating_point_v<T> ? T(x * 0.375) : sizeof(T) == 8 ? T(x * 1e12) : T(x);
    }
    const std::string path = scratch_dir(std::string("rt_") + dtype_name(dtype_v<T>) + ext);
    io::NiftiWriteOptions opts;
    opts.description = "round trip";
    opts.intent_code = 1002;
    io::write_nifti(path, v, {0.5, 0.75, 2.0}, rotated_affine(), opts);
    const io::NiftiFile f(path);
    CHECK(f.header().datatype == expected_code(tag));
    CHECK(f.volume_shape() == Shape{5, 4, 3});
    CHECK(testing::max_abs_diff(f.stored<T>(), v) == 0);
    CHECK(testing::max_abs_diff(f.volume<double>(), v) == 0);
    CHECK(f.spacing() == std::array<double, 3>{0.5, 0.75, 2.0});
    check_affine(f.affine(), rotated_affine(), 1e-7);
    CHECK(f.axcodes() == "LAS");
    CHECK(f.header().descrip == "round trip");
    CHECK(f.header().intent_code == 1002);
    CHECK(f.header().sform_code == 2);
    CHECK(f.header().qform_code == 2);
    const io::FileBytes raw = io::read_maybe_gzipped(path);
    CHECK(raw.gzipped() == (ext == ".nii.gz"));
    std::remove(path.c_str());
  };
  for (const std::string ext : {".nii", ".nii.gz"}) {
    round_trip(uint8_t{}, ext);
    round_trip(int8_t{}, ext);
    round_trip(int16_t{}, ext);
    round_trip(int32_t{}, ext);
    round_trip(int64_t{}, ext);
    round_trip(float{}, ext);
    round_trip(double{}, ext);
  }
}

TEST_CASE("the written qform reproduces the affine, defaults and 4-D", "[io][nifti]") {
  const Tensor<float, Cpu> v = Tensor<float, Cpu>::full({2, 3, 4}, 1.5f);
  io::NiftiWriteOptions opts;
  opts.sform_code = 0;  // readers fall back to the qform
  opts.qform_code = 1;
  auto encoded = io::encode_nifti(v, {0.5, 0.75, 2.0}, rotated_affine(), opts);
  const io::NiftiFile q = io::NiftiFile::parse(encoded, "q.nii");
  CHECK(q.header().pixdim[0] == -1);  // the affine's determinant is negative
  check_affine(q.affine(), rotated_affine(), 1e-6);

  const io::NiftiFile d = io::NiftiFile::parse(io::encode_nifti(v, {0.8, 0.8, 5.0}), "default.nii");
  check_affine(d.affine(), {{{0.8, 0, 0, 0}, {0, 0.8, 0, 0}, {0, 0, 5, 0}, {0, 0, 0, 1}}}, 1e-7);
  CHECK(d.axcodes() == "RAS");

  Tensor<int16_t, Cpu> four = Tensor<int16_t, Cpu>::empty({3, 2, 3, 4});
  for (int64_t i = 0; i < four.numel(); ++i) four.data()[i] = int16_t(i - 20);
  const std::string path = scratch_dir("four.nii.gz");
  io::write_nifti(path, four, {1, 1, 1});
  CHECK_THROWS_AS(io::read_nifti(path), Error);
  const io::NiftiImage all = io::read_nifti_volumes(path);
  CHECK(all.data.shape() == Shape{3, 2, 3, 4});
  CHECK(testing::max_abs_diff(all.data, four) == 0);
  CHECK(io::read_nifti_volume(path, 2).data.at(1, 2, 3) == float(four.at(2, 1, 2, 3)));
  std::remove(path.c_str());
  const std::string one = scratch_dir("one.nii");  // 4-D with dim[4] == 1 is one volume
  io::write_nifti(one, four.slice(0, 1, 2), {1, 1, 1});
  CHECK(io::NiftiFile(one).header().dim[0] == 4);
  CHECK(testing::max_abs_diff(io::read_nifti(one).data, four.select(0, 1)) == 0);
  std::remove(one.c_str());

  // A strided (transposed) tensor is written in its logical order.
  const Tensor<float, Cpu> t = Tensor<float, Cpu>::from({1, 2, 3, 4, 5, 6}, {1, 2, 3}).transpose(1, 2);
  const io::NiftiFile tf = io::NiftiFile::parse(io::encode_nifti(t, {1, 1, 1}), "t.nii");
  CHECK(tf.volume<float>().to_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("write_nifti refuses what NIfTI-1 cannot say", "[io][nifti][errors]") {
  const Tensor<float, Cpu> v = Tensor<float, Cpu>::zeros({2, 3, 4});
  // spacing given as z, y, x against an anisotropic affine
  const std::string m = message_of([&] { io::encode_nifti(v, {2.0, 0.75, 0.5}, rotated_affine()); });
  CHECK(m.find("x, y, z") != std::string::npos);
  CHECK_THROWS_AS(io::encode_nifti(v, {1, 0, 1}), Error);
  CHECK_THROWS_AS(io::encode_nifti(v, {1, NAN, 1}), Error);
  CHECK_THROWS_AS(io::encode_nifti(Tensor<float, Cpu>::zeros({2, 3}), {1, 1, 1}), Error);
  CHECK_THROWS_AS(io::encode_nifti(Tensor<float, Cpu>::zeros({2, 0, 3}), {1, 1, 1}), Error);
  CHECK_THROWS_AS(io::encode_nifti(Tensor<uint8_t, Cpu>::zeros({1, 1, 40000}), {1, 1, 1}), Error);
  io::Affine bad = rotated_affine();
  bad[3][0] = 1;
  CHECK_THROWS_AS(io::encode_nifti(v, {0.5, 0.75, 2.0}, bad), Error);
  bad = rotated_affine();
  bad[0][3] = INFINITY;
  CHECK_THROWS_AS(io::encode_nifti(v, {0.5, 0.75, 2.0}, bad), Error);
  io::NiftiWriteOptions opts;
  opts.description = std::string(80, 'x');
  CHECK_THROWS_AS(io::encode_nifti(v, {1, 1, 1}, std::nullopt, opts), Error);
  opts = {};
  opts.sform_code = 6;
  CHECK_THROWS_AS(io::encode_nifti(v, {1, 1, 1}, std::nullopt, opts), Error);
  opts = {};
  opts.gzip_level = 11;
  CHECK_THROWS_AS(io::write_nifti(scratch_dir("x.nii.gz"), v, {1, 1, 1}, std::nullopt, opts), Error);
  CHECK_THROWS_AS(io::write_nifti(scratch_dir("x.img"), v, {1, 1, 1}), Error);
}

TEST_CASE("scaling follows nibabel: slope 0 or not finite means none", "[io][nifti]") {
  Tensor<int16_t, Cpu> v = Tensor<int16_t, Cpu>::empty({1, 2, 3});
  for (int64_t i = 0; i < v.numel(); ++i) v.data()[i] = int16_t(i * 100 - 200);
  const auto good = io::encode_nifti(v, {1, 1, 1});
  auto with = [&](float slope, float inter) {
    auto b = good;
    put<float>(b, 112, slope);
    put<float>(b, 116, inter);
    return io::NiftiFile::parse(b, "scaled.nii");
  };
  const io::NiftiFile s = with(0.5f, -1024.f);
  CHECK(s.header().has_scaling());
  CHECK(s.volume<float>().to_vector() == std::vector<float>{-1124, -1074, -1024, -974, -924, -874});
  CHECK(s.stored<int16_t>().to_vector() == v.to_vector());
  for (float slope : {0.f, NAN, INFINITY}) {
    const io::NiftiFile n = with(slope, 5.f);
    CHECK(!n.header().has_scaling());
    CHECK(testing::max_abs_diff(n.volume<float>(), v) == 0);
  }
  CHECK_THROWS_AS(with(2.f, NAN), Error);
}

TEST_CASE("damaged NIfTI input raises ctmllm::Error naming the file", "[io][nifti][errors]") {
  Tensor<int16_t, Cpu> v = Tensor<int16_t, Cpu>::empty({4, 3, 2});
  for (int64_t i = 0; i < v.numel(); ++i) v.data()[i] = int16_t(i);
  const auto good = io::encode_nifti(v, {1, 1, 1});
  REQUIRE_NOTHROW(io::NiftiFile::parse(good, "bad.nii"));
  // Each case edits a copy of the good file and must fail with a message holding `expect`.
  auto expect_error = [&](const std::string& what, const std::vector<std::byte>& bytes, const std::string& expect) {
    INFO(what);
    const std::string m = message_of([&] { io::NiftiFile::parse(bytes, "bad.nii"); });
    INFO(m);
    CHECK(m.find("bad.nii") != std::string::npos);
    CHECK(m.find(expect) != std::string::npos);
  };
  auto edited = [&](auto edit) {
    auto b = good;
    edit(b);
    return b;
  };
  expect_error("empty", {}, "too short");
  expect_error("truncated header", std::vector<std::byte>(good.begin(), good.begin() + 347), "too short");
  expect_error("truncated data", std::vector<std::byte>(good.begin(), good.end() - 1), "truncated");
  expect_error("sizeof_hdr", edited([](auto& b) { put<int32_t>(b, 0, 349); }), "sizeof_hdr");
  expect_error("magic", edited([](auto& b) { std::memcpy(b.data() + 344, "n+\x01\0", 4); }), "magic 'n+\\x01\\x00'");
  expect_error("pair", edited([](auto& b) { std::memcpy(b.data() + 344, "ni1\0", 4); }), ".hdr + .img");
  expect_error("nifti-2 magic in a nifti-1 header", edited([](auto& b) { std::memcpy(b.data() + 344, "n+2\0", 4); }),
               "magic");
  expect_error("dims past the data", edited([](auto& b) { put<int16_t>(b, 42, 3); }), "truncated");
  expect_error("negative dim", edited([](auto& b) { put<int16_t>(b, 44, -3); }), "dim[2] = -3");
  expect_error("zero dim", edited([](auto& b) { put<int16_t>(b, 46, 0); }), "dim[3] = 0");
  expect_error("dim[0] = 0", edited([](auto& b) { put<int16_t>(b, 40, 0); }), "dim[0]");
  expect_error("dim[0] = 8", edited([](auto& b) { put<int16_t>(b, 40, 8); }), "dim[0]");
  expect_error("unknown datatype", edited([](auto& b) { put<int16_t>(b, 70, 3); }), "unknown datatype code 3");
  expect_error("complex", edited([](auto& b) { put<int16_t>(b, 70, 32); }), "datatype 32 (complex64)");
  expect_error("rgb", edited([](auto& b) { put<int16_t>(b, 70, 128); }), "datatype 128 (RGB24)");
  expect_error("float128", edited([](auto& b) { put<int16_t>(b, 70, 1536); }), "float128");
  expect_error("vox_offset 0", edited([](auto& b) { put<float>(b, 108, 0.f); }), "vox_offset");
  expect_error("vox_offset in header", edited([](auto& b) { put<float>(b, 108, 200.f); }), "vox_offset");
  expect_error("vox_offset nan", edited([](auto& b) { put<float>(b, 108, NAN); }), "vox_offset");
  expect_error("vox_offset past end", edited([](auto& b) { put<float>(b, 108, 1e9f); }), "truncated");
  expect_error("pixdim nan", edited([](auto& b) { put<float>(b, 84, NAN); }), "pixdim[2]");
  expect_error("scl_inter inf", edited([](auto& b) { put<float>(b, 112, 2.f), put<float>(b, 116, INFINITY); }),
               "scl_inter");
  expect_error("sform nan", edited([](auto& b) { put<float>(b, 300, NAN); }), "sform");
  expect_error("qform norm", edited([](auto& b) {
                 put<int16_t>(b, 254, 0);
                 put<float>(b, 256, 0.9f), put<float>(b, 260, 0.9f);
               }), "quaternion");
  expect_error("qform overflow", edited([](auto& b) {
                 put<int16_t>(b, 254, 0);
                 put<float>(b, 268, INFINITY);
               }), "qform");

  auto v2 = inflated("example_nifti2.nii.gz");
  v2[9] = std::byte{0};  // "\r\0\x1a\n": an end-of-line conversion
  expect_error("nifti-2 eol", v2, "end-of-line");
  auto v2pair = inflated("example_nifti2.nii.gz");
  std::memcpy(v2pair.data() + 4, "ni2\0", 4);
  expect_error("nifti-2 pair", v2pair, ".hdr + .img");
  auto v2huge = inflated("example_nifti2.nii.gz");
  put<int32_t>(v2huge, 344, 0), put<int32_t>(v2huge, 348, 0);  // the pixdim fallback
  put<double>(v2huge, 112, 1e308);  // pixdim[1]: the x offset −(32 − 1)/2 · 1e308 overflows
  expect_error("fallback overflow", v2huge, "non-finite");

  const auto gz = io::gzip_compress(good);
  expect_error("truncated gzip", std::vector<std::byte>(gz.begin(), gz.end() - 10), "truncated gzip");
  auto corrupt = gz;
  corrupt[corrupt.size() - 5] ^= std::byte{0x10};  // the length trailer
  expect_error("corrupt gzip", corrupt, "corrupt gzip");
  CHECK_THROWS_AS(io::NiftiFile::parse(gz, "bomb.nii.gz", 100), Error);
  CHECK_THROWS_AS(io::NiftiFile(scratch_dir("missing.nii.gz")), Error);

  // Random header damage: an Error or a successful read, never a crash (run under ASan/UBSan too).
  uint64_t s = 12345;
  int errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto b = good;
    for (int k = 0; k < 1 + trial % 4; ++k) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      b[(s >> 33) % 352] = std::byte(s >> 13);
    }
    try {
      const io::NiftiFile f = io::NiftiFile::parse(b, "random.nii");
      for (int64_t t = 0; t < f.num_volumes(); ++t) f.volume<float>(t);
    } catch (const Error&) {
      ++errors;
    }
  }
  CHECK(errors > 0);
}
