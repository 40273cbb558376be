// The NCCL communicator (train/nccl_communicator.hpp) on one GPU as a one-rank group: weighted sums,
// broadcasts and host reductions over device buffers, and DataParallel<float, Cuda> broadcasting
// parameters. Built when CUDA and NCCL are found; every case skips on a machine without a GPU.
#include "ctmllm/core.hpp"
#include "ctmllm/train/nccl_communicator.hpp"
#include "support/catch.hpp"

using namespace ctmllm;
using CudaTensor = Tensor<float, Cuda>;

TEST_CASE("a one-rank NCCL group scales, broadcasts and sums", "[cuda][nccl][train]") {
  if (!Cuda::available()) CTMLLM_SKIP("no CUDA device");
  train::NcclCommunicator comm(train::NcclCommunicator::make_id(), 0, 1, 0);
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  const CudaTensor x = CudaTensor::full({5}, 3.0f);
  comm.all_reduce_weighted_sum(std::span<float>(x.data(), 5), 0.5);
  CHECK(x.to_vector() == std::vector<float>(5, 1.5f));
  comm.broadcast(std::span<float>(x.data(), 5), 0);
  CHECK(x.to_vector() == std::vector<float>(5, 1.5f));
  std::vector<double> host = {1.0, 2.5};
  comm.all_reduce_sum_host(host);
  CHECK(host == std::vector<double>{1.0, 2.5});
  CHECK_THROWS_AS(comm.broadcast(std::span<float>(x.data(), 5), 1), Error);

  train::DataParallel<float, Cuda> dp(comm);
  autograd::Variable<float, Cuda> p(CudaTensor::full({3}, 2.0f), true, "p");
  dp.broadcast_parameters({p});
  CHECK(p.value().to_vector() == std::vector<float>(3, 2.0f));
}
