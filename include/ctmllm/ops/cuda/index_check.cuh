#pragma once
// Range checks of int64 indices (embedding ids, cross-entropy targets) that live on the device. The
// device only answers whether some index is bad (one int copied back, which waits for the stream);
// the caller then reruns its CPU check on a host copy, so the error names the same first offending
// index, value and tensor as on the CPU, from one message written once.
#include <optional>

#include "ctmllm/ops/caller_checked_indices.hpp"
#include "ctmllm/ops/cuda/map.cuh"

namespace ctmllm::ops::cuda_impl {

// *bad = 1 when some index lies outside [0, limit) and is not `ignore` (when has_ignore). Every
// writer stores the same value, so the race is harmless.
template <class Index>
__global__ void index_out_of_range_kernel(const Index* __restrict__ idx, int64_t n, int64_t limit, bool has_ignore,
                                          Index ignore, int32_t* __restrict__ bad) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const Index v = idx[i];
    if ((v < 0 || v >= limit) && !(has_ignore && v == ignore)) *bad = 1;
  }
}

// Whether a device-held index tensor is range-checked now: not under a capture (no host wait is
// allowed there) and not where the caller checked the indices (IndicesCheckedByCaller).
inline bool device_index_check_due() { return !cuda::capturing() && !indices_checked_by_caller(); }

// Whether any element of idx (contiguous) lies outside [0, limit) without being `ignore`.
inline bool any_index_out_of_range(const Tensor<int64_t, Cuda>& idx, int64_t limit,
                                   std::optional<int64_t> ignore = std::nullopt) {
  const int64_t n = idx.numel();
  if (n == 0) return false;
  const Tensor<int32_t, Cuda> bad = Tensor<int32_t, Cuda>::empty({1});
  const cudaStream_t stream = cuda::current_stream();
  CTMLLM_CUDA_CHECK(cudaMemsetAsync(bad.data(), 0, sizeof(int32_t), stream));
  index_out_of_range_kernel<<<grid_for(n), kThreads, 0, stream>>>(idx.data(), n, limit, ignore.has_value(),
                                                                   ignore.value_or(0), bad.data());
  cuda::check_launch("index_out_of_range_kernel");
  return bad.item() != 0;
}

}  // namespace ctmllm::ops::cuda_impl
