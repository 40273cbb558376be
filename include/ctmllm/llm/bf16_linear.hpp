#pragma once
// Inference kernels over bf16-stored weights with float activations and float accumulation, so a
// model's weights take half the memory (Llama-3.1-8B: 16 GB) and decode reads half the bytes.
//
// linear_bf16: y [n, out] = x [n, in] · wᵀ + b, w bf16 [out, in]. From kPackedGemmRows rows of x on
// (prefill) it runs on the packed float GEMM of ops/cpu/matmul.hpp, which widens w to float as it
// packs it. Fewer rows (decode) run on a register-blocked kernel over
// tiles of kTileW weight rows × kTileX rows of x, one vector accumulator per output along `in`. Each
// weight vector is converted bf16 -> float once in registers for kTileX rows, each x vector used for
// kTileW rows, and neither operand is packed or transposed. Weight rows go in blocks that stay in L2
// while every group of x rows passes over them. Decode (a few rows: one token per row of
// the batch, beams included) is memory-bound and reads each weight once per group of kTileX rows;
// the same tiles serve it better than a one-row-at-a-time GEMV, whose per-weight conversion and
// x loads made 3 rows compute-bound (Qwen2.5-0.5B shape, one thread: batch-3 step 119-122 -> 61-62 ms,
// batch 1 55-60 -> 54 ms; docs/BENCHMARKS.md). Columns are split over the threads; each output is summed by one
// thread in a fixed order, so results do not depend on the thread count.
//
// linear_bf16_reference: the same product as plain loops, for builds without AVX2/AVX-512 and for
// the tests.
//
// linear_bf16_backward_input: dx = dy · w, the input gradient through the frozen weight.
//
// At the end, the same products on Cpu tensors: the device-generic calls of llm/weights.hpp, whose
// Cuda overloads are in llm/cuda/bf16_linear.cuh.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "ctmllm/core/parallel.hpp"
#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/cpu/embedding.hpp"
#include "ctmllm/ops/cpu/matmul.hpp"

namespace ctmllm::llm::kernels {

inline constexpr int64_t kBlockRows = 128;  // weight rows converted per block by the backward pass

inline float bf16_bits_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

// x [n, in], w [out, in] (bf16 bits), b [out] or null, y [n, out]: all contiguous. Each output is a
// dot product summed in order.
inline void linear_bf16_reference(const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out,
                                  const float* b, float* y) {
  parallel_for(0, out, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o)
      for (int64_t r = 0; r < n; ++r) {
        float s = 0.0f;
        for (int64_t k = 0; k < in; ++k) s += x[r * in + k] * bf16_bits_to_float(w[o * in + k]);
        y[r * out + o] = s + (b ? b[o] : 0.0f);
      }
  });
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
using ops::impl::kLanes;
using ops::impl::SgemmVec;
#if defined(__AVX512F__)
inline constexpr int kTileW = 4, kTileX = 4;  // 16 zmm accumulators + 4 weight vectors
inline SgemmVec fmadd(SgemmVec a, SgemmVec b, SgemmVec c) { return _mm512_fmadd_ps(a, b, c); }
inline float lane_sum(SgemmVec v) { return _mm512_reduce_add_ps(v); }
#else
// 9 ymm accumulators + 3 weight vectors + 1 x vector of the 16 registers. Against 4×2 tiles (batch 3
// then ran a 2-row and a 1-row tile, converting every weight twice), one-thread decode at batch 3 of
// Qwen2.5-0.5B's shape went 92-94 -> 69-72 ms, batch 1 unchanged; 4×3 tiles (x read from memory
// by every FMA, 12 accumulators) were no faster than 4×2.
inline constexpr int kTileW = 3, kTileX = 3;
inline SgemmVec fmadd(SgemmVec a, SgemmVec b, SgemmVec c) { return _mm256_fmadd_ps(a, b, c); }
inline float lane_sum(SgemmVec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif
// Weight bytes per block: a block stays in L2 (1 MiB on Zen 4, 256 KiB and more elsewhere) while
// every group of x rows passes over it.
inline constexpr int64_t kBlockBytes = 192 * 1024;

// s[r][j] = x_r · w_j for NR rows of x (stride in) and NW consecutive bf16 weight rows from w: each
// converted weight vector feeds NR FMAs, each x vector NW. With NW > 1 the NW·in weights from `ahead`
// (the tile after next: decode's lm_head 7-10 % faster at 1 row than the next tile, 2 % at 3 rows;
// further is slower) are prefetched in address order: the hardware prefetcher loses NW interleaved
// streams that restart at every row end.
template <int NW, int NR>
inline void tile(const float* x, int64_t in, const uint16_t* w, const uint16_t* ahead, float (&s)[kTileX][kTileW]) {
  const int64_t body = in - in % kLanes;
  SgemmVec acc[NR][NW];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NW; ++j) acc[r][j] = ops::impl::sgemm_zero();
  for (int64_t k = 0; k < body; k += kLanes) {
    SgemmVec wv[NW];
#pragma GCC unroll 4
    for (int j = 0; j < NW; ++j) {
      if constexpr (NW > 1) _mm_prefetch(reinterpret_cast<const char*>(ahead + NW * k + j * kLanes), _MM_HINT_T2);
      wv[j] = ops::impl::sgemm_loadu_widened(reinterpret_cast<const bf16*>(w + j * in + k));
    }
    // Unrolled so the accumulators stay in registers.
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const SgemmVec xv = ops::impl::sgemm_loadu(x + r * in + k);
#pragma GCC unroll 4
      for (int j = 0; j < NW; ++j) acc[r][j] = fmadd(xv, wv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int j = 0; j < NW; ++j) {
      float t = lane_sum(acc[r][j]);
      for (int64_t k = body; k < in; ++k) t += x[r * in + k] * bf16_bits_to_float(w[j * in + k]);
      s[r][j] = t;
    }
}

// The same for nr <= kTileX rows of x.
template <int NW>
inline void tile_rows(int64_t nr, const float* x, int64_t in, const uint16_t* w, const uint16_t* ahead,
                      float (&s)[kTileX][kTileW]) {
  switch (nr) {  // kTileX is 3 or 4
    case 1: tile<NW, 1>(x, in, w, ahead, s); break;
    case 2: tile<NW, 2>(x, in, w, ahead, s); break;
    case 3: tile<NW, 3>(x, in, w, ahead, s); break;
    default: tile<NW, kTileX>(x, in, w, ahead, s); break;
  }
}

// y[:, o0:o1] for all n rows of x.
inline void linear_cols(const float* x, int64_t n, int64_t in, const uint16_t* w, const float* b, float* y,
                        int64_t out, int64_t o0, int64_t o1) {
  const int64_t block = std::max<int64_t>(kTileW, kBlockBytes / (2 * std::max<int64_t>(in, 1)) / kTileW * kTileW);
  const int64_t nw_tile = out < kTileW ? 1 : kTileW;
  float s[kTileX][kTileW];
  for (int64_t c0 = o0; c0 < o1; c0 += block) {
    const int64_t c1 = std::min(o1, c0 + block);
    for (int64_t r0 = 0; r0 < n; r0 += kTileX) {
      const int64_t nr = std::min<int64_t>(kTileX, n - r0);
      const float* xr = x + r0 * in;
      for (int64_t o = c0; o < c1; o += nw_tile) {
        // A tile that would pass the last weight row starts earlier; its first results are dropped.
        const int64_t start = std::min(o, out - nw_tile), first = o - start;
        const uint16_t* ahead = w + std::min(o + 2 * nw_tile, out - nw_tile) * in;
        if (nw_tile == kTileW) tile_rows<kTileW>(nr, xr, in, w + start * in, ahead, s);
        else tile_rows<1>(nr, xr, in, w + start * in, ahead, s);
        const int64_t nwv = std::min(nw_tile - first, c1 - o);
        for (int64_t r = 0; r < nr; ++r)
          for (int64_t j = 0; j < nwv; ++j) y[(r0 + r) * out + o + j] = s[r][first + j] + (b ? b[o + j] : 0.0f);
      }
    }
  }
}

// From this many rows of x on (prefill), linear_bf16 runs on the packed float GEMM of
// ops/cpu/matmul.hpp, the weights widened as its B panels are packed: its 12×32 register tiles
// reuse every loaded value more than the tiles above, which pay for it in horizontal sums. Measured
// (Qwen2.5-0.5B's projections, AVX-512): even at 32 rows, the GEMM 1.2-1.5x faster from 64 on.
inline constexpr int64_t kPackedGemmRows = 48;

inline ops::impl::MatRef<const bf16> bf16_matrix(const uint16_t* w, int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  return {reinterpret_cast<const bf16*>(w), rows, cols, rs, cs};
}
#endif

// x [n, in], w [out, in] (bf16 bits), b [out] or null, y [n, out]: all contiguous.
inline void linear_bf16(const float* x, int64_t n, int64_t in, const uint16_t* w, int64_t out, const float* b,
                        float* y) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  if (n >= kPackedGemmRows && out >= ops::impl::kNR) {
    ops::impl::sgemm_packed(ops::impl::MatRef<const float>{x, n, in, in, 1}, bf16_matrix(w, in, out, 1, in),
                            ops::impl::MatRef<float>{y, n, out, out, 1}, false);
    if (b)
      parallel_for(0, n, std::max<int64_t>(1, 16384 / out), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r)
          for (int64_t o = 0; o < out; ++o) y[r * out + o] += b[o];
      });
    return;
  }
  // At least 64 weight rows (>= 100 KB) per task; parallel_for makes up to 4 tasks per thread, so
  // small projections still split evenly.
  parallel_for(0, out, 64, [&](int64_t lo, int64_t hi) { linear_cols(x, n, in, w, b, y, out, lo, hi); });
#else
  linear_bf16_reference(x, n, in, w, out, b, y);
#endif
}

// dx [n, in] = dy [n, out] · w, w bf16 [out, in]: the input gradient of linear_bf16, for training
// through a frozen bf16 weight (no weight gradient). On AVX2/AVX-512 the packed float GEMM widens w
// as it packs it. Otherwise (and below one 12×32 tile) work items are tiles of kBackwardRows rows of
// dy by kBackwardCols columns of dx; each converts kBlockRows × kBackwardCols tiles of w to float and
// accumulates dy[:, rows] · tile over the rows of w in order, on Eigen. Either way every dx element
// is summed by one thread in a fixed order and the result does not depend on the thread count.
inline constexpr int64_t kBackwardRows = 256;
inline constexpr int64_t kBackwardCols = 256;

inline void linear_bf16_backward_input(const float* dy, int64_t n, int64_t out, const uint16_t* w, int64_t in,
                                       float* dx) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  if (n >= ops::impl::kMR && in >= ops::impl::kNR)
    return ops::impl::sgemm_packed(ops::impl::MatRef<const float>{dy, n, out, out, 1}, bf16_matrix(w, out, in, in, 1),
                                   ops::impl::MatRef<float>{dx, n, in, in, 1}, false);
#endif
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  const int64_t row_tiles = (n + kBackwardRows - 1) / kBackwardRows, col_tiles = (in + kBackwardCols - 1) / kBackwardCols;
  auto tile = [&](int64_t t, std::vector<float>& scratch) {
    const int64_t r0 = (t / col_tiles) * kBackwardRows, c0 = (t % col_tiles) * kBackwardCols;
    const int64_t rows = std::min(kBackwardRows, n - r0), cols = std::min(kBackwardCols, in - c0);
    const Eigen::Map<const RowMat> dym(dy + r0 * out, rows, out);
    Eigen::Map<RowMat, Eigen::Unaligned, Stride> dxb(dx + r0 * in + c0, rows, cols, Stride(in));
    dxb.setZero();
    for (int64_t o0 = 0; o0 < out; o0 += kBlockRows) {
      const int64_t wr = std::min(kBlockRows, out - o0);
      for (int64_t r = 0; r < wr; ++r) {
        const uint16_t* src = w + (o0 + r) * in + c0;
        for (int64_t c = 0; c < cols; ++c) scratch[size_t(r * cols + c)] = bf16_bits_to_float(src[c]);
      }
      const Eigen::Map<const RowMat> wb(scratch.data(), wr, cols);
      dxb.noalias() += dym.middleCols(o0, wr) * wb;
    }
  };
  const int64_t tiles = row_tiles * col_tiles;
#if defined(_OPENMP)
  if (!omp_in_parallel()) {
#pragma omp parallel
    {
      std::vector<float> scratch(size_t(kBlockRows * kBackwardCols));
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tiles; ++t) tile(t, scratch);
    }
    return;
  }
#endif
  std::vector<float> scratch(size_t(kBlockRows * kBackwardCols));
  for (int64_t t = 0; t < tiles; ++t) tile(t, scratch);
}

// y [n, H] = rows ids[i] of table [V, H] (bf16), converted to float. Ids are checked by the caller.
inline void embedding_bf16(const uint16_t* table, int64_t H, const int64_t* ids, int64_t n, float* y) {
  parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const uint16_t* row = table + ids[i] * H;
      for (int64_t h = 0; h < H; ++h) y[i * H + h] = bf16_bits_to_float(row[h]);
    }
  });
}

inline const uint16_t* bf16_bits(const Tensor<bf16, Cpu>& t) { return reinterpret_cast<const uint16_t*>(t.data()); }

// w as a new float tensor of its shape, and back (rounded to nearest, ties to even).
inline Tensor<float, Cpu> widen_bf16(const Tensor<bf16, Cpu>& w) { return w.to<float>(); }
inline Tensor<bf16, Cpu> round_to_bf16(const Tensor<float, Cpu>& w) { return w.to<bf16>(); }

// y [n, out] = x [n, in] · wᵀ + b (b [out] or undefined); x and b contiguous.
inline Tensor<float, Cpu> linear_bf16(const Tensor<float, Cpu>& x, const Tensor<bf16, Cpu>& w, const Tensor<float, Cpu>& b) {
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  Tensor<float, Cpu> y = Tensor<float, Cpu>::empty({n, out});
  linear_bf16(x.data(), n, in, bf16_bits(w.contiguous()), out, b.defined() ? b.data() : nullptr, y.data());
  return y;
}

// dx [n, in] = dy [n, out] · w; dy contiguous.
inline Tensor<float, Cpu> linear_bf16_backward_input(const Tensor<float, Cpu>& dy, const Tensor<bf16, Cpu>& w) {
  const int64_t n = dy.size(0), out = w.size(0), in = w.size(1);
  Tensor<float, Cpu> dx = Tensor<float, Cpu>::empty({n, in});
  linear_bf16_backward_input(dy.data(), n, out, bf16_bits(w.contiguous()), in, dx.data());
  return dx;
}

// Rows ids[...] of table [V, H] as float [..., H]; an id outside [0, V) is an Error.
inline Tensor<float, Cpu> embedding_bf16(const Tensor<bf16, Cpu>& table, const Tensor<int64_t, Cpu>& ids) {
  const Tensor<int64_t, Cpu> flat = ids.contiguous();
  ops::impl::check_embedding_ids(flat, table.size(0), "embedding");
  Shape shape = ids.shape();
  shape.push_back(table.size(1));
  Tensor<float, Cpu> y = Tensor<float, Cpu>::empty(shape);
  embedding_bf16(bf16_bits(table.contiguous()), table.size(1), flat.data(), flat.numel(), y.data());
  return y;
}

}  // namespace ctmllm::llm::kernels
