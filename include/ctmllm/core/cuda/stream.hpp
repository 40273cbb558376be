#pragma once
// Streams of the caller's: ctmllm's work goes to the device's own stream (current_stream.hpp) unless
// a StreamScope sends the thread's work to another one, e.g. a stream of the application's, or one
// per thread so that requests run at once.
#include <utility>

#include "ctmllm/core/cuda/allocator.hpp"
#include "ctmllm/core/cuda/current_stream.hpp"
#include "ctmllm/core/cuda/error.hpp"

namespace ctmllm::cuda {

namespace detail {
// Runs f with `device` current, then restores the current device; for destructors (never throws).
template <class F>
void on_device(int device, F&& f) noexcept {
  int current = device;
  cudaGetDevice(&current);
  if (current != device) cudaSetDevice(device);
  try {
    f();
  } catch (const Error&) {  // a failing call here means the context is lost; the next checked call says so
  }
  if (current != device) cudaSetDevice(current);
}
}  // namespace detail

// An owned stream on the current device that does not synchronise with the legacy default stream.
// Destroying it waits for its work and gives its blocks to the device's own stream (retire_stream).
class Stream {
 public:
  Stream() : device_(current_device()) { CTMLLM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (!stream_) return;
    detail::on_device(device_, [this] { retire_stream(stream_); });
    cudaStreamDestroy(stream_);
  }
  Stream(Stream&& o) noexcept : device_(o.device_), stream_(std::exchange(o.stream_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    std::swap(device_, o.device_);
    std::swap(stream_, o.stream_);
    return *this;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  void synchronize() const { CTMLLM_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
};

// Runs the calling thread's ctmllm work on the current device on `stream` until the scope ends:
// ops, copies, allocations, cuBLASLt and cuDNN calls, graph captures and launches. `stream` is one
// the caller made on that device (a cuda::Stream, or cudaStreamCreate's; not the legacy or the
// per-thread default stream, which are not one stream the allocator could key on); a raw stream
// gets retire_stream() before it is destroyed.
//
// Entering, `stream` waits for the work queued so far on the stream it replaces; leaving, that
// stream waits for the scope's work. So tensors made before the scope can be used in it and those
// made in it after it, with no host wait, while other threads' scopes run at once. A tensor used on
// a stream other than the one it was made for is freed under the stream that used it last (or
// after that stream's work is done). Scopes nest and belong to their thread.
class StreamScope {
 public:
  explicit StreamScope(cudaStream_t stream) : device_(current_device()), stream_(stream) {
    CTMLLM_CHECK(stream != nullptr && stream != cudaStreamLegacy && stream != cudaStreamPerThread,
                 "cuda::StreamScope: pass a stream made with cudaStreamCreate (or cuda::Stream), not a default stream");
    int stream_device = -1;
    CTMLLM_CUDA_CHECK(cudaStreamGetDevice(stream, &stream_device));
    CTMLLM_CHECK(stream_device == device_, "cuda::StreamScope: the stream belongs to device ", stream_device,
                 ", device ", device_, " is current");
    replaced_ = current_stream();
    order_after(stream_, replaced_);
    slot_saved_ = std::exchange(slot(), stream_);
  }
  ~StreamScope() {
    slot() = slot_saved_;
    detail::on_device(device_, [this] { order_after(replaced_, stream_); });
  }
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  cudaStream_t& slot() { return detail::scoped_streams()[size_t(device_)]; }

  int device_;
  cudaStream_t stream_;
  cudaStream_t replaced_ = nullptr;    // the stream current before the scope
  cudaStream_t slot_saved_ = nullptr;  // the slot's value before the scope (null: the device's own)
};

}  // namespace ctmllm::cuda
