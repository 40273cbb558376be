#pragma once
// Launch configuration: grid-stride kernels get one wave of blocks (every multiprocessor full, or
// fewer blocks when the work is small), row kernels one block per row. Every launch is followed by
// cuda::check_launch.
#include <algorithm>
#include <cstdint>

#include "ctmllm/core/cuda/context.hpp"
#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/error.hpp"

namespace ctmllm::ops::cuda_impl {

inline constexpr int kThreads = 256;

// Blocks of kThreads for a grid-stride loop over n items (n > 0).
inline unsigned grid_for(int64_t n) {
  CTMLLM_CHECK(n > 0, "cuda launch: no work");
  const auto& p = cuda::Context::current().properties();
  const int64_t wave = int64_t(p.multiProcessorCount) * (p.maxThreadsPerMultiProcessor / kThreads);
  return unsigned(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, std::max<int64_t>(wave, 1)));
}

// Blocks for one block per row (rows > 0); kernels loop when rows exceed the grid limit.
inline unsigned grid_rows(int64_t rows) {
  CTMLLM_CHECK(rows > 0, "cuda launch: no rows");
  return unsigned(std::min<int64_t>(rows, 0x7fffffff));
}

// The most threads of a row kernel's block. Row kernels declare it in __launch_bounds__, so that the
// compiler keeps them within 64 registers a thread (spilling if it must): a block of 1024 threads
// asking for more fails to launch.
inline constexpr int kMaxRowThreads = 1024;

// Threads for a row of n elements handled by one block: a multiple of the warp size, at most
// kMaxRowThreads.
inline unsigned threads_for_row(int64_t n, int64_t per_thread = 1) {
  const int64_t t = (n + per_thread - 1) / per_thread;
  return unsigned(std::clamp<int64_t>((t + 31) / 32 * 32, 32, kMaxRowThreads));
}

// Index of this thread in a grid-stride loop, and the loop's stride.
__device__ __forceinline__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace ctmllm::ops::cuda_impl
