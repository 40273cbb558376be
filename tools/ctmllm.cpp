// The ctmllm command-line program. Each subcommand lives in tools/commands/; errors end the
// program with one line on stderr and exit status 1.
#include <CLI/CLI.hpp>
#include <iostream>

#include "commands/bench.hpp"
#include "commands/demo.hpp"
#include "commands/eval.hpp"
#include "commands/report.hpp"
#include "commands/tokenize.hpp"
#include "commands/train.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ctmllm: 3D multimodal LLMs that read CT scans and write radiology reports"};
  app.require_subcommand(1);
  ctmllm::cli::add_bench_command(app);
  ctmllm::cli::add_demo_command(app);
  ctmllm::cli::add_report_command(app);
  ctmllm::cli::add_tokenize_commands(app);
  ctmllm::cli::add_train_command(app);
  ctmllm::cli::add_eval_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "ctmllm: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
