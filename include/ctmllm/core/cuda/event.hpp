#pragma once
// Device events, for timing work on a stream: elapsed_ms(start, stop) once stop has been reached.

#include "ctmllm/core/cuda/current_stream.hpp"
#include "ctmllm/core/cuda/error.hpp"

namespace ctmllm::cuda {

class Event {
 public:
  Event() { CTMLLM_CUDA_CHECK(cudaEventCreate(&event_)); }
  ~Event() {
    if (event_) cudaEventDestroy(event_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(cudaStream_t stream = current_stream()) { CTMLLM_CUDA_CHECK(cudaEventRecord(event_, stream)); }
  void synchronize() const { CTMLLM_CUDA_CHECK(cudaEventSynchronize(event_)); }
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// Milliseconds between two recorded events; waits for `stop`.
inline float elapsed_ms(const Event& start, const Event& stop) {
  stop.synchronize();
  float ms = 0;
  CTMLLM_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
  return ms;
}

}  // namespace ctmllm::cuda
