// libFuzzer target for the safetensors reader (io/safetensors.hpp) parsing from memory; every
// tensor of a file that parses is read. The only acceptable failure is ctmllm::Error.
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I include \
//     tests/fuzz/fuzz_safetensors.cpp -o fuzz_safetensors
//   ./fuzz_safetensors -max_total_time=20 tests/fuzz/corpus/safetensors
#include <cstdint>
#include <cstring>
#include <memory>

#include "ctmllm/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ctmllm;
  std::shared_ptr<std::byte> buf(new std::byte[size + 1], std::default_delete<std::byte[]>());
  if (size) std::memcpy(buf.get(), data, size);
  try {
    const io::SafeTensorsFile f(io::MappedFile::from_memory("fuzz.safetensors", buf, size));
    for (const std::string& name : f.names()) {
      try {
        (void)f.get<float>(name);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
