// Tensor views, copies and their stride semantics; checked errors.
#include <numeric>
#include <vector>

#include "ctmllm/core.hpp"
#include "support/catch.hpp"

using namespace ctmllm;

namespace {
// 0, 1, 2, ... in a tensor of the given shape.
Tensor<float> iota(const Shape& s) {
  std::vector<float> v(size_t(s.numel()));
  std::iota(v.begin(), v.end(), 0.f);
  return Tensor<float>::from(v, s);
}
}  // namespace

TEST_CASE("allocation, shape and element access", "[core][tensor]") {
  auto t = Tensor<float>::zeros({2, 3, 4});
  CHECK(t.rank() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.strides() == Shape{12, 4, 1});
  CHECK(t.is_contiguous());
  t.at(1, 2, 3) = 5.f;
  CHECK(t.data()[23] == 5.f);
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % Cpu::alignment == 0);
  CHECK(Tensor<float>::full({2}, 1.5f).to_vector() == std::vector<float>{1.5f, 1.5f});
  CHECK(Tensor<float>::zeros({0, 3}).numel() == 0);
  CHECK(Tensor<float>::zeros({0, 3}).defined());
  CHECK_FALSE(Tensor<float>().defined());
}

TEST_CASE("views share storage and follow PyTorch stride rules", "[core][tensor]") {
  const auto t = iota({2, 3, 4});
  SECTION("slice") {
    auto s = t.slice(2, 1, 4, 2);  // t[:, :, 1:4:2]
    CHECK(s.shape() == Shape{2, 3, 2});
    CHECK(s.strides() == Shape{12, 4, 2});
    CHECK(s.at(1, 2, 1) == 1 * 12 + 2 * 4 + 3);
    CHECK(s.shares_storage_with(t));
    s.at(0, 0, 0) = -1.f;
    CHECK(t.at(0, 0, 1) == -1.f);
    CHECK(t.slice(0, -1, 2).at(0, 0, 0) == 12.f);  // negative start counts from the end
  }
  SECTION("select") {
    auto s = t.select(1, 2);
    CHECK(s.shape() == Shape{2, 4});
    CHECK(s.at(1, 3) == 12 + 8 + 3);
  }
  SECTION("permute and transpose") {
    auto p = t.permute({2, 0, 1});
    CHECK(p.shape() == Shape{4, 2, 3});
    CHECK(p.strides() == Shape{1, 12, 4});
    CHECK_FALSE(p.is_contiguous());
    CHECK(p.at(3, 1, 2) == t.at(1, 2, 3));
    CHECK(t.transpose(0, 2).at(3, 2, 1) == t.at(1, 2, 3));
  }
  SECTION("reshape is a view when possible and a copy otherwise") {
    auto r = t.reshape({6, -1});
    CHECK(r.shape() == Shape{6, 4});
    CHECK(r.shares_storage_with(t));
    // Splitting a dimension of a permuted tensor keeps a view (PyTorch computeStride).
    auto p = t.permute({1, 0, 2});  // [3, 2, 4], strides [4, 12, 1]
    auto v = p.reshape({3, 2, 2, 2});
    CHECK(v.shares_storage_with(t));
    CHECK(v.at(2, 1, 1, 0) == p.at(2, 1, 2));
    // Merging non-adjacent memory needs a copy.
    auto c = p.reshape({6, 4});
    CHECK_FALSE(c.shares_storage_with(t));
    CHECK(c.at(5, 3) == p.at(2, 1, 3));
    CHECK_THROWS_AS(p.view({6, 4}), Error);
    CHECK(t.flatten(1).shape() == Shape{2, 12});
  }
  SECTION("expand uses stride 0") {
    auto row = iota({1, 4});
    auto e = row.expand({3, -1});
    CHECK(e.shape() == Shape{3, 4});
    CHECK(e.strides()[0] == 0);
    CHECK(e.at(2, 3) == 3.f);
    auto e2 = iota({4}).expand({2, 3, 4});
    CHECK(e2.at(1, 2, 1) == 1.f);
    CHECK_THROWS_AS(row.expand({3, 5}), Error);
  }
  SECTION("squeeze and unsqueeze") {
    auto u = t.unsqueeze(1);
    CHECK(u.shape() == Shape{2, 1, 3, 4});
    CHECK(u.squeeze(1).shape() == t.shape());
    CHECK(t.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
    CHECK_THROWS_AS(t.squeeze(0), Error);
  }
  SECTION("contiguous copies only when needed") {
    CHECK(t.contiguous().data() == t.data());
    auto p = t.permute({2, 1, 0}).contiguous();
    CHECK(p.is_contiguous());
    CHECK_FALSE(p.shares_storage_with(t));
    CHECK(p.at(3, 2, 1) == t.at(1, 2, 3));
    auto c = t.clone();
    CHECK_FALSE(c.shares_storage_with(t));
    CHECK(c.to_vector() == t.to_vector());
  }
}

TEST_CASE("row_stride reads a view as rows of contiguous values", "[core][tensor]") {
  const auto t = Tensor<float>::zeros({2, 3, 8});
  CHECK(t.row_stride() == 8);
  CHECK(t.slice(2, 0, 4).row_stride() == 8);    // the first half of each row
  CHECK(t.slice(2, 4, 8).row_stride() == 8);
  CHECK(t.slice(1, 1, 2).row_stride() == 24);   // one row of each batch
  CHECK(t.slice(1, 0, 2).row_stride() == -1);   // rows 0, 1, then 3, 4: uneven steps
  CHECK(t.transpose(1, 2).row_stride() == -1);  // a row is not contiguous
  CHECK(Tensor<float>::zeros({8}).expand({5, 8}).row_stride() == 0);
  CHECK(Tensor<float>::zeros({4, 1}).expand({4, 6}).row_stride() == -1);
  CHECK(Tensor<float>::zeros({1, 1, 6}).row_stride() == 6);
}

TEST_CASE("memory_overlaps compares the address spans of two views", "[core][tensor]") {
  const auto t = Tensor<float>::zeros({4, 6});
  CHECK(t.memory_overlaps(t));
  CHECK(t.slice(0, 0, 2).memory_overlaps(t.slice(0, 1, 3)));
  CHECK_FALSE(t.slice(0, 0, 2).memory_overlaps(t.slice(0, 2, 4)));
  CHECK_FALSE(t.slice(1, 0, 6, 2).memory_overlaps(t.slice(1, 1, 6, 2)));  // interleaved columns
  CHECK(t.slice(1, 0, 6, 2).memory_overlaps(t.slice(1, 2, 6, 2)));
  CHECK(t.transpose(0, 1).memory_overlaps(t.select(0, 3)));  // other strides: the spans meet
  CHECK(t.transpose(0, 1).memory_overlaps(t));
  // The rows of a [layers, batch, ...] buffer interleave across layers without sharing an element.
  const auto cache = Tensor<float>::zeros({3, 4, 2, 5});
  CHECK_FALSE(cache.select(1, 0).memory_overlaps(cache.select(1, 2)));
  CHECK(cache.select(1, 2).memory_overlaps(cache.select(1, 2)));
  CHECK_FALSE(cache.select(1, 1).slice(2, 0, 3).memory_overlaps(cache.select(1, 1).slice(2, 3, 5)));
  CHECK(cache.select(1, 1).slice(2, 0, 3).memory_overlaps(cache.select(1, 1).slice(2, 2, 5)));
  CHECK(cache.select(1, 0).expand({2, 3, 2, 5}).memory_overlaps(cache.select(1, 0)) == true);
  CHECK_FALSE(t.memory_overlaps(Tensor<float>::zeros({4, 6})));
  CHECK_FALSE(t.slice(0, 0, 0).memory_overlaps(t));  // empty
  CHECK_FALSE(t.memory_overlaps(Tensor<float>()));
}

TEST_CASE("copy_from reads a source overlapping its destination as it was before the copy", "[core][tensor]") {
  // Contiguous views one element apart (the memcpy path).
  const auto x = Tensor<float>::from({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {10});
  x.slice(0, 1, 10).copy_from(x.slice(0, 0, 9));
  CHECK(x.to_vector() == std::vector<float>{0, 0, 1, 2, 3, 4, 5, 6, 7, 8});
  x.slice(0, 0, 9).copy_from(x.slice(0, 1, 10));
  CHECK(x.to_vector() == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 8});
  // A matrix transposed in place (the strided path).
  const auto m = Tensor<float>::from({0, 1, 2, 3, 4, 5, 6, 7, 8}, {3, 3});
  m.copy_from(m.transpose(0, 1));
  CHECK(m.to_vector() == std::vector<float>{0, 3, 6, 1, 4, 7, 2, 5, 8});
  m.copy_from(m);  // the same view: unchanged
  CHECK(m.to_vector() == std::vector<float>{0, 3, 6, 1, 4, 7, 2, 5, 8});
}

TEST_CASE("integer tensors and dtype conversion", "[core][tensor]") {
  auto i64 = Tensor<int64_t>::from({-3, 0, 7}, {3});
  CHECK(i64.dtype() == DType::I64);
  CHECK(i64.to<int32_t>().to_vector() == std::vector<int32_t>{-3, 0, 7});
  CHECK(i64.to<float>().to_vector() == std::vector<float>{-3.f, 0.f, 7.f});
  auto u8 = Tensor<uint8_t>::from({0, 200, 255}, {3});
  CHECK(u8.to<double>().at(2) == 255.0);
  // Strided source converts element by element.
  auto f = iota({2, 3}).transpose(0, 1).to<double>();
  CHECK(f.is_contiguous());
  CHECK(f.at(2, 1) == 5.0);
}

TEST_CASE("bad input raises ctmllm::Error naming shapes and dtypes", "[core][tensor][errors]") {
  auto t = Tensor<float>::zeros({2, 3});
  CHECK_THROWS_AS(Tensor<float>::zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}), Error);  // rank 9 > 8
  CHECK_THROWS_AS(t.at(2, 0), Error);
  CHECK_THROWS_AS(t.at(0), Error);
  CHECK_THROWS_AS(t.reshape({4, 2}), Error);
  CHECK_THROWS_AS(t.reshape({-1, -1}), Error);
  CHECK_THROWS_AS(t.permute({0, 0}), Error);
  CHECK_THROWS_AS(t.slice(1, 2, 5), Error);
  CHECK_THROWS_AS(t.transpose(0, 2), Error);
  CHECK_THROWS_AS(Tensor<float>::from({1.f, 2.f}, {3}), Error);
  try {
    t.at(5, 0);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("float32[2, 3]") != std::string::npos);
  }
  try {
    t.reshape({7});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("[7]") != std::string::npos);
  }
}

TEST_CASE("parallel_for covers the range once and rethrows errors", "[core][parallel]") {
  std::vector<int> hits(10000, 0);
  parallel_for(0, 10000, 10, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) ++hits[size_t(i)];
  });
  CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
  CHECK_THROWS_AS(parallel_for(0, 1000, 1, [](int64_t lo, int64_t) { if (lo > 500) fail("boom"); }), Error);
}

TEST_CASE("large host tensors reuse freed blocks up to the cache limit", "[core][allocator]") {
  HostAllocator& cache = host_allocator();
  const size_t limit = cache.max_cached();
  cache.set_max_cached(size_t(64) << 20);
  const int64_t n = int64_t(kHostCachedMinBytes / sizeof(float)) + 1000;  // just above the threshold
  const float* first = nullptr;
  {
    const Tensor<float> t = Tensor<float>::full({n}, 1.0f);
    first = t.data();
  }
  const AllocatorStats before = cache.stats();
  {
    const Tensor<float> again = Tensor<float>::empty({n - 10});  // the same size class: the freed block
    CHECK(again.data() == first);
    CHECK(cache.stats().cache_hits == before.cache_hits + 1);
    CHECK(cache.stats().device_allocations == before.device_allocations);
    const Tensor<float> small = Tensor<float>::empty({1000});  // below the threshold: malloc's
    CHECK(cache.stats().in_use == before.in_use + size_class(size_t(n - 10) * sizeof(float)));
  }
  cache.set_max_cached(0);  // nothing cached: every large block goes back when freed
  CHECK(cache.stats().reserved == cache.stats().in_use);
  {
    const Tensor<float> t = Tensor<float>::empty({n});
    CHECK(cache.stats().reserved == cache.stats().in_use);
  }
  CHECK(cache.stats().reserved == cache.stats().in_use);
  cache.set_max_cached(limit);
}
