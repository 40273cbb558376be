// The smallest program that embeds ctmllm: load a model folder, read a NIfTI CT (and its
// segmentation mask when the model takes one), write the report of each region. The first region
// streams to stdout as it is generated; the others (decoded in the same batch) follow.
//
//   embed_minimal --model DIR --ct scan.nii.gz [--mask seg.nii.gz] [--regions chest,abdomen,pelvis]
//
// No trained model ships with the repository: `make_tiny_model --out DIR` writes a random one
// (its reports are noise), which is what the CI run reads, with tests/data/head_ct.nii.gz.
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ctmllm/io/nifti.hpp"
#include "ctmllm/mllm/report.hpp"

using namespace ctmllm;

int main(int argc, char** argv) {
  CLI::App app{"Writes the report of a CT with a 3D MLLM"};
  std::string model_dir, ct_path, mask_path;
  std::vector<std::string> regions{"chest", "abdomen", "pelvis"};
  int64_t max_new_tokens = 512;
  app.add_option("--model", model_dir, "model folder (mllm::Model::from_pretrained)")->required();
  app.add_option("--ct", ct_path, "CT volume (.nii or .nii.gz, Hounsfield units)")->required();
  app.add_option("--mask", mask_path, "segmentation label map on the CT's grid (models that take one)");
  app.add_option("--regions", regions, "regions to report on")->delimiter(',');
  app.add_option("--max-new-tokens", max_new_tokens, "longest answer, in tokens");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto model = mllm::Model<float>::from_pretrained(model_dir);
    const auto& pre = model.config().preprocess;
    const Tensor<float, Cpu> ct = vision::preprocess_ct(io::read_nifti(ct_path), pre);
    const Tensor<float, Cpu> mask =
        mask_path.empty() ? Tensor<float, Cpu>()
                          : vision::preprocess_label_map(io::read_nifti(mask_path), model.config().mask_num_classes, pre);

    mllm::AnswerOptions o;
    o.generation.max_new_tokens = max_new_tokens;
    std::printf("%s:\n", regions.front().c_str());
    o.on_text = [](size_t row, std::string_view piece) {
      if (row != 0) return;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
    const std::vector<mllm::Answer> reports = mllm::write_reports(model, ct, mask, regions, o);
    std::printf("\n");
    for (size_t i = 1; i < regions.size(); ++i) std::printf("%s:\n%s\n", regions[i].c_str(), reports[i].text.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embed_minimal: error: %s\n", e.what());
    return 1;
  }
}
