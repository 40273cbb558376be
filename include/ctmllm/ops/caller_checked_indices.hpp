#pragma once
// Ops that read indices from device memory (embedding ids, index_copy's rows) check their range on
// the device, which makes the host wait for the stream once per call (ops/cuda/index_check.cuh). A
// caller that wrote those indices itself, after checking them on the host, says so for a scope and
// the ops skip the device check, as they must under a CUDA graph capture anyway: a direct decode step
// (llm/static_decode_step.hpp) would otherwise wait 2·layers + 1 times. Host tensors are checked
// whatever the scope: on the CPU the check costs no wait.
#include <utility>

namespace ctmllm::ops {

// Whether the calling thread is inside an IndicesCheckedByCaller scope.
inline bool& indices_checked_by_caller() {
  thread_local bool checked = false;
  return checked;
}

class IndicesCheckedByCaller {
 public:
  IndicesCheckedByCaller() : previous_(std::exchange(indices_checked_by_caller(), true)) {}
  ~IndicesCheckedByCaller() { indices_checked_by_caller() = previous_; }
  IndicesCheckedByCaller(const IndicesCheckedByCaller&) = delete;
  IndicesCheckedByCaller& operator=(const IndicesCheckedByCaller&) = delete;

 private:
  bool previous_;
};

}  // namespace ctmllm::ops
