// libFuzzer target for the NIfTI reader: any bytes, plain or gzip, must either read or raise
// ctmllm::Error; the sanitizers turn any out-of-bounds read, overflow or leak into a finding.
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I include -isystem /usr/include/eigen3 \
//     tests/fuzz/fuzz_nifti.cpp -lz -o fuzz_nifti && ./fuzz_nifti -max_total_time=60 tests/fuzz/corpus/nifti
#include <cstddef>
#include <cstdint>
#include <span>

#include "ctmllm/io/nifti.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ctmllm;
  try {
    // A small inflate cap keeps gzip inputs from spending the fuzzer's memory.
    const io::NiftiFile f =
        io::NiftiFile::parse(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz.nii", 16 << 20);
    // Converting the first and last volumes reads every byte range the header can claim.
    const Tensor<float, Cpu> first = f.volume<float>(0);
    f.volume<double>(f.num_volumes() - 1);
    try {
      f.stored<double>();  // refused for 64-bit integers: an Error, not a finding
    } catch (const Error&) {
    }
    // What was read must write back and read again (or be refused with an Error).
    const auto encoded = io::encode_nifti(first, f.spacing(), f.affine());
    io::NiftiFile::parse(encoded, "fuzz-rewritten.nii").volume<float>();
  } catch (const Error&) {
  }
  return 0;
}
