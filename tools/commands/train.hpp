#pragma once
// `ctmllm train`: trains a 3D MLLM as a run.json says (train/mllm_training.hpp, docs/TRAINING.md).
//   ctmllm train --config run.json [--steps N] [--output DIR] [--resume]
// Progress goes to stderr; at the end stdout says where the model, log, loss curve and
// checkpoints are.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "ctmllm/train/mllm_training.hpp"

namespace ctmllm::cli {

inline void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a 3D MLLM on an AMOS-MM dataset as a run.json says (docs/TRAINING.md)");
  static std::string config, output;
  static int64_t steps = 0;
  static bool resume = false;
  cmd->add_option("--config", config, "The run.json")->required();
  cmd->add_option("--steps", steps, "Optimizer steps (replaces the config's steps and epochs)")->check(CLI::PositiveNumber);
  cmd->add_option("--output", output, "Output folder (replaces the config's output_dir)");
  cmd->add_flag("--resume", resume, "Continue from the latest checkpoint in the output folder");
  cmd->callback([] {
    train::MllmRunConfig c = train::MllmRunConfig::from_file(config);
    if (steps > 0) c.steps = steps;
    if (!output.empty()) c.output_dir = output;
    if (resume) c.resume = "latest";
    const train::MllmRunSummary s = train::train_mllm(c);
    std::printf("trained %lld of %lld steps in %.1f s (%.0f tokens/s, %lld trainable parameters); final loss %.4f",
                static_cast<long long>(s.steps), static_cast<long long>(s.total_steps), s.seconds, s.tokens_per_second,
                static_cast<long long>(s.trainable_parameters), s.final_loss);
    if (s.eval_loss) std::printf(", eval loss %.4f", *s.eval_loss);
    std::printf("\nmodel:       %s\n", s.model_dir.c_str());
    if (!s.adapter_dir.empty()) std::printf("adapter:     %s\n", s.adapter_dir.c_str());
    std::printf("log:         %s\nloss curve:  %s\n", s.log.c_str(), s.loss_curve.c_str());
    const auto ckpts = train::list_checkpoints(s.output_dir);
    if (!ckpts.empty())
      std::printf("checkpoints: %zu in %s (latest %s)\n", ckpts.size(), s.output_dir.c_str(), ckpts.back().second.c_str());
  });
}

}  // namespace ctmllm::cli
