// ctmllm_fixture KIND FIXTURE_DIR OUT.safetensors: runs ctmllm on a reference fixture's inputs and
// writes its outputs under the reference's key names (fixture_runner.hpp lists them). Exit status 0 on
// success; one "error: ..." line and status 1 on bad input.
#include <cstdio>
#include <string>

#include "support/fixture_runner.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::printf("usage: ctmllm_fixture KIND FIXTURE_DIR OUT.safetensors\n"
                "  KIND: llm, vision, projector, mllm, lora, train\n"
                "Runs ctmllm on the inputs in FIXTURE_DIR/reference.safetensors and writes the outputs\n"
                "under the reference's key names.\n");
    return 0;
  }
  if (argc != 4) {
    std::fprintf(stderr, "usage: ctmllm_fixture KIND FIXTURE_DIR OUT.safetensors (--help for more)\n");
    return 2;
  }
  try {
    const auto out = ctmllm::fixture_runner::run(argv[1], argv[2]);
    out.write(argv[3]);
    std::printf("%s: wrote %zu tensors to %s\n", argv[1], out.floats.size() + out.ints.size(), argv[3]);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
