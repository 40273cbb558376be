// libFuzzer target for the torch checkpoint reader: the bytes go to the restricted unpickler on
// their own (pickle seeds) and to the whole reader (zip + pickle + tensor views, .pth seeds); every
// tensor of an archive that loads is read. The only acceptable failure is ctmllm::Error.
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I include \
//     tests/fuzz/fuzz_torch_checkpoint.cpp -lz -o fuzz_torch_checkpoint
//   ./fuzz_torch_checkpoint -max_total_time=20 tests/fuzz/corpus/torch_checkpoint
#include <cstdint>
#include <cstring>
#include <memory>

#include "ctmllm/io/torch_checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ctmllm;
  try {
    io::pickle::unpickle({reinterpret_cast<const std::byte*>(data), size}, "fuzz.pkl");
  } catch (const Error&) {
  }
  std::shared_ptr<std::byte> buf(new std::byte[size + 1], std::default_delete<std::byte[]>());
  if (size) std::memcpy(buf.get(), data, size);
  try {
    const io::TorchCheckpoint ck(io::MappedFile::from_memory("fuzz.pth", buf, size));
    for (const std::string& name : ck.names()) {
      // A stride-0 (expanded) view may legitimately be far larger than the file; skip the big ones.
      if (ck.info(name).shape.numel() > (int64_t(1) << 22)) continue;
      try {
        (void)ck.get<float>(name);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
