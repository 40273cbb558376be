#pragma once
// train::Communicator over MPI for data-parallel training on CPUs (train/data_parallel.hpp). Needs
// <mpi.h>: link ctmllm::mpi (CMake option CTMLLM_WITH_MPI, on when find_package(MPI) succeeds).
// Run with `mpirun -np N program ...`.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/train/data_parallel.hpp"

namespace ctmllm::train {

namespace detail {
inline void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("MPI: ", what, " failed: ", std::string(text, size_t(len)));
}
template <class T> MPI_Datatype mpi_type();
template <> inline MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> inline MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

// MPI counts are int: long buffers go in chunks.
template <class T, class F>
void mpi_chunks(std::span<T> data, F&& f) {
  constexpr size_t kMax = size_t(INT_MAX);
  for (size_t off = 0; off < data.size(); off += kMax) f(data.data() + off, int(std::min(kMax, data.size() - off)));
}
}  // namespace detail

// MPI_Init on construction (unless something else initialized MPI), MPI_Finalize on destruction.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int done = 0;
    MPI_Initialized(&done);
    if (done) return;
    detail::mpi_check(MPI_Init(&argc, &argv), "MPI_Init");
    owner_ = true;
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  bool owner_ = false;
};

class MpiCommunicator final : public Communicator {
 public:
  // A private duplicate of comm, so the training collectives never match a user's messages.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD) {
    int init = 0;
    MPI_Initialized(&init);
    CTMLLM_CHECK(init, "MpiCommunicator: MPI is not initialized (create a train::MpiSession first)");
    detail::mpi_check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_weighted_sum(std::span<float> data, double weight) override { weighted_sum(data, weight); }
  void all_reduce_weighted_sum(std::span<double> data, double weight) override { weighted_sum(data, weight); }
  void broadcast(std::span<float> data, int root) override { bcast(data, root); }
  void broadcast(std::span<double> data, int root) override { bcast(data, root); }
  void all_reduce_sum_host(std::span<double> data) override { weighted_sum(data, 1.0); }

 private:
  // Scaled here, then summed by MPI: with two ranks a + b = b + a, and Open MPI's larger-count
  // algorithms reduce each element once and share the result, so every rank gets the same bits.
  template <class T>
  void weighted_sum(std::span<T> data, double weight) {
    if (weight != 1.0)
      for (T& x : data) x = T(double(x) * weight);
    detail::mpi_chunks(data, [&](T* p, int n) {
      detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, p, n, detail::mpi_type<T>(), MPI_SUM, comm_), "MPI_Allreduce");
    });
  }
  template <class T>
  void bcast(std::span<T> data, int root) {
    CTMLLM_CHECK(root >= 0 && root < size_, "MpiCommunicator::broadcast: root ", root, " is not a rank of ", size_);
    detail::mpi_chunks(data, [&](T* p, int n) { detail::mpi_check(MPI_Bcast(p, n, detail::mpi_type<T>(), root, comm_), "MPI_Bcast"); });
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace ctmllm::train
