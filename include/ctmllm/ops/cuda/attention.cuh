#pragma once
// CUDA kernels for scaled dot-product attention (the Tensor<T, Cuda> overloads of
// ops/cpu/attention.hpp, same contract): an online-softmax forward and a flash-attention-2 style
// backward that recomputes the probabilities from q, k and the saved logsumexp. No Sq×Sk matrix
// exists; every sum runs in float in a fixed order, with no atomics, so results repeat bit for bit.
//
// The fallback kernels are plain CUDA cores, written to be simple and right first. A block holds 16
// rows of one side (queries for the forward and dq, keys for dk and dv), 4 per warp, and walks the
// other side in tiles of 32 staged in shared memory as float, one row per lane: lane j computes the
// 4 dot products of its tile row with the warp's 4 rows, warp shuffles take the row max and sum, and
// the accumulators (head dims spread over the lanes, up to 256) take each tile row's weight by
// shuffle. Tile rows that lanes read whole are padded to an odd length, so the 32 lanes hit 32
// different shared-memory banks. Tiles come in with 16-byte loads when the rows allow it.
//
// A few queries over many keys (a decode step over a KV cache: one query block per head) would
// leave most of the GPU idle with one block walking all keys, so the forward then splits the keys:
// block c of a head walks keys [c·chunk, (c+1)·chunk) and leaves its unnormalised sums, max and
// total; a second kernel merges the splits in order (still deterministic).
//
// Built with the cudnn-frontend headers (CTMLLM_HAS_CUDNN_FRONTEND), bfloat16 and float16 calls go to
// cuDNN's fused flash SDPA first (sdpa_cudnn.cuh) and reach these kernels only where cuDNN does not
// run the case, or when cudnn_sdpa_enabled() is off.
#include <algorithm>
#include <cmath>

#include "ctmllm/ops/cpu/attention.hpp"
#include "ctmllm/ops/cuda/block_reduce.cuh"
#include "ctmllm/ops/cuda/map.cuh"
#ifdef CTMLLM_HAS_CUDNN_FRONTEND
#include "ctmllm/ops/cuda/sdpa_cudnn.cuh"
#endif

namespace ctmllm::ops {
namespace cuda_impl {

inline constexpr int kAttnWarps = 4;
inline constexpr int kAttnRowsPerWarp = 4;
inline constexpr int kAttnRows = kAttnWarps * kAttnRowsPerWarp;  // a block's own rows
inline constexpr int kAttnTile = 32;                             // rows of the other side per tile: a lane each
inline constexpr int kAttnMaxDim = 256;                          // head dims up to this
inline constexpr int kAttnPerLane = kAttnMaxDim / 32;

inline constexpr int64_t kAttnSplitKeys = 64;    // keys per split at least (a multiple of kAttnTile)
inline constexpr int64_t kAttnSplitBlocks = 512;  // split until about this many blocks run

// A [B, H, S, D] tensor with unit inner stride; vec: every row starts 16-byte aligned and holds
// whole 16-byte units.
template <class T>
struct HeadRows {
  const T* p;
  int64_t sb, sh, ss, S;
  int D;
  bool vec;
  __device__ const T* row(int64_t b, int64_t h, int64_t s) const { return p + b * sb + h * sh + s * ss; }
};

template <class T>
HeadRows<T> head_rows(const Tensor<T, Cuda>& t) {
  constexpr int64_t unit = 16 / int64_t(sizeof(T));
  const bool vec = reinterpret_cast<uintptr_t>(t.data()) % 16 == 0 && t.size(3) % unit == 0 &&
                   t.stride(0) % unit == 0 && t.stride(1) % unit == 0 && t.stride(2) % unit == 0;
  return HeadRows<T>{t.data(), t.stride(0), t.stride(1), t.stride(2), t.size(2), int(t.size(3)), vec};
}

// Whether query i of batch b sees key j: keep[b, j] (when given) and, when causal, j <= i + offset
// (offset = Sk − Sq); keys past Sk are never seen.
struct AttnVisibility {
  const uint8_t* keep;
  int64_t sk, offset;
  bool causal;
  __device__ bool operator()(int64_t b, int64_t i, int64_t j) const {
    return j < sk && (!keep || keep[b * sk + j]) && (!causal || j <= i + offset);
  }
};

// An odd row length >= d: rows that 32 lanes read at one column then fall in 32 different banks.
__host__ __device__ inline int odd_ld(int d) { return d % 2 ? d : d + 1; }

// dst[r][d] (row length ld) = mult · rows row0 + r of head (b, h) of v, zeros past its S rows.
template <class T>
__device__ void load_tile(float* dst, int ld, const HeadRows<T>& v, int64_t b, int64_t h, int64_t row0, int rows,
                          float mult) {
  if (v.vec) {  // 16 bytes per load
    constexpr int unit = 16 / int(sizeof(T));
    const int units = v.D / unit;
    for (int e = threadIdx.x; e < rows * units; e += blockDim.x) {
      const int r = e / units, d = e % units * unit;
      const int64_t s = row0 + r;
      float* out = dst + r * ld + d;
      if (s < v.S) {
        const uint4 raw = *reinterpret_cast<const uint4*>(v.row(b, h, s) + d);
        const T* x = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int i = 0; i < unit; ++i) out[i] = to_float(x[i]) * mult;
      } else {
#pragma unroll
        for (int i = 0; i < unit; ++i) out[i] = 0.0f;
      }
    }
    return;
  }
  for (int e = threadIdx.x; e < rows * v.D; e += blockDim.x) {
    const int r = e / v.D, d = e % v.D;
    const int64_t s = row0 + r;
    dst[r * ld + d] = s < v.S ? to_float(v.row(b, h, s)[d]) * mult : 0.0f;
  }
}

// out[r] = Σ_d a[r][d] · mine[d] for the warp's 4 rows a (row length lda, read by every lane at once)
// and this lane's tile row `mine`.
__device__ __forceinline__ void dot_rows(const float* a, int lda, const float* mine, int D,
                                         float (&out)[kAttnRowsPerWarp]) {
#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) out[r] = 0.0f;
  for (int d = 0; d < D; ++d) {
    const float x = mine[d];
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) out[r] += a[r * lda + d] * x;
  }
}

// acc[r][t] (column lane + 32t of D) += Σ_jj w_r(lane jj) · tile[jj][column], over the tile's rows.
__device__ __forceinline__ void accumulate_rows(const float (&w)[kAttnRowsPerWarp], const float* tile, int ld, int D,
                                                float (&acc)[kAttnRowsPerWarp][kAttnPerLane]) {
  const int lane = threadIdx.x % 32;
  for (int jj = 0; jj < kAttnTile; ++jj) {
    float wj[kAttnRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) wj[r] = __shfl_sync(0xffffffffu, w[r], jj);
#pragma unroll
    for (int t = 0; t < kAttnPerLane; ++t) {
      const int d = lane + 32 * t;
      if (d < D) {
        const float x = tile[jj * ld + d];
#pragma unroll
        for (int r = 0; r < kAttnRowsPerWarp; ++r) acc[r][t] += wj[r] * x;
      }
    }
  }
}

template <int R, int C>
__device__ __forceinline__ void zero(float (&a)[R][C]) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < C; ++c) a[r][c] = 0.0f;
}

// One past the last key any of the queries [i0, i0 + kAttnRows) of Sq sees.
__device__ __forceinline__ int64_t key_end(const AttnVisibility& vis, int64_t i0, int64_t Sq) {
  const int64_t last = (i0 + kAttnRows < Sq ? i0 + kAttnRows : Sq) - 1, end = last + vis.offset + 1;
  return !vis.causal ? vis.sk : end < 0 ? 0 : end < vis.sk ? end : vis.sk;
}

// Where a split forward leaves its partial results: per split, batch, head and query the max and
// the sum of exp(s − max), and the unnormalised output row.
struct AttnSplits {
  float *m, *l, *acc;  // [splits, B, Hq, Sq] twice, then [splits, B, Hq, Sq, Dv]
  int64_t count, chunk;  // splits (1: none) and keys per split (a multiple of kAttnTile)
};

// Block (query block · splits + split, head h, batch b): out [B, Hq, Sq, Dv] and lse [B, Hq, Sq],
// contiguous; with splits, the partials instead.
template <class T>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attention_forward_kernel(HeadRows<T> q, HeadRows<T> k, HeadRows<T> v, AttnVisibility vis, int64_t Hq, int64_t group,
                             float scale, T* __restrict__ out, float* __restrict__ lse, AttnSplits splits) {
  extern __shared__ float smem[];
  const int Dh = q.D, Dv = v.D, ldk = odd_ld(Dh);
  float* qs = smem;                   // [kAttnRows][Dh]: scale·q
  float* ks = qs + kAttnRows * Dh;    // [kAttnTile][ldk]
  float* vs = ks + kAttnTile * ldk;   // [kAttnTile][Dv]
  const int64_t split = blockIdx.x % splits.count, i0 = int64_t(blockIdx.x / splits.count) * kAttnRows;
  const int64_t b = blockIdx.z, h = blockIdx.y, kvh = h / group, Sq = q.S;
  const int lane = threadIdx.x % 32, r0 = threadIdx.x / 32 * kAttnRowsPerWarp;
  load_tile(qs, Dh, q, b, h, i0, kAttnRows, scale);

  float m[kAttnRowsPerWarp], l[kAttnRowsPerWarp], acc[kAttnRowsPerWarp][kAttnPerLane];
#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }
  zero(acc);
  const int64_t jbegin = split * splits.chunk;
  const int64_t kend = splits.count > 1 ? min(key_end(vis, i0, Sq), jbegin + splits.chunk) : key_end(vis, i0, Sq);
  for (int64_t j0 = jbegin; j0 < kend; j0 += kAttnTile) {
    __syncthreads();  // the last tile's readers are done
    load_tile(ks, ldk, k, b, kvh, j0, kAttnTile, 1.0f);
    load_tile(vs, Dv, v, b, kvh, j0, kAttnTile, 1.0f);
    __syncthreads();
    float s[kAttnRowsPerWarp];
    dot_rows(qs + r0 * Dh, Dh, ks + lane * ldk, Dh, s);
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
      if (!vis(b, i0 + r0 + r, j0 + lane)) s[r] = -INFINITY;
      const float mx = fmaxf(m[r], warp_reduce(s[r], MaxOp{}));  // the same in every lane
      if (mx == -INFINITY) {  // nothing visible in this row yet
        s[r] = 0.0f;
      } else {
        const float alpha = expf(m[r] - mx);  // rescales what was summed under the old max (0 at first)
        s[r] = expf(s[r] - mx);
        l[r] = l[r] * alpha + warp_reduce(s[r], SumOp{});
#pragma unroll
        for (int t = 0; t < kAttnPerLane; ++t) acc[r][t] *= alpha;
        m[r] = mx;
      }
    }
    accumulate_rows(s, vs, Dv, Dv, acc);
  }

#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    const int64_t i = i0 + r0 + r;
    if (i >= Sq) continue;
    const int64_t row = (b * Hq + h) * Sq + i;
    if (splits.count > 1) {  // this split's part, merged by attention_merge_kernel
      const int64_t part = split * int64_t(gridDim.z) * Hq * Sq + row;
#pragma unroll
      for (int t = 0; t < kAttnPerLane; ++t) {
        const int d = lane + 32 * t;
        if (d < Dv) splits.acc[part * Dv + d] = acc[r][t];
      }
      if (lane == 0) {
        splits.m[part] = m[r];
        splits.l[part] = l[r];
      }
      continue;
    }
    const bool seen = l[r] > 0.0f;  // a visible row has l >= 1 (its max contributes exp(0))
#pragma unroll
    for (int t = 0; t < kAttnPerLane; ++t) {
      const int d = lane + 32 * t;
      if (d < Dv) out[row * Dv + d] = from_float<T>(seen ? acc[r][t] / l[r] : 0.0f);
    }
    if (lane == 0) lse[row] = seen ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// Merges the splits of `rows` = B·Hq·Sq rows in split order: with M the largest split max and
// w_c = exp(m_c − M), out = Σ w_c·acc_c / Σ w_c·l_c and lse = M + log Σ w_c·l_c; a row no split saw
// gets 0 and −inf. A thread per output element (each recomputes its row's weights: splits are few).
template <class T>
__global__ void attention_merge_kernel(AttnSplits splits, int64_t rows, int Dv, T* __restrict__ out,
                                       float* __restrict__ lse) {
  for (int64_t e = global_thread(); e < rows * Dv; e += grid_threads()) {
    const int64_t row = e / Dv;
    const int d = int(e % Dv);
    float mx = -INFINITY;
    for (int64_t c = 0; c < splits.count; ++c) mx = fmaxf(mx, splits.m[c * rows + row]);
    float total = 0.0f, value = 0.0f;
    if (mx != -INFINITY) {
      for (int64_t c = 0; c < splits.count; ++c) {
        const float mc = splits.m[c * rows + row];
        if (mc == -INFINITY) continue;  // this split saw none of the row's keys
        const float w = expf(mc - mx);
        total += w * splits.l[c * rows + row];
        value += w * splits.acc[(c * rows + row) * Dv + d];
      }
    }
    const bool seen = total > 0.0f;
    out[e] = from_float<T>(seen ? value / total : 0.0f);
    if (d == 0) lse[row] = seen ? mx + logf(total) : -INFINITY;
  }
}

// drow[row] = dO_row · O_row over the B·Hq·Sq rows, a warp per row.
template <class T>
__global__ void attention_drow_kernel(HeadRows<T> dout, HeadRows<T> out, int64_t Hq, int64_t rows,
                                      float* __restrict__ drow) {
  const int lane = threadIdx.x % 32;
  for (int64_t w = global_thread() / 32; w < rows; w += grid_threads() / 32) {
    const int64_t Sq = out.S, b = w / (Hq * Sq), h = w / Sq % Hq, i = w % Sq;
    const T* g = dout.row(b, h, i);
    const T* o = out.row(b, h, i);
    float s = 0.0f;
    for (int d = lane; d < out.D; d += 32) s += to_float(g[d]) * to_float(o[d]);
    s = warp_reduce(s, SumOp{});
    if (lane == 0) drow[w] = s;
  }
}

// Block (query block, head h, batch b): dq = scale · Σ_j ds_ij k_j with p_ij = exp(scale·q_i·k_j −
// lse_i) and ds_ij = p_ij (dO_i·v_j − drow_i). dq [B, Hq, Sq, Dh] contiguous.
template <class T>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attention_dq_kernel(HeadRows<T> q, HeadRows<T> k, HeadRows<T> v, HeadRows<T> dout, const float* __restrict__ lse,
                        const float* __restrict__ drow, AttnVisibility vis, int64_t Hq, int64_t group, float scale,
                        T* __restrict__ dq) {
  extern __shared__ float smem[];
  const int Dh = q.D, Dv = v.D, ldk = odd_ld(Dh), ldv = odd_ld(Dv);
  float* qs = smem;                    // [kAttnRows][Dh]: scale·q
  float* dos = qs + kAttnRows * Dh;    // [kAttnRows][Dv]
  float* ks = dos + kAttnRows * Dv;    // [kAttnTile][ldk]
  float* vs = ks + kAttnTile * ldk;    // [kAttnTile][ldv]
  const int64_t b = blockIdx.z, h = blockIdx.y, kvh = h / group, i0 = int64_t(blockIdx.x) * kAttnRows, Sq = q.S;
  const int lane = threadIdx.x % 32, r0 = threadIdx.x / 32 * kAttnRowsPerWarp;
  load_tile(qs, Dh, q, b, h, i0, kAttnRows, scale);
  load_tile(dos, Dv, dout, b, h, i0, kAttnRows, 1.0f);

  float row_lse[kAttnRowsPerWarp], row_d[kAttnRowsPerWarp], acc[kAttnRowsPerWarp][kAttnPerLane];
#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    const int64_t i = i0 + r0 + r, row = (b * Hq + h) * Sq + i;
    row_lse[r] = i < Sq ? lse[row] : -INFINITY;  // −inf: nothing visible, p = 0
    row_d[r] = i < Sq ? drow[row] : 0.0f;
  }
  zero(acc);
  const int64_t kend = key_end(vis, i0, Sq);
  for (int64_t j0 = 0; j0 < kend; j0 += kAttnTile) {
    __syncthreads();
    load_tile(ks, ldk, k, b, kvh, j0, kAttnTile, 1.0f);
    load_tile(vs, ldv, v, b, kvh, j0, kAttnTile, 1.0f);
    __syncthreads();
    float s[kAttnRowsPerWarp], dp[kAttnRowsPerWarp];
    dot_rows(qs + r0 * Dh, Dh, ks + lane * ldk, Dh, s);
    dot_rows(dos + r0 * Dv, Dv, vs + lane * ldv, Dv, dp);
#pragma unroll
    for (int r = 0; r < kAttnRowsPerWarp; ++r) {
      const bool seen = row_lse[r] != -INFINITY && vis(b, i0 + r0 + r, j0 + lane);
      const float p = seen ? expf(s[r] - row_lse[r]) : 0.0f;
      s[r] = p * (dp[r] - row_d[r]);  // ds
    }
    accumulate_rows(s, ks, ldk, Dh, acc);
  }

#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    const int64_t i = i0 + r0 + r;
    if (i >= Sq) continue;
    const int64_t row = (b * Hq + h) * Sq + i;
#pragma unroll
    for (int t = 0; t < kAttnPerLane; ++t) {
      const int d = lane + 32 * t;
      if (d < Dh) dq[row * Dh + d] = from_float<T>(scale * acc[r][t]);
    }
  }
}

// Block (key block, kv head kvh, batch b): dv_j = Σ_i p_ij dO_i and dk_j = Σ_i ds_ij · scale·q_i over
// the queries of every query head that reads kv head kvh, in head then query order. dk [B, Hkv, Sk,
// Dh] and dv [B, Hkv, Sk, Dv] contiguous.
template <class T>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attention_dkdv_kernel(HeadRows<T> q, HeadRows<T> k, HeadRows<T> v, HeadRows<T> dout, const float* __restrict__ lse,
                          const float* __restrict__ drow, AttnVisibility vis, int64_t Hq, int64_t group, float scale,
                          T* __restrict__ dk, T* __restrict__ dv) {
  extern __shared__ float smem[];
  const int Dh = q.D, Dv = v.D, ldq = odd_ld(Dh), ldo = odd_ld(Dv);
  float* ks = smem;                    // [kAttnRows][Dh]
  float* vs = ks + kAttnRows * Dh;     // [kAttnRows][Dv]
  float* qs = vs + kAttnRows * Dv;     // [kAttnTile][ldq]: scale·q
  float* dos = qs + kAttnTile * ldq;   // [kAttnTile][ldo]
  const int64_t b = blockIdx.z, kvh = blockIdx.y, j0 = int64_t(blockIdx.x) * kAttnRows, Sq = q.S, Sk = k.S;
  const int lane = threadIdx.x % 32, r0 = threadIdx.x / 32 * kAttnRowsPerWarp;
  load_tile(ks, Dh, k, b, kvh, j0, kAttnRows, 1.0f);
  load_tile(vs, Dv, v, b, kvh, j0, kAttnRows, 1.0f);

  float dk_acc[kAttnRowsPerWarp][kAttnPerLane], dv_acc[kAttnRowsPerWarp][kAttnPerLane];
  zero(dk_acc);
  zero(dv_acc);
  // Queries before j0 − offset see none of this block's keys when causal.
  const int64_t first_query = vis.causal && j0 > vis.offset ? j0 - vis.offset : 0;
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int64_t i0 = first_query; i0 < Sq; i0 += kAttnTile) {
      __syncthreads();
      load_tile(qs, ldq, q, b, h, i0, kAttnTile, scale);
      load_tile(dos, ldo, dout, b, h, i0, kAttnTile, 1.0f);
      __syncthreads();
      const int64_t i = i0 + lane, row = (b * Hq + h) * Sq + i;
      const float row_lse = i < Sq ? lse[row] : -INFINITY, row_d = i < Sq ? drow[row] : 0.0f;
      float p[kAttnRowsPerWarp], ds[kAttnRowsPerWarp];
      dot_rows(ks + r0 * Dh, Dh, qs + lane * ldq, Dh, p);
      dot_rows(vs + r0 * Dv, Dv, dos + lane * ldo, Dv, ds);
#pragma unroll
      for (int r = 0; r < kAttnRowsPerWarp; ++r) {
        const bool seen = row_lse != -INFINITY && vis(b, i, j0 + r0 + r);
        p[r] = seen ? expf(p[r] - row_lse) : 0.0f;
        ds[r] = p[r] * (ds[r] - row_d);
      }
      accumulate_rows(p, dos, ldo, Dv, dv_acc);
      accumulate_rows(ds, qs, ldq, Dh, dk_acc);
    }
  }

#pragma unroll
  for (int r = 0; r < kAttnRowsPerWarp; ++r) {
    const int64_t j = j0 + r0 + r;
    if (j >= Sk) continue;
    const int64_t row = (b * (Hq / group) + kvh) * Sk + j;
#pragma unroll
    for (int t = 0; t < kAttnPerLane; ++t) {
      const int d = lane + 32 * t;
      if (d < Dh) dk[row * Dh + d] = from_float<T>(dk_acc[r][t]);
      if (d < Dv) dv[row * Dv + d] = from_float<T>(dv_acc[r][t]);
    }
  }
}

// Launches `kernel` over `grid` blocks of kAttnWarps warps with `floats` floats of dynamic shared
// memory, opting in above the default 48 KiB.
template <class Kernel, class... Args>
void launch_attention(Kernel kernel, const char* name, dim3 grid, int64_t floats, Args... args) {
  const size_t bytes = size_t(floats) * sizeof(float);
  if (bytes > (size_t(48) << 10))
    cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
                "cudaFuncSetAttribute (attention shared memory)");
  kernel<<<grid, kAttnWarps * 32, bytes, cuda::current_stream()>>>(args...);
  cuda::check_launch(name);
}

// Blocks of kAttnRows rows over `rows`, for each of `heads` heads and B batch entries.
inline dim3 attention_grid(int64_t rows, int64_t heads, int64_t B) {
  CTMLLM_CHECK(heads <= 65535 && B <= 65535, "attention: ", heads, " heads and a batch of ", B,
               " exceed the CUDA grid (65535 each)");
  return dim3(unsigned((rows + kAttnRows - 1) / kAttnRows), unsigned(heads), unsigned(B));
}

template <class T>
void check_attention_dims(const Tensor<T, Cuda>& q, const Tensor<T, Cuda>& v, const char* op) {
  CTMLLM_CHECK(q.size(3) <= kAttnMaxDim && v.size(3) <= kAttnMaxDim, op, ": head dims of q ", q.describe(), " and v ",
               v.describe(), " exceed the CUDA kernel's ", kAttnMaxDim);
}

inline AttnVisibility attention_visibility(const Tensor<uint8_t, Cuda>& keep, int64_t Sq, int64_t Sk, bool causal) {
  return AttnVisibility{keep.defined() ? keep.data() : nullptr, Sk, Sk - Sq, causal};
}

}  // namespace cuda_impl

namespace impl {

// out = softmax(scale · q kᵀ over visible keys) v and lse = the row logsumexps; a row with no
// visible key gets out = 0 and lse = −inf. q [B, Hq, Sq, Dh], k [B, Hkv, Sk, Dh], v [B, Hkv, Sk, Dv]
// with unit inner stride; keep: contiguous uint8 [B, Sk] or undefined; out [B, Hq, Sq, Dv] and
// lse [B, Hq, Sq] contiguous. Head dims up to 256.
template <class T>
void attention_forward(const Tensor<T, Cuda>& q, const Tensor<T, Cuda>& k, const Tensor<T, Cuda>& v,
                       const Tensor<uint8_t, Cuda>& keep, bool causal, double scale, const Tensor<T, Cuda>& out,
                       const Tensor<float, Cuda>& lse) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "attention");
#ifdef CTMLLM_HAS_CUDNN_FRONTEND
  if (cuda_impl::sdpa_forward(q, k, v, keep, causal, scale, out, lse)) return;
#endif
  cuda_impl::check_attention_dims(q, v, "attention");
  const int64_t B = q.size(0), Hq = q.size(1), Sq = q.size(2), Dh = q.size(3), Dv = v.size(3), Sk = k.size(2);
  if (B * Hq * Sq == 0) return;
  const int64_t floats = cuda_impl::kAttnRows * Dh + cuda_impl::kAttnTile * (cuda_impl::odd_ld(int(Dh)) + Dv);
  // One query block per head over many keys: split the keys until about kAttnSplitBlocks blocks run
  // (not when v has no features: then there is nothing to merge but the lse the kernel writes whole).
  cuda_impl::AttnSplits splits{nullptr, nullptr, nullptr, 1, Sk};
  const int64_t heads = B * Hq, rows = B * Hq * Sq;
  if (Sq <= cuda_impl::kAttnRows && Sk > cuda_impl::kAttnSplitKeys && heads < cuda_impl::kAttnSplitBlocks && Dv > 0) {
    const int64_t want = std::min((Sk + cuda_impl::kAttnSplitKeys - 1) / cuda_impl::kAttnSplitKeys,
                                  cuda_impl::kAttnSplitBlocks / heads);
    const int64_t per = (Sk + want - 1) / want;
    splits.chunk = (per + cuda_impl::kAttnTile - 1) / cuda_impl::kAttnTile * cuda_impl::kAttnTile;
    splits.count = (Sk + splits.chunk - 1) / splits.chunk;
  }
  dim3 grid = cuda_impl::attention_grid(Sq, Hq, B);
  Tensor<float, Cuda> partials;
  if (splits.count > 1) {
    partials = Tensor<float, Cuda>::empty({splits.count * rows * (Dv + 2)});
    splits.m = partials.data();
    splits.l = splits.m + splits.count * rows;
    splits.acc = splits.l + splits.count * rows;
    grid.x = unsigned(splits.count);  // the one query block, once per split
  }
  cuda_impl::launch_attention(cuda_impl::attention_forward_kernel<T>, "attention_forward_kernel", grid, floats,
                              cuda_impl::head_rows(q), cuda_impl::head_rows(k), cuda_impl::head_rows(v),
                              cuda_impl::attention_visibility(keep, Sq, Sk, causal), Hq, Hq / k.size(1), float(scale),
                              out.data(), lse.data(), splits);
  if (splits.count > 1) {
    cuda_impl::attention_merge_kernel<T><<<cuda_impl::grid_for(rows * Dv), cuda_impl::kThreads, 0,
                                           cuda::current_stream()>>>(splits, rows, int(Dv), out.data(), lse.data());
    cuda::check_launch("attention_merge_kernel");
  }
}

// dq, dk, dv (contiguous, shaped like q, k, v) from dy and the forward's out and lse.
template <class T>
void attention_backward(const Tensor<T, Cuda>& dy, const Tensor<T, Cuda>& q, const Tensor<T, Cuda>& k,
                        const Tensor<T, Cuda>& v, const Tensor<T, Cuda>& out, const Tensor<float, Cuda>& lse,
                        const Tensor<uint8_t, Cuda>& keep, bool causal, double scale, const Tensor<T, Cuda>& dq,
                        const Tensor<T, Cuda>& dk, const Tensor<T, Cuda>& dv) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "attention_backward");
#ifdef CTMLLM_HAS_CUDNN_FRONTEND
  if (cuda_impl::sdpa_backward(dy, q, k, v, out, lse, keep, causal, scale, dq, dk, dv)) return;
#endif
  cuda_impl::check_attention_dims(q, v, "attention_backward");
  const int64_t B = q.size(0), Hq = q.size(1), Sq = q.size(2), Dh = q.size(3), Dv = v.size(3);
  const int64_t Hkv = k.size(1), Sk = k.size(2), group = Hq / Hkv;
  const cuda_impl::AttnVisibility vis = cuda_impl::attention_visibility(keep, Sq, Sk, causal);
  const auto hq = cuda_impl::head_rows(q), hk = cuda_impl::head_rows(k), hv = cuda_impl::head_rows(v);
  const auto hdy = cuda_impl::head_rows(dy);
  const int64_t ldh = cuda_impl::odd_ld(int(Dh)), ldv = cuda_impl::odd_ld(int(Dv));
  const int64_t floats = cuda_impl::kAttnRows * (Dh + Dv) + cuda_impl::kAttnTile * (ldh + ldv);
  if (B * Hq * Sq > 0) {
    const Tensor<float, Cuda> drow = Tensor<float, Cuda>::empty({B, Hq, Sq});
    cuda_impl::attention_drow_kernel<<<cuda_impl::grid_for(B * Hq * Sq * 32), cuda_impl::kThreads, 0,
                                       cuda::current_stream()>>>(hdy, cuda_impl::head_rows(out), Hq, B * Hq * Sq,
                                                                 drow.data());
    cuda::check_launch("attention_drow_kernel");
    cuda_impl::launch_attention(cuda_impl::attention_dq_kernel<T>, "attention_dq_kernel",
                                cuda_impl::attention_grid(Sq, Hq, B), floats, hq, hk, hv, hdy, lse.data(), drow.data(),
                                vis, Hq, group, float(scale), dq.data());
    if (B * Hkv * Sk > 0)
      cuda_impl::launch_attention(cuda_impl::attention_dkdv_kernel<T>, "attention_dkdv_kernel",
                                  cuda_impl::attention_grid(Sk, Hkv, B), floats, hq, hk, hv, hdy, lse.data(),
                                  drow.data(), vis, Hq, group, float(scale), dk.data(), dv.data());
  } else if (B * Hkv * Sk > 0) {  // no queries: nothing flows into k and v
    const cudaStream_t s = cuda::current_stream();
    CTMLLM_CUDA_CHECK(cudaMemsetAsync(dk.data(), 0, size_t(dk.numel()) * sizeof(T), s));
    CTMLLM_CUDA_CHECK(cudaMemsetAsync(dv.data(), 0, size_t(dv.numel()) * sizeof(T), s));
  }
}

}  // namespace impl
}  // namespace ctmllm::ops
