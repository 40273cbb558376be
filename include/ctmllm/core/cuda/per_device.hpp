#pragma once
// The current device, and one lazily made object per device (stream, allocator, library handles).
#include <array>
#include <memory>
#include <mutex>

#include "ctmllm/core/cuda/error.hpp"

namespace ctmllm::cuda {

inline int current_device() {
  int d = 0;
  CTMLLM_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

inline constexpr int kMaxDevices = 64;

// One T per device, made by make() on first use with that device current. The objects are
// never destroyed: they hold device memory and library handles, and releasing those from static
// destructors would run after the CUDA runtime has shut down.
template <class T>
class PerDevice {
 public:
  // The current device's object; make() returns a new T*.
  template <class Make>
  T& current(Make&& make) {
    const int device = current_device();
    CTMLLM_CHECK(device < kMaxDevices, "cuda: device index ", device, " out of range");
    std::call_once(once_[size_t(device)], [&] { slots_[size_t(device)] = make(); });
    return *slots_[size_t(device)];
  }

 private:
  std::array<std::once_flag, kMaxDevices> once_;
  std::array<T*, kMaxDevices> slots_{};
};

}  // namespace ctmllm::cuda
