#pragma once
// Streams. ctmllm queues every op, device copy and allocator fill of a device on one stream, that
// device's current_stream(): work runs in the order it was asked for, so a freed block can be handed
// to the next tensor at once (whatever used it is queued before whatever uses it next).
#include <utility>

#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/cuda/per_device.hpp"

namespace ctmllm::cuda {

// An owned stream that does not synchronise with the legacy default stream.
class Stream {
 public:
  Stream() { CTMLLM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  Stream(Stream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    std::swap(stream_, o.stream_);
    return *this;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  void synchronize() const { CTMLLM_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// The stream of the current device that ctmllm's work runs on.
inline cudaStream_t current_stream() {
  static PerDevice<Stream> streams;
  return streams.current([] { return new Stream(); }).get();
}

// Whether the current device's stream is being captured into a graph (core/cuda/graph.hpp): its work
// is then recorded, not run, so nothing may be read back or waited for.
inline bool capturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CTMLLM_CUDA_CHECK(cudaStreamIsCapturing(current_stream(), &status));
  return status != cudaStreamCaptureStatusNone;
}

// Waits until everything queued on the current device's stream has finished.
inline void synchronize() { CTMLLM_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

}  // namespace ctmllm::cuda
