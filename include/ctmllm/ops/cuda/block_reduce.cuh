#pragma once
// Warp and block reductions in float (warp shuffles, then one value per warp through shared memory).
// block_reduce must be reached by every thread of the block, and blockDim.x must be a multiple of 32.
#include <cmath>

namespace ctmllm::ops::cuda_impl {

struct SumOp {
  static constexpr float identity = 0.0f;
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  static constexpr float identity = -INFINITY;  // the max of nothing
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <class Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// The reduction of v over the block, returned to every thread.
template <class Op>
__device__ float block_reduce(float v, Op op) {
  __shared__ float partial[32];
  __shared__ float result;
  v = warp_reduce(v, op);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // an earlier call's threads have read `result`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < blockDim.x / 32 ? partial[lane] : Op::identity;
    w = warp_reduce(w, op);
    if (lane == 0) result = w;
  }
  __syncthreads();
  return result;
}

}  // namespace ctmllm::ops::cuda_impl
