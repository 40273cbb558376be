#pragma once
// `ctmllm report`: reads a CT (and optionally its segmentation mask) from NIfTI, preprocesses it on
// the file's real grid (HU window, 5 mm slices from the header's spacing, area resize), encodes it
// once, and writes every region's findings in one batch.
//
//   ctmllm report --model DIR --ct scan.nii.gz [--mask seg.nii.gz] [--regions chest,abdomen,pelvis]
//                 [--json] [--normality [--knowledge-base KB.json]] [--focused [--focused-config F.json]]
//                 [--device cpu|cuda [--bf16]]
//
// --device cuda runs the model on the GPU (float32, or bf16 compute with --bf16; decode steps replayed
// from a CUDA graph): the program must have been built with CUDA (tools/CMakeLists.txt).
// Text output streams: the first region's findings appear as they are generated, the others (decoded
// in the same batch) follow in order. With an augmenter the model's text is augmented first, so each
// region is printed when it is complete. --json prints one JSON object at the end instead.
#include <CLI/CLI.hpp>
#include <string>

#include "commands/report_run.hpp"

namespace ctmllm::cli {

#if defined(CTMLLM_CLI_CUDA)
void run_report_cuda(const ReportArgs& a);  // report_cuda.cu
#endif

inline void run_report(const ReportArgs& a) {
  if (a.device == "cpu") return run_report_on<float, Cpu>(a);
#if defined(CTMLLM_CLI_CUDA)
  run_report_cuda(a);
#else
  throw Error("--device cuda: this ctmllm was built without CUDA (build it where CMake finds the CUDA toolkit and cuDNN)");
#endif
}

inline void add_report_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "Write the findings of each region of a CT scan (NIfTI) with a 3D MLLM");
  static ReportArgs a;
  cmd->add_option("--model", a.model, "Model folder (config.json, vision/projector weights, llm/)")->required();
  cmd->add_option("--ct", a.ct, "CT volume in Hounsfield units (.nii or .nii.gz)")->required();
  cmd->add_option("--mask", a.mask, "Segmentation label map on the CT's grid, for models that read one");
  cmd->add_option("--regions", a.regions, "Comma-separated regions, written in this order")->capture_default_str();
  cmd->add_flag("--json", a.json, "Print one JSON object with every region's findings instead of streaming text");
  cmd->add_option("--max-new-tokens", a.max_new_tokens, "Most tokens per region")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--num-beams", a.num_beams, "Beam search with this many beams (1: greedy or sampling)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--sample", a.do_sample, "Sample instead of greedy decoding");
  cmd->add_option("--temperature", a.temperature, "Sampling temperature")->capture_default_str();
  cmd->add_option("--top-k", a.top_k, "Sampling: keep the k most likely tokens (0: off)")->capture_default_str();
  cmd->add_option("--top-p", a.top_p, "Sampling: nucleus probability (1: off)")->capture_default_str();
  cmd->add_option("--repetition-penalty", a.repetition_penalty, "Penalty on tokens already present (1: off)")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed for sampling and focused inference")->capture_default_str();
  cmd->add_flag("--normality", a.normality, "Add normal-finding sentences from the knowledge base (augment/normality.hpp)");
  cmd->add_option("--knowledge-base", a.knowledge_base, "Knowledge base JSON for --normality (default: the built-in one)");
  cmd->add_flag("--focused", a.focused, "Ask the model the focused yes/no questions first (augment/focused_inference.hpp)");
  cmd->add_option("--focused-config", a.focused_config, "Questions JSON for --focused (default: the built-in ones)");
  cmd->add_option("--device", a.device, "Where the model runs: cpu, or cuda (a build with CUDA and a GPU)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_flag("--bf16", a.bf16,
                "cpu: hold the LLM's matrices in bf16 (half the memory; float accumulation); cuda: compute in bf16");
  cmd->add_option("--threads", a.threads, "CPU threads (default: all)");
  cmd->callback([] { run_report(a); });
}

}  // namespace ctmllm::cli
