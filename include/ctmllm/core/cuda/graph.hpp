#pragma once
// CUDA graphs: the work a function queues on the current stream, recorded once and then replayed
// with one launch (no per-kernel launch cost on the host, no gaps between kernels).
//
// A replay runs exactly the recorded launches on exactly the recorded addresses, so what changes from
// one replay to the next must live in device buffers that outlive the graph, rewritten before each
// launch (llm/static_decode_step.hpp does this for decoding). The capture is relaxed (the capturing
// thread may call cudaMalloc: the tensors it allocates come from the graph's own PrivatePool and
// stay the graph's), but anything that waits for the stream or copies to or from pageable host
// memory fails it: Graph::capture then throws and nothing of f has run. A capture records the whole
// stream, other threads' work on it included: threads sharing the device's own stream meanwhile need
// a StreamScope of their own.
#include <memory>
#include <utility>

#include "ctmllm/core/cuda/allocator.hpp"
#include "ctmllm/core/cuda/current_stream.hpp"
#include "ctmllm/core/cuda/error.hpp"
#include "ctmllm/core/cuda/per_device.hpp"

namespace ctmllm::cuda {

class Graph {
 public:
  Graph() = default;
  ~Graph() { reset(); }
  Graph(Graph&& o) noexcept { *this = std::move(o); }
  Graph& operator=(Graph&& o) noexcept {
    if (this != &o) {
      reset();
      exec_ = std::exchange(o.exec_, nullptr);
      done_ = std::exchange(o.done_, nullptr);
      device_ = o.device_;
      nodes_ = o.nodes_;
      pool_ = std::move(o.pool_);
    }
    return *this;
  }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Records what f() queues on the current stream. f's work does not run: launch() runs it.
  // Tensors f allocates live in the graph's pool; keep the ones to read after a launch (the outputs).
  // Throws Error when f throws or queues something a capture cannot hold.
  template <class F>
  static Graph capture(F&& f) {
    Graph g;
    g.device_ = current_device();
    const cudaStream_t stream = current_stream();
    g.pool_ = std::make_shared<PrivatePool>(g.device_);
    CTMLLM_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
    cudaGraph_t graph = nullptr;
    try {
      const UsePrivatePool use(g.pool_);
      f();
    } catch (...) {
      cudaStreamEndCapture(stream, &graph);  // the stream must leave capture mode; the error thrown says why
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    // A failed capture leaves its error as the thread's last error, though the stream is usable again:
    // cleared here, so that the next launch check (a caller falling back to direct work) does not
    // report it as its own.
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    if (ended != cudaSuccess) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
    }
    check(ended, "cudaStreamEndCapture (the captured work held a call that a graph cannot replay)");
    cudaError_t e = cudaGraphGetNodes(graph, nullptr, &g.nodes_);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&g.exec_, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) cudaGetLastError();
    check(e, "cudaGraphInstantiate");
    CTMLLM_CUDA_CHECK(cudaEventCreateWithFlags(&g.done_, cudaEventDisableTiming));
    return g;
  }

  bool defined() const { return exec_ != nullptr; }
  // Kernels, copies and memsets recorded.
  size_t nodes() const { return nodes_; }

  // Queues one replay on the current stream (on the device it was captured on). Every replay writes
  // the same blocks, so one on another stream than the last first waits for the last.
  void launch() const {
    CTMLLM_CHECK(exec_, "cuda::Graph::launch: no graph was captured");
    CTMLLM_CHECK(current_device() == device_, "cuda::Graph::launch: captured on device ", device_,
                 ", launched with device ", current_device(), " current");
    wait_for_last_replay();
    const cudaStream_t stream = current_stream();
    CTMLLM_CUDA_CHECK(cudaGraphLaunch(exec_, stream));
    CTMLLM_CUDA_CHECK(cudaEventRecord(done_, stream));
  }

  // Orders the current stream's next work after the last replay (no wait before the first: the event
  // was never recorded): for a caller about to rewrite the buffers a replay on another stream reads.
  void wait_for_last_replay() const {
    if (exec_) CTMLLM_CUDA_CHECK(cudaStreamWaitEvent(current_stream(), done_, 0));
  }

 private:
  void reset() {
    if (!exec_) return;
    cudaEventSynchronize(done_);  // a replay in flight still uses the pool's blocks
    cudaEventDestroy(done_);
    cudaGraphExecDestroy(exec_);
    exec_ = nullptr;
    done_ = nullptr;
  }

  cudaGraphExec_t exec_ = nullptr;
  cudaEvent_t done_ = nullptr;  // recorded after each replay
  int device_ = 0;
  size_t nodes_ = 0;
  std::shared_ptr<PrivatePool> pool_;  // the blocks the graph's work uses
};

}  // namespace ctmllm::cuda
