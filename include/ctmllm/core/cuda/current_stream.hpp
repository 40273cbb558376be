#pragma once
// The stream ctmllm's work goes to. Every op, device copy, allocator fill and library call of a
// device is queued on the calling thread's current_stream() for that device: the device's own
// stream, or the one a StreamScope (stream.hpp) set. Work on a stream runs in the order it was
// asked for, so a block freed by one tensor can be handed to the next tensor made for that stream
// at once (whatever used it is queued before whatever uses it next); the allocator keeps each
// stream's freed blocks apart.
#include <array>

#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/cuda/per_device.hpp"

namespace ctmllm::cuda {

namespace detail {
// Per device, the stream a StreamScope of the calling thread set (null: the device's own).
inline std::array<cudaStream_t, kMaxDevices>& scoped_streams() {
  thread_local std::array<cudaStream_t, kMaxDevices> streams{};
  return streams;
}
}  // namespace detail

// The current device's own stream, made on first use (never synchronising with the legacy default
// stream) and never destroyed.
inline cudaStream_t own_stream() {
  static PerDevice<cudaStream_t> streams;
  return streams.current([] {
    cudaStream_t s = nullptr;
    CTMLLM_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return new cudaStream_t(s);
  });
}

// The stream the calling thread's ctmllm work on the current device runs on.
inline cudaStream_t current_stream() {
  const int device = current_device();
  CTMLLM_CHECK(device < kMaxDevices, "cuda: device index ", device, " out of range");
  if (const cudaStream_t scoped = detail::scoped_streams()[size_t(device)]) return scoped;
  return own_stream();
}

// Makes `later` wait (on the device; the host does not) for the work queued on `earlier` so far.
inline void order_after(cudaStream_t later, cudaStream_t earlier) {
  if (later == earlier) return;
  cudaEvent_t event = nullptr;
  CTMLLM_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  cudaError_t e = cudaEventRecord(event, earlier);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(later, event, 0);
  cudaEventDestroy(event);  // released once reached; the wait keeps what it needs
  check(e, "ordering one stream after another (cudaEventRecord, cudaStreamWaitEvent)");
}

// Whether a stream is being captured into a graph (core/cuda/graph.hpp): its work is then recorded,
// not run, so nothing may be read back or waited for.
inline bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CTMLLM_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}
inline bool capturing() { return capturing(current_stream()); }

// Waits until everything queued on the current stream has finished.
inline void synchronize() { CTMLLM_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

}  // namespace ctmllm::cuda
