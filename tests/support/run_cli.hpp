#pragma once
// Runs the real `ctmllm` binary (CTMLLM_CLI) as a user would: arguments, optional stdin text;
// stdout, stderr and the exit status come back.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "support/files_and_errors.hpp"

namespace ctmllm::testing {

struct CliRun {
  int status;
  std::string out, err;
};

inline CliRun run_cli(const std::string& args, const std::string& input = {}) {
  const std::string tag = scratch_dir("cli_run");
  const std::string in_path = tag + ".in", err_path = tag + ".err";
  std::ofstream(in_path, std::ios::binary) << input;
  const std::string cmd = std::string(CTMLLM_CLI) + " " + args + " < " + in_path + " 2>" + err_path;
  std::string out, err;
  int status = -1;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    status = WEXITSTATUS(::pclose(p));
  }
  std::ifstream e(err_path, std::ios::binary);
  err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  std::remove(in_path.c_str());
  std::remove(err_path.c_str());
  return {status, out, err};
}

}  // namespace ctmllm::testing
