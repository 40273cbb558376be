#pragma once
// Element types on the device. ctmllm's bf16 and half are 16-bit patterns (core/dtype.hpp) whose
// conversions are host code; here they convert through CUDA's intrinsics, which round to nearest
// even and keep NaN, as the host conversions do. Kernels compute in float.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "ctmllm/core/dtype.hpp"

namespace ctmllm::ops::cuda_impl {

// The element types the CUDA kernels take.
template <class T>
inline constexpr bool is_cuda_float_v = std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, half>;

#define CTMLLM_CUDA_FLOAT_TYPES(T, op) \
  static_assert(::ctmllm::ops::cuda_impl::is_cuda_float_v<T>, op ": CUDA kernels take float32, bfloat16 and float16")

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return __uint_as_float(uint32_t(v.bits) << 16); }
__device__ __forceinline__ float to_float(half v) { return __half2float(__ushort_as_half(v.bits)); }

template <class T>
__device__ __forceinline__ T from_float(float v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else if constexpr (std::is_same_v<T, bf16>) {
    bf16 r;
    r.bits = __bfloat16_as_ushort(__float2bfloat16_rn(v));
    return r;
  } else {
    half r;
    r.bits = __half_as_ushort(__float2half_rn(v));
    return r;
  }
}

// 16 bytes of T: one vector load or store per thread (4 floats or 8 16-bit values).
template <class T>
struct alignas(16) Pack {
  static constexpr int size = 16 / int(sizeof(T));
  T v[size];
};

// Whether every pointer is 16-byte aligned, so Pack loads and stores are legal.
template <class... P>
inline bool aligned16(const P*... p) {
  return ((reinterpret_cast<uintptr_t>(p) % 16 == 0) && ...);
}

}  // namespace ctmllm::ops::cuda_impl
