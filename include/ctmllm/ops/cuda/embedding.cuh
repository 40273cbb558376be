#pragma once
// CUDA kernels for embedding (the Tensor<T, Cuda> overloads of ops/cpu/embedding.hpp, same layout:
// weight / dweight [V, H], ids [N] int64, y / dy [N, H], all contiguous). Ids are range-checked on
// the device first (index_check.cuh: one flag read back, so each call waits for the stream once),
// except in a forward captured into a CUDA graph, which cannot read back, or where the caller
// checked the ids (ops/caller_checked_indices.hpp): the gather writes zero rows for bad ids instead
// (llm/static_decode_step.hpp checks the ids it feeds).
//
// The backward is deterministic without atomics: a stable radix sort (CUB, part of the toolkit) of
// the ids with their token positions groups the tokens of each id in token order; one block per
// group then sums its dy rows column by column in float, in that order, and writes the id's row once.
// Rows no token uses are zero. So repeated ids give the same bits on every run.
#include <algorithm>
#include <bit>

#include <cub/device/device_radix_sort.cuh>

#include "ctmllm/ops/cpu/embedding.hpp"
#include "ctmllm/ops/cuda/index_check.cuh"

namespace ctmllm::ops {
namespace cuda_impl {

template <class T>
__global__ void embedding_gather_kernel(const T* __restrict__ weight, const int64_t* __restrict__ ids, T* __restrict__ y,
                                        int64_t N, int64_t H, int64_t V) {
  for (int64_t e = global_thread(); e < N * H; e += grid_threads()) {
    const int64_t id = ids[e / H];
    y[e] = id >= 0 && id < V ? weight[id * H + e % H] : from_float<T>(0.0f);
  }
}

template <class Index>
__global__ void iota_kernel(Index* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = Index(i);
}

// keys[n] = ids[n], or V for an id outside [0, V) (unchecked, under a graph capture): the sort then
// needs only the bits of V, and such tokens form the last run, which the gradient kernel skips.
// A template (on the id type) so that every translation unit may hold it.
template <class Id>
__global__ void embedding_sort_keys_kernel(const Id* __restrict__ ids, int64_t n, int64_t V, Id* __restrict__ keys) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const Id id = ids[i];
    keys[i] = id >= 0 && id < V ? id : V;
  }
}

// Block k handles sorted position k when it starts a run of equal ids below V: dweight[id] = Σ over
// the run's tokens (in token order) of dy[token].
template <class T>
__global__ void __launch_bounds__(kMaxRowThreads)
    embedding_grad_kernel(const T* __restrict__ dy, const int64_t* __restrict__ sorted_ids,
                          const int64_t* __restrict__ tokens, T* __restrict__ dweight, int64_t N, int64_t H,
                          int64_t V) {
  for (int64_t k = blockIdx.x; k < N; k += gridDim.x) {
    const int64_t id = sorted_ids[k];
    if (id == V || (k > 0 && sorted_ids[k - 1] == id)) continue;  // bad ids, or not the start of its run
    int64_t end = k + 1;
    while (end < N && sorted_ids[end] == id) ++end;
    for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
      float s = 0.0f;
      for (int64_t t = k; t < end; ++t) s += to_float(dy[tokens[t] * H + h]);
      dweight[id * H + h] = from_float<T>(s);
    }
  }
}

}  // namespace cuda_impl

namespace impl {

// y[n] = weight[ids[n]]
template <class T>
void embedding_forward(const Tensor<T, Cuda>& weight, const Tensor<int64_t, Cuda>& ids, const Tensor<T, Cuda>& y) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "embedding");
  const int64_t V = weight.size(0), H = weight.size(1), N = ids.numel();
  if (cuda_impl::device_index_check_due() && cuda_impl::any_index_out_of_range(ids, V))
    check_embedding_ids(ids.template to_device<Cpu>(), V, "embedding");
  if (N * H == 0) return;
  cuda_impl::embedding_gather_kernel<<<cuda_impl::grid_for(N * H), cuda_impl::kThreads, 0, cuda::current_stream()>>>(
      weight.data(), ids.data(), y.data(), N, H, V);
  cuda::check_launch("embedding_gather_kernel");
}

// dweight = 0, then dweight[ids[n]] += dy[n], summed per id in token order.
template <class T>
void embedding_backward(const Tensor<T, Cuda>& dy, const Tensor<int64_t, Cuda>& ids, const Tensor<T, Cuda>& dweight) {
  CTMLLM_CUDA_FLOAT_TYPES(T, "embedding_backward");
  const int64_t V = dweight.size(0), H = dweight.size(1), N = ids.numel();
  if (cuda_impl::device_index_check_due() && cuda_impl::any_index_out_of_range(ids, V))
    check_embedding_ids(ids.template to_device<Cpu>(), V, "embedding_backward");
  const cudaStream_t stream = cuda::current_stream();
  // All-zero bits are 0 in every float type.
  CTMLLM_CUDA_CHECK(cudaMemsetAsync(dweight.data(), 0, size_t(V * H) * sizeof(T), stream));
  if (N == 0 || H == 0) return;
  const Tensor<int64_t, Cuda> tokens_in = Tensor<int64_t, Cuda>::empty({N}), tokens = Tensor<int64_t, Cuda>::empty({N});
  const Tensor<int64_t, Cuda> keys = Tensor<int64_t, Cuda>::empty({N}), sorted_ids = Tensor<int64_t, Cuda>::empty({N});
  cuda_impl::iota_kernel<<<cuda_impl::grid_for(N), cuda_impl::kThreads, 0, stream>>>(tokens_in.data(), N);
  cuda::check_launch("iota_kernel");
  cuda_impl::embedding_sort_keys_kernel<<<cuda_impl::grid_for(N), cuda_impl::kThreads, 0, stream>>>(ids.data(), N, V,
                                                                                                   keys.data());
  cuda::check_launch("embedding_sort_keys_kernel");
  // The keys lie in [0, V]: their low bits order them (17 bits, 3 radix passes, for Llama-3's
  // vocabulary instead of 8 passes over all 64).
  const int key_bits = int(std::bit_width(uint64_t(V)));
  size_t temp_bytes = 0;
  cuda::check(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys.data(), sorted_ids.data(), tokens_in.data(),
                                              tokens.data(), N, 0, key_bits, stream),
              "cub::DeviceRadixSort::SortPairs (temporary storage size)");
  const Tensor<uint8_t, Cuda> temp = Tensor<uint8_t, Cuda>::empty({int64_t(temp_bytes)});
  cuda::check(cub::DeviceRadixSort::SortPairs(temp.data(), temp_bytes, keys.data(), sorted_ids.data(), tokens_in.data(),
                                              tokens.data(), N, 0, key_bits, stream),
              "cub::DeviceRadixSort::SortPairs");
  cuda_impl::embedding_grad_kernel<<<cuda_impl::grid_rows(N), cuda_impl::threads_for_row(H), 0, stream>>>(
      dy.data(), sorted_ids.data(), tokens.data(), dweight.data(), N, H, V);
  cuda::check_launch("embedding_grad_kernel");
}

}  // namespace impl
}  // namespace ctmllm::ops
