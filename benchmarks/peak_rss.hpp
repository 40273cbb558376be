#pragma once
// The process's peak resident memory so far, for the benchmarks' peak-memory counters. A program
// runs its benchmarks in registration order, so the first one's figure is its own.
#include <sys/resource.h>

namespace ctmllm::bench {

inline double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace ctmllm::bench
