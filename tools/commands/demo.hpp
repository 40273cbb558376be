#pragma once
// `ctmllm demo`: the main job on this machine with no downloads (tools/demo/run_demo.hpp).
#include <CLI/CLI.hpp>

#include "demo/run_demo.hpp"

namespace ctmllm::cli {

inline void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Train a small 3D MLLM on synthetic CT phantoms and score its held-out reports");
  static demo::DemoSettings s;
  static bool quick = false;
  static double min_f1 = 0;
  cmd->add_option("--out", s.out, "Run folder (data, tokenizer, models, scores, loss curve)")->capture_default_str();
  cmd->add_flag("--quick", quick, "About a minute: a smoke run of every stage (too short to learn the findings)");
  cmd->add_option("--seed", s.seed, "Seed of the dataset and of every training stage")->capture_default_str();
  cmd->add_option("--threads", s.threads, "CPU threads (default: all)");
  cmd->add_option("--train-cases", s.training_cases, "Training phantoms")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--val-cases", s.validation_cases, "Held-out phantoms")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--stage1-steps", s.stage1_steps, "Vision pretraining steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--stage2-steps", s.stage2_steps, "MLLM training steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--vqa-fraction", s.vqa_fraction, "Share of stage-2 samples that are yes/no questions")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--answer-weight", s.answer_weight, "Loss weight of the questions' answer tokens")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--min-f1", min_f1, "Exit with status 2 when the trained model's held-out F1 is below this");
  cmd->callback([] {
    if (quick) s.make_quick();
    const eval::ReportScores trained = demo::run_demo(s);
    if (trained.overall.findings.micro.f1 < min_f1) {
      std::fprintf(stderr, "ctmllm demo: held-out F1 %.3f is below --min-f1 %.3f\n", trained.overall.findings.micro.f1, min_f1);
      std::exit(2);
    }
  });
}

}  // namespace ctmllm::cli
