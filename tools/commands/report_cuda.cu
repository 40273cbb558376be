// `ctmllm report --device cuda`: the command's run on Cuda tensors, in the one file of the program
// that nvcc compiles (ops on Cuda tensors are CUDA C++). Built when tools/CMakeLists.txt finds
// ctmllm::cuda and CTMLLM_CLI_CUDA is on.
#include "commands/report_run.hpp"

namespace ctmllm::cli {

void run_report_cuda(const ReportArgs& a) {
  CTMLLM_CHECK(Cuda::available(), "--device cuda: no CUDA device is visible");
  if (a.bf16) run_report_on<bf16, Cuda>(a);
  else run_report_on<float, Cuda>(a);
}

}  // namespace ctmllm::cli
