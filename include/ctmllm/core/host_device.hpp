#pragma once
// CTMLLM_HOST_DEVICE marks plain C++ functions that CUDA kernels call too (the counter-based random
// stream, so the GPU draws exactly the CPU's numbers); outside nvcc it is nothing.
#if defined(__CUDACC__)
#define CTMLLM_HOST_DEVICE __host__ __device__
#else
#define CTMLLM_HOST_DEVICE
#endif
