#pragma once
// What the tests of files and error paths share: a scratch folder per test process, and the
// message of the ctmllm::Error a call raises.
#include <unistd.h>

#include <filesystem>
#include <string>

#include "ctmllm/core/error.hpp"

namespace ctmllm::testing {

// A path under the system's temporary folder, unique to this process and `name`; whatever a killed
// run left there is removed, and the folder is not created.
inline std::string scratch_dir(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("ctmllm_test_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

// The message of the ctmllm::Error that f() raises, or "(no error)".
inline std::string message_of(const auto& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace ctmllm::testing
