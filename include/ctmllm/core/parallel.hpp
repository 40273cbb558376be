#pragma once
// CPU parallelism: one knob (set_num_threads) for OpenMP and Eigen, and parallel_for over index
// ranges. Results never depend on the thread count: work is split into fixed chunks, and code that
// needs randomness uses the counter-based RNG (rng.hpp), not per-thread streams.
#include <algorithm>
#include <cstdint>
#include <exception>

#include <Eigen/Core>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace ctmllm {

inline int num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void set_num_threads(int n) {
  n = std::max(1, n);
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

// Calls f(begin_i, end_i) on consecutive chunks covering [begin, end), each at least `grain` long,
// in parallel. An exception thrown by any chunk is rethrown on the calling thread.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
#if defined(_OPENMP)
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = std::min<int64_t>(std::max<int64_t>(1, n / grain), int64_t(num_threads()) * 4);
  if (chunks > 1 && !omp_in_parallel()) {
    std::exception_ptr error;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t lo = begin + n * c / chunks, hi = begin + n * (c + 1) / chunks;
      try {
        f(lo, hi);
      } catch (...) {
#pragma omp critical(ctmllm_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  f(begin, end);
}

}  // namespace ctmllm
