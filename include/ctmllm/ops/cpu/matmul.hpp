#pragma once
// CPU kernels for matrix products: batched matmul over strided operands, and linear (y = x·wᵀ + b)
// with its backward. Float products run on a packed, register-blocked GEMM (AVX-512 or AVX2+FMA);
// double, skinny float products and builds without those ISAs run on Eigen, each matrix mapped in
// place (row-major when its rows are contiguous, column-major when its columns are, i.e. a
// transposed view), so transposes cost no copy and the product writes straight into the output.
// Either way each output element is summed by one thread in a fixed order, so results never depend
// on the thread count (only the number of tasks does).
#include <algorithm>
#include <type_traits>

#include <Eigen/Core>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cpu/reduce.hpp"

namespace ctmllm::ops::impl {

// A matrix in memory: rows×cols elements at p[i·rs + j·cs].
template <class T>
struct MatRef {
  T* p;
  int64_t rows, cols, rs, cs;
};

// Whether Eigen can map the matrix as it lies, row-major (unit column stride, rows that do not
// overlap) or column-major (the same, transposed).
inline bool row_mappable(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  return (cs == 1 || cols <= 1) && (rs >= cols || rows <= 1);
}
inline bool mappable(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  return row_mappable(rows, cols, rs, cs) || row_mappable(cols, rows, cs, rs);
}
// The same for the trailing two dimensions of t (rank >= 2); a contiguous copy when they are not.
template <class T>
Tensor<T, Cpu> mappable_or_copy(const Tensor<T, Cpu>& t) {
  const int r = t.rank();
  return mappable(t.size(r - 2), t.size(r - 1), t.stride(r - 2), t.stride(r - 1)) ? t : t.clone();
}

// Calls f with an Eigen::Map of m (which must be mappable).
template <class T, class F>
void with_map(const MatRef<const T>& m, F&& f) {
  using Dyn = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using DynCol = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  using Stride = Eigen::OuterStride<>;
  if (row_mappable(m.rows, m.cols, m.rs, m.cs)) {
    const int64_t outer = m.rows <= 1 ? m.cols : m.rs;
    f(Eigen::Map<const Dyn, Eigen::Unaligned, Stride>(m.p, m.rows, m.cols, Stride(std::max<int64_t>(outer, 1))));
  } else {
    const int64_t outer = m.cols <= 1 ? m.rows : m.cs;
    f(Eigen::Map<const DynCol, Eigen::Unaligned, Stride>(m.p, m.rows, m.cols, Stride(std::max<int64_t>(outer, 1))));
  }
}

// Output tile of one sequential Eigen product. Eigen's own threading splits a product by thread
// count, which changes the rounding (measured: 1 vs 2 threads differ bitwise); fixed tiles, each
// computed by one thread, do not. 480 rows: a multiple of every Eigen micro-kernel height.
inline constexpr int64_t kTileRows = 480, kTileCols = 512;

// c = a·b, or c += a·b when accumulate, on Eigen: the reference path, and the one for double,
// for skinny float products and for builds without AVX2/AVX-512. c row-major with unit column
// stride. Tiles are spread over the threads; inside a parallel region (a batch of products) they
// run in order on this thread.
template <class T>
void eigen_gemm(const MatRef<const T>& a, const MatRef<const T>& b, const MatRef<T>& c, bool accumulate) {
  using Dyn = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int64_t tiles_m = (c.rows + kTileRows - 1) / kTileRows, tiles_n = (c.cols + kTileCols - 1) / kTileCols;
  auto tile = [&](int64_t t) {
    const int64_t i0 = t / tiles_n * kTileRows, j0 = t % tiles_n * kTileCols;
    const int64_t m = std::min(kTileRows, c.rows - i0), n = std::min(kTileCols, c.cols - j0);
    Eigen::Map<Dyn, Eigen::Unaligned, Eigen::OuterStride<>> cm(c.p + i0 * c.rs + j0, m, n,
                                                               Eigen::OuterStride<>(std::max<int64_t>(c.rs, 1)));
    with_map(MatRef<const T>{a.p + i0 * a.rs, m, a.cols, a.rs, a.cs}, [&](const auto& am) {
      with_map(MatRef<const T>{b.p + j0 * b.cs, b.rows, n, b.rs, b.cs}, [&](const auto& bm) {
        if (accumulate) cm.noalias() += am * bm;
        else cm.noalias() = am * bm;
      });
    });
  };
  const int64_t tiles = tiles_m * tiles_n;
#if defined(_OPENMP)
  // Eigen splits a product over threads only when called outside a parallel region; calling it
  // from inside one (even for a single tile) keeps every tile sequential and reproducible.
  if (!omp_in_parallel() && tiles > 0) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) tile(t);
    return;
  }
#endif
  for (int64_t t = 0; t < tiles; ++t) tile(t);
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
// Packed float GEMM (the BLIS scheme): per depth block of kSgemmKC, A is packed into panels of kMR
// rows and B into panels of kNR columns, zero-padded at the edges, and a register-blocked
// micro-kernel computes each kMR×kNR tile of C in vector accumulators. Why not Eigen: on the 2-core
// Zen 4 build machine Eigen 3.4 reaches ~77 GFLOP/s per core on 2048×768×3072, PyTorch (MKL) ~90,
// this kernel ~95. Each element of C is Σ over depth blocks in order, each block summed over k in
// order, so the split of tiles over threads never changes a bit.
#if defined(__AVX512F__)
inline constexpr int64_t kMR = 12, kNR = 32;  // 24 zmm accumulators
using SgemmVec = __m512;
inline SgemmVec sgemm_zero() { return _mm512_setzero_ps(); }
inline SgemmVec sgemm_load(const float* p) { return _mm512_load_ps(p); }
inline SgemmVec sgemm_loadu(const float* p) { return _mm512_loadu_ps(p); }
inline void sgemm_storeu(float* p, SgemmVec v) { _mm512_storeu_ps(p, v); }
inline SgemmVec sgemm_fma(float a, SgemmVec b, SgemmVec c) { return _mm512_fmadd_ps(_mm512_set1_ps(a), b, c); }
inline SgemmVec sgemm_add(SgemmVec a, SgemmVec b) { return _mm512_add_ps(a, b); }
// bf16 -> float is a zero-extension and a 16-bit shift.
inline SgemmVec sgemm_loadu_widened(const bf16* p) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
#else
inline constexpr int64_t kMR = 6, kNR = 16;  // 12 ymm accumulators
using SgemmVec = __m256;
inline SgemmVec sgemm_zero() { return _mm256_setzero_ps(); }
inline SgemmVec sgemm_load(const float* p) { return _mm256_load_ps(p); }
inline SgemmVec sgemm_loadu(const float* p) { return _mm256_loadu_ps(p); }
inline void sgemm_storeu(float* p, SgemmVec v) { _mm256_storeu_ps(p, v); }
inline SgemmVec sgemm_fma(float a, SgemmVec b, SgemmVec c) { return _mm256_fmadd_ps(_mm256_set1_ps(a), b, c); }
inline SgemmVec sgemm_add(SgemmVec a, SgemmVec b) { return _mm256_add_ps(a, b); }
inline SgemmVec sgemm_loadu_widened(const bf16* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
#endif
inline SgemmVec sgemm_loadu_widened(const float* p) { return sgemm_loadu(p); }
inline constexpr int64_t kLanes = int64_t(sizeof(SgemmVec) / sizeof(float)), kNV = kNR / kLanes;
inline constexpr int64_t kSgemmKC = 256;                   // depth block: a B panel is kc·kNR floats
inline constexpr int64_t kColPanels = 16;  // column panels per task: its packed B block (kc·kNR·16 floats) in L2

// c[kMR×kNR] (row stride ldc) = Σ_k a[k·kMR + i]·b[k·kNR + j], added onto c when accumulate.
inline void sgemm_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  SgemmVec acc[kMR][kNV];
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[i][v] = sgemm_zero();
  for (int64_t k = 0; k < kc; ++k) {
    SgemmVec bv[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) bv[v] = sgemm_load(b + k * kNR + v * kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[i][v] = sgemm_fma(a[k * kMR + i], bv[v], acc[i][v]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      float* p = c + i * ldc + v * kLanes;
      sgemm_storeu(p, accumulate ? sgemm_add(sgemm_loadu(p), acc[i][v]) : acc[i][v]);
    }
}

// v[0..kLanes) as the rows of a kLanes×kLanes block, transposed in registers (unpack, then swap
// 64-bit pairs, then 128-bit lanes): v[j] ends up holding element j of every former row.
#if defined(__AVX512F__)
inline void sgemm_transpose(SgemmVec v[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);  // per 128-bit lane: r_i[0] r_i+1[0] r_i[1] r_i+1[1]
    t[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
  }
  __m512 u[16];  // u[4g + c], per 128-bit lane l: column 4l + c of rows 4g..4g+3
  for (int g = 0; g < 4; ++g) {
    const __m512d lo0 = _mm512_castps_pd(t[4 * g]), lo1 = _mm512_castps_pd(t[4 * g + 2]);
    const __m512d hi0 = _mm512_castps_pd(t[4 * g + 1]), hi1 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
  }
  for (int c = 0; c < 4; ++c) {  // gather lane l of u[c], u[4 + c], u[8 + c], u[12 + c]: column 4l + c
    const __m512 even01 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), even23 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 odd01 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD), odd23 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    v[c] = _mm512_shuffle_f32x4(even01, even23, 0x88);
    v[c + 8] = _mm512_shuffle_f32x4(even01, even23, 0xDD);
    v[c + 4] = _mm512_shuffle_f32x4(odd01, odd23, 0x88);
    v[c + 12] = _mm512_shuffle_f32x4(odd01, odd23, 0xDD);
  }
}
// The first `width` lanes of v to p.
inline void sgemm_store_lanes(float* p, SgemmVec v, int64_t width) {
  if (width == 16) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, __mmask16((1u << width) - 1), v);
}
#else
inline void sgemm_transpose(SgemmVec v[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);  // per 128-bit lane: r_i[0] r_i+1[0] r_i[1] r_i+1[1]
    t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
  }
  for (int g = 0; g < 2; ++g) {  // u[4g + c], per 128-bit lane l: column 4l + c of rows 4g..4g+3
    u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    v[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    v[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}
inline void sgemm_store_lanes(float* p, SgemmVec v, int64_t width) {
  if (width == 8) return _mm256_storeu_ps(p, v);
  alignas(32) int32_t mask[8];
  for (int64_t i = 0; i < 8; ++i) mask[i] = i < width ? -1 : 0;
  _mm256_maskstore_ps(p, _mm256_load_si256(reinterpret_cast<const __m256i*>(mask)), v);
}
#endif

// The packers read float or bf16 sources (S) and write float panels.
// dst[k·ld + r] = src[r·stride + k] for k < kc and r < width (≤ kLanes), 0 for rows ≥ `rows`: up to
// kLanes source rows read along k and written k-major, a kLanes×kLanes block at a time.
template <class S>
void sgemm_pack_transposed(const S* src, int64_t stride, int64_t rows, int64_t kc, float* dst, int64_t ld, int64_t width) {
  int64_t k = 0;
  for (; k + kLanes <= kc; k += kLanes) {
    SgemmVec v[kLanes];
    for (int64_t r = 0; r < kLanes; ++r) v[r] = r < rows ? sgemm_loadu_widened(src + r * stride + k) : sgemm_zero();
    sgemm_transpose(v);
    for (int64_t j = 0; j < kLanes; ++j) sgemm_store_lanes(dst + (k + j) * ld, v[j], width);
  }
  for (; k < kc; ++k)
    for (int64_t r = 0; r < width; ++r) dst[k * ld + r] = r < rows ? float(src[r * stride + k]) : 0.0f;
}
// dst[k·W + r] = src[k·stride + r] for k < kc and r < W, 0 for r ≥ `count`: rows of `count`
// contiguous values copied into rows of W (a compile-time width: full rows become a few vector
// moves, where a memcpy call per row cost more than the copy).
template <int64_t W, class S>
void sgemm_pack_rows(const S* src, int64_t stride, int64_t count, int64_t kc, float* dst) {
  if (count == W) {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t r = 0; r < W; ++r) dst[k * W + r] = float(src[k * stride + r]);
    return;
  }
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t r = 0; r < W; ++r) dst[k * W + r] = r < count ? float(src[k * stride + r]) : 0.0f;
}

// Panel of rows [i0, i0 + kMR) × depth [p0, p0 + kc) of a as dst[k·kMR + i]; rows past the end are 0.
// mappable_or_copy leaves a unit stride on one side: rows along k (transposed into the panel) or
// columns along i (copied).
inline void sgemm_pack_a(const MatRef<const float>& a, int64_t i0, int64_t p0, int64_t kc, float* dst) {
  const int64_t mr = std::min(kMR, a.rows - i0);
  const float* src = a.p + i0 * a.rs + p0 * a.cs;
  if (a.cs == 1) return sgemm_pack_transposed(src, a.rs, mr, kc, dst, kMR, kMR);
  if (a.rs == 1) return sgemm_pack_rows<kMR>(src, a.cs, mr, kc, dst);
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t i = 0; i < kMR; ++i) dst[k * kMR + i] = i < mr ? src[i * a.rs + k * a.cs] : 0.0f;
}
// Panel of columns [j0, j0 + kNR) × depth [p0, p0 + kc) of b as dst[k·kNR + j]; columns past the end are 0.
// Rows of b along j are copied; columns along k (bᵀ of a row-major weight) are transposed kLanes
// columns at a time.
template <class S>
void sgemm_pack_b(const MatRef<const S>& b, int64_t j0, int64_t p0, int64_t kc, float* dst) {
  const int64_t nr = std::min(kNR, b.cols - j0);
  const S* src = b.p + p0 * b.rs + j0 * b.cs;
  if (b.cs == 1) return sgemm_pack_rows<kNR>(src, b.rs, nr, kc, dst);
  if (b.rs == 1) {
    // The next panel's rows are fetched while this one is transposed: each is a short run (kc
    // values) that the hardware prefetcher barely starts on (bf16 prefill of Qwen2.5-0.5B: -7 %).
    if (j0 + 2 * kNR <= b.cols) {
      const char* next = reinterpret_cast<const char*>(src + kNR * b.cs);
      const int64_t row_bytes = kc * int64_t(sizeof(S)), stride_bytes = b.cs * int64_t(sizeof(S));
      for (int64_t r = 0; r < kNR; ++r)
        for (int64_t off = 0; off < row_bytes; off += 64) _mm_prefetch(next + r * stride_bytes + off, _MM_HINT_T1);
    }
    for (int64_t v = 0; v < kNV; ++v)
      sgemm_pack_transposed(src + v * kLanes * b.cs, b.cs, std::clamp<int64_t>(nr - v * kLanes, 0, kLanes), kc,
                            dst + v * kLanes, kNR, kLanes);
    return;
  }
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t j = 0; j < kNR; ++j) dst[k * kNR + j] = j < nr ? float(src[k * b.rs + j * b.cs]) : 0.0f;
}

// Calls f(t) for t in [0, n), handing tasks to whichever thread is free: under load from other
// processes a stalled thread then holds up nothing (static chunks would wait for it).
template <class F>
void dynamic_for(int64_t n, F&& f) {
#if defined(_OPENMP)
  if (n > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < n; ++t) f(t);
    return;
  }
#endif
  for (int64_t t = 0; t < n; ++t) f(t);
}

// Row panels per task at most: the task's A panels for one depth block (64·kMR·kSgemmKC floats,
// 768 KiB) and its packed B block (512 KiB) stay in L2 together.
inline constexpr int64_t kGroupPanels = 64;

// c = a·b or c += a·b for a float product with at least one full kMR×kNR tile. A is packed once,
// whole (depth block q of panel i at (q·mp + i)·kMR·kSgemmKC). Each task covers a group of row
// panels × a block of kColPanels column panels and, per depth block, packs its B block into its own
// buffer and runs the group's tiles over it: B's packed copy never leaves L2, where packing B
// whole up front wrote it out to memory and read it back once per row group (measured on
// 256×4096×4096: packing B was a fifth of the time). A B block is packed once per row group, so
// groups are as tall as L2 allows, split further only to give every thread work. B may be bf16
// (llm/bf16_linear.hpp's prefill): its panels are widened to float as they are packed.
template <class S>
void sgemm_packed(const MatRef<const float>& a, const MatRef<const S>& b, const MatRef<float>& c, bool accumulate) {
  const int64_t m = c.rows, n = c.cols, depth = a.cols;
  if (depth == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill_n(c.p + i * c.rs, n, 0.0f);
    return;
  }
  const int64_t mp = (m + kMR - 1) / kMR, np = (n + kNR - 1) / kNR, nq = (depth + kSgemmKC - 1) / kSgemmKC;
  const auto a_buf = Cpu::allocate(size_t(nq * mp * kMR * kSgemmKC) * sizeof(float));
  float* ap = reinterpret_cast<float*>(a_buf.get());
  dynamic_for(nq * mp, [&](int64_t t) {
    const int64_t q = t / mp, i = t % mp, p0 = q * kSgemmKC;
    sgemm_pack_a(a, i * kMR, p0, std::min(kSgemmKC, depth - p0), ap + t * kMR * kSgemmKC);
  });
  const int64_t col_blocks = (np + kColPanels - 1) / kColPanels;
  int64_t groups = (mp + kGroupPanels - 1) / kGroupPanels;
  while (groups < mp && groups * col_blocks < 2 * num_threads()) ++groups;
  dynamic_for(groups * col_blocks, [&](int64_t t) {
    const int64_t g = t / col_blocks, jb = t % col_blocks;
    const int64_t ip0 = mp * g / groups, ip1 = mp * (g + 1) / groups;
    const int64_t jp0 = jb * kColPanels, jp1 = std::min(np, jp0 + kColPanels);
    const auto b_buf = Cpu::allocate(size_t((jp1 - jp0) * kNR * std::min(kSgemmKC, depth)) * sizeof(float));
    float* bp = reinterpret_cast<float*>(b_buf.get());
    alignas(64) float edge[kMR * kNR];
    for (int64_t q = 0; q < nq; ++q) {
      const int64_t p0 = q * kSgemmKC, kc = std::min(kSgemmKC, depth - p0);
      const bool add = accumulate || q > 0;
      for (int64_t jp = jp0; jp < jp1; ++jp) sgemm_pack_b(b, jp * kNR, p0, kc, bp + (jp - jp0) * kNR * kc);
      for (int64_t ip = ip0; ip < ip1; ++ip)
        for (int64_t jp = jp0; jp < jp1; ++jp) {
          const float* pa = ap + (q * mp + ip) * kMR * kSgemmKC;
          const float* pb = bp + (jp - jp0) * kNR * kc;
          const int64_t i0 = ip * kMR, j0 = jp * kNR, mr = std::min(kMR, m - i0), nr = std::min(kNR, n - j0);
          float* pc = c.p + i0 * c.rs + j0;
          if (mr == kMR && nr == kNR) {
            sgemm_kernel(kc, pa, pb, pc, c.rs, add);
          } else {  // edge tile: through a full-size buffer, rounding exactly as above (c + Σ)
            sgemm_kernel(kc, pa, pb, edge, kNR, false);
            for (int64_t i = 0; i < mr; ++i)
              for (int64_t j = 0; j < nr; ++j) pc[i * c.rs + j] = add ? pc[i * c.rs + j] + edge[i * kNR + j] : edge[i * kNR + j];
          }
        }
    }
  });
}
#endif

// 16-bit floats (bf16, half): operands widened to float, products summed in float, each output
// rounded once (c + a·b when accumulating), as torch's CPU matmul does for these types.
template <class T>
void gemm_widened(const MatRef<const T>& a, const MatRef<const T>& b, const MatRef<T>& c, bool accumulate);

// c = a·b, or c += a·b when accumulate; c row-major with unit column stride.
template <class T>
void gemm(const MatRef<const T>& a, const MatRef<const T>& b, const MatRef<T>& c, bool accumulate) {
  if constexpr (!std::is_floating_point_v<T>) {
    return gemm_widened(a, b, c, accumulate);
  } else {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  if constexpr (std::is_same_v<T, float>) {
    if (c.rows >= kMR && c.cols >= kNR) return sgemm_packed(a, b, c, accumulate);
  }
#endif
  eigen_gemm(a, b, c, accumulate);
  }
}

template <class T>
void gemm_widened(const MatRef<const T>& a, const MatRef<const T>& b, const MatRef<T>& c, bool accumulate) {
  auto widen = [](const MatRef<const T>& m) {
    Tensor<float, Cpu> w = Tensor<float, Cpu>::empty(Shape{m.rows, m.cols});  // Shape{}: nvcc mis-emits a bare {} here
    float* pw = w.data();
    for (int64_t i = 0; i < m.rows; ++i)
      for (int64_t j = 0; j < m.cols; ++j) pw[i * m.cols + j] = float(m.p[i * m.rs + j * m.cs]);
    return w;
  };
  const Tensor<float, Cpu> aw = widen(a), bw = widen(b);
  Tensor<float, Cpu> cw = Tensor<float, Cpu>::empty(Shape{c.rows, c.cols});
  gemm(MatRef<const float>{aw.data(), a.rows, a.cols, a.cols, 1}, MatRef<const float>{bw.data(), b.rows, b.cols, b.cols, 1},
       MatRef<float>{cw.data(), c.rows, c.cols, c.cols, 1}, false);
  const float* pc = cw.data();
  for (int64_t i = 0; i < c.rows; ++i)
    for (int64_t j = 0; j < c.cols; ++j) {
      T& out = c.p[i * c.rs + j];
      out = cast<T>(accumulate ? float(out) + pc[i * c.cols + j] : pc[i * c.cols + j]);
    }
}

// c[i] = a[i]·b[i] for each batch index i: a [batch..., M, K] and b [batch..., K, N] with any strides
// (stride 0 along broadcast batch dimensions), c contiguous [batch..., M, N].
template <class T>
void matmul(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b, const Tensor<T, Cpu>& c) {
  const int r = c.rank();
  const int64_t m = c.size(r - 2), n = c.size(r - 1), k = a.size(r - 1);
  const Tensor<T, Cpu> am = mappable_or_copy(a), bm = mappable_or_copy(b);
  Shape batch, a_st, b_st;
  for (int d = 0; d < r - 2; ++d) {
    batch.push_back(c.size(d));
    a_st.push_back(am.stride(d));
    b_st.push_back(bm.stride(d));
  }
  auto one = [&](int64_t i) {
    gemm(MatRef<const T>{am.data() + strided_offset(i, batch, a_st), m, k, am.stride(r - 2), am.stride(r - 1)},
         MatRef<const T>{bm.data() + strided_offset(i, batch, b_st), k, n, bm.stride(r - 2), bm.stride(r - 1)},
         MatRef<T>{c.data() + i * m * n, m, n, n, 1}, false);
  };
  // Spread over the batch when it has work for every thread; otherwise each product spreads its tiles.
  const int64_t nb = batch.numel();
  if (nb >= num_threads() || m * n <= kTileRows * kTileCols) {
    parallel_for(0, nb, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < nb; ++i) one(i);
  }
}

// y = x·wᵀ + b: x [n, in], w [out, in] (any strides), b [out] or undefined, y contiguous [n, out].
template <class T>
void linear(const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& b, const Tensor<T, Cpu>& y) {
  const Tensor<T, Cpu> xm = mappable_or_copy(x), wm = mappable_or_copy(w);
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  if (b.defined()) {  // start from the bias, then let the GEMM accumulate onto it
    const T* pb = b.data();
    const int64_t bs = b.stride(0);
    T* py = y.data();
    parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(out, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        for (int64_t j = 0; j < out; ++j) py[i * out + j] = pb[j * bs];
    });
  }
  gemm(MatRef<const T>{xm.data(), n, in, xm.stride(0), xm.stride(1)},
       MatRef<const T>{wm.data(), in, out, wm.stride(1), wm.stride(0)},  // wᵀ: a view, not a copy
       MatRef<T>{y.data(), n, out, out, 1}, b.defined());
}

// dx = dy·w [n, in], dw = dyᵀ·x [out, in], db = Σ_rows dy [out]: each computed only when its output
// is defined (contiguous). dy [n, out], x [n, in], w [out, in]: any strides.
template <class T>
void linear_backward(const Tensor<T, Cpu>& dy, const Tensor<T, Cpu>& x, const Tensor<T, Cpu>& w, const Tensor<T, Cpu>& dx,
                     const Tensor<T, Cpu>& dw, const Tensor<T, Cpu>& db) {
  const Tensor<T, Cpu> g = mappable_or_copy(dy);
  const int64_t n = g.size(0), out = g.size(1);
  if (dx.defined()) {
    const Tensor<T, Cpu> wm = mappable_or_copy(w);
    gemm(MatRef<const T>{g.data(), n, out, g.stride(0), g.stride(1)},
         MatRef<const T>{wm.data(), out, wm.size(1), wm.stride(0), wm.stride(1)},
         MatRef<T>{dx.data(), n, dx.size(1), dx.size(1), 1}, false);
  }
  if (dw.defined()) {
    const Tensor<T, Cpu> xm = mappable_or_copy(x);
    gemm(MatRef<const T>{g.data(), out, n, g.stride(1), g.stride(0)},  // dyᵀ: a view
         MatRef<const T>{xm.data(), n, xm.size(1), xm.stride(0), xm.stride(1)},
         MatRef<T>{dw.data(), out, dw.size(1), dw.size(1), 1}, false);
  }
  if (db.defined()) {
    std::array<bool, kMaxRank> rows{};
    rows[0] = true;
    sum(g, rows, acc_t<T>(1), db);
  }
}

}  // namespace ctmllm::ops::impl
