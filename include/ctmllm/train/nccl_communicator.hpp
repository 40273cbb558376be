#pragma once
// train::Communicator over NCCL for data-parallel training on GPUs (train/data_parallel.hpp), one
// rank per GPU: DataParallel<T, Cuda> hands it device buffers (gradients, parameters). Needs
// CTMLLM_WITH_CUDA and CTMLLM_WITH_NCCL (link ctmllm::nccl). The ranks share one ncclUniqueId made
// by rank 0: NcclCommunicator::over_mpi() passes it over MPI when ctmllm::mpi is linked too.
// Collectives on device buffers are queued on the current stream and return without waiting: the
// work that reads the result (the optimizer step, a copy to the host) is queued after them on the same
// stream. A step's gradients are one all-reduce each, so a host wait per call would cost hundreds of
// waits per step.
#if !defined(CTMLLM_WITH_CUDA) || !defined(CTMLLM_WITH_NCCL)
#error "train/nccl_communicator.hpp needs CTMLLM_WITH_CUDA and CTMLLM_WITH_NCCL (link ctmllm::nccl)"
#endif
#include <cuda_runtime.h>
#include <nccl.h>

#include <span>
#include <string>

#include "ctmllm/core/device.hpp"
#include "ctmllm/core/error.hpp"
#include "ctmllm/train/data_parallel.hpp"
#if defined(CTMLLM_WITH_MPI)
#include <mpi.h>
#endif

namespace ctmllm::train {

namespace detail {
inline void nccl_check(ncclResult_t r, const char* what) {
  CTMLLM_CHECK(r == ncclSuccess, "NCCL: ", what, " failed: ", ncclGetErrorString(r));
}
template <class T> ncclDataType_t nccl_type();
template <> inline ncclDataType_t nccl_type<float>() { return ncclFloat32; }
template <> inline ncclDataType_t nccl_type<double>() { return ncclFloat64; }
}  // namespace detail

class NcclCommunicator final : public Communicator {
 public:
  // Rank `rank` of `size` on CUDA device `device`; every rank passes rank 0's id.
  NcclCommunicator(const ncclUniqueId& id, int rank, int size, int device) : rank_(rank), size_(size) {
    CTMLLM_CHECK(size >= 1 && rank >= 0 && rank < size, "NcclCommunicator: rank ", rank, " is not in [0, ", size, ")");
    cuda::check(cudaSetDevice(device), "cudaSetDevice");
    detail::nccl_check(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // Rank 0 makes the id; the others receive it.
  static ncclUniqueId make_id() {
    ncclUniqueId id;
    detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    return id;
  }
#if defined(CTMLLM_WITH_MPI)
  // One GPU per MPI rank: device = rank modulo the visible devices.
  static NcclCommunicator over_mpi(MPI_Comm comm = MPI_COMM_WORLD) {
    int rank = 0, size = 1, devices = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    ncclUniqueId id{};
    if (rank == 0) id = make_id();
    CTMLLM_CHECK(MPI_Bcast(&id, int(sizeof(id)), MPI_BYTE, 0, comm) == MPI_SUCCESS, "NcclCommunicator: MPI_Bcast of the id failed");
    cuda::check(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
    return NcclCommunicator(id, rank, size, rank % devices);  // guaranteed elision: no copy or move
  }
#endif

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_weighted_sum(std::span<float> data, double weight) override { weighted_sum(data, weight); }
  void all_reduce_weighted_sum(std::span<double> data, double weight) override { weighted_sum(data, weight); }
  void broadcast(std::span<float> data, int root) override { bcast(data, root); }
  void broadcast(std::span<double> data, int root) override { bcast(data, root); }
  // Host values go through a device buffer (NCCL reduces device memory only).
  void all_reduce_sum_host(std::span<double> data) override {
    if (data.empty()) return;
    const auto buf = Cuda::allocate(data.size_bytes());
    Cuda::copy_from_host(buf.get(), data.data(), data.size_bytes());
    weighted_sum(std::span<double>(reinterpret_cast<double*>(buf.get()), data.size()), 1.0);
    Cuda::copy_to_host(data.data(), buf.get(), data.size_bytes());
  }

 private:
  // NCCL's pre-multiplied sum scales each rank's input by its own weight inside the reduction; the
  // ring reduces each element once and shares the result, so every rank gets the same bits.
  template <class T>
  void weighted_sum(std::span<T> data, double weight) {
    if (data.empty()) return;
    T scalar = T(weight);
    ncclRedOp_t op;
    detail::nccl_check(ncclRedOpCreatePreMulSum(&op, &scalar, detail::nccl_type<T>(), ncclScalarHostImmediate, comm_),
                       "ncclRedOpCreatePreMulSum");
    const cudaStream_t stream = cuda::current_stream();  // queued after the kernels that wrote data
    const ncclResult_t r = ncclAllReduce(data.data(), data.data(), data.size(), detail::nccl_type<T>(), op, comm_, stream);
    ncclRedOpDestroy(op, comm_);  // allowed once the collective is queued
    detail::nccl_check(r, "ncclAllReduce");
  }
  template <class T>
  void bcast(std::span<T> data, int root) {
    CTMLLM_CHECK(root >= 0 && root < size_, "NcclCommunicator::broadcast: root ", root, " is not a rank of ", size_);
    if (data.empty()) return;
    const cudaStream_t stream = cuda::current_stream();
    detail::nccl_check(ncclBroadcast(data.data(), data.data(), data.size(), detail::nccl_type<T>(), root, comm_, stream),
                       "ncclBroadcast");
  }

  ncclComm_t comm_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace ctmllm::train
