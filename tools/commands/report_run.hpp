#pragma once
// What `ctmllm report` does, on any device (no CLI11 here: report_cuda.cu, compiled by nvcc, runs it
// on the GPU): read the CT (and mask) from NIfTI, preprocess on the file's grid, encode once, write
// every region's findings in one batch, augment, print.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "ctmllm/augment/default_knowledge_base.hpp"
#include "ctmllm/augment/focused_inference.hpp"
#include "ctmllm/augment/normality.hpp"
#include "ctmllm/core/parallel.hpp"
#include "ctmllm/io/nifti.hpp"
#include "ctmllm/mllm/report.hpp"

namespace ctmllm::cli {

struct ReportArgs {
  std::string model, ct, mask, regions = "chest,abdomen,pelvis", knowledge_base, focused_config, device = "cpu";
  bool json = false, bf16 = false, normality = false, focused = false, do_sample = false;
  int64_t max_new_tokens = 512, num_beams = 1, top_k = 0;
  double temperature = 1.0, top_p = 1.0, repetition_penalty = 1.0;
  uint64_t seed = 0;
  int threads = 0;
};

inline std::vector<std::string> split_list(const std::string& s, const char* what) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    CTMLLM_CHECK(!item.empty(), what, ": empty entry in '", s, "'");
    out.push_back(item);
  }
  CTMLLM_CHECK(!out.empty(), what, ": empty list");
  return out;
}

// Prints the rows of one batch in order while they are generated together: the current row's text
// goes straight out, later rows are held until the rows before them end (their stop token).
class OrderedPrinter {
 public:
  OrderedPrinter(std::vector<std::string> titles, std::vector<int64_t> stop)
      : titles_(std::move(titles)), stop_(std::move(stop)), held_(titles_.size()), done_(titles_.size(), false) {
    open(0);
  }
  void text(size_t row, std::string_view piece) {
    if (row == current_) {
      std::cout << piece << std::flush;
    } else {
      held_[row] += piece;
    }
  }
  void token(size_t row, int64_t token) {
    if (std::find(stop_.begin(), stop_.end(), token) == stop_.end()) return;
    done_[row] = true;
    while (current_ < titles_.size() && done_[current_]) open(current_ + 1);
  }
  // After the batch: every row still held, in order.
  void finish() {
    while (current_ < titles_.size()) open(current_ + 1);
  }

 private:
  void open(size_t row) {
    if (row > 0) std::cout << "\n\n";
    current_ = row;
    if (row >= titles_.size()) return;
    std::cout << "## " << titles_[row] << "\n" << held_[row] << std::flush;
    held_[row].clear();
  }

  std::vector<std::string> titles_;
  std::vector<int64_t> stop_;
  std::vector<std::string> held_;
  std::vector<bool> done_;
  size_t current_ = 0;
};

inline const char* stop_reason_name(generate::StopReason r) {
  switch (r) {
    case generate::StopReason::eos: return "eos";
    case generate::StopReason::stop_string: return "stop_string";
    case generate::StopReason::max_new_tokens: return "max_new_tokens";
  }
  return "?";
}

// The whole command on one device: T = float on the CPU (--bf16: the LLM's matrices stored in bf16),
// float or bf16 compute on the GPU.
template <class T, class D>
void run_report_on(const ReportArgs& a) {
  using clock = std::chrono::steady_clock;
  if (a.threads > 0) set_num_threads(a.threads);
  const auto t0 = clock::now();
  llm::DecoderOptions options;
  if (a.bf16 && std::is_same_v<D, Cpu>) options.storage = llm::Storage::bf16;
  const auto model = mllm::Model<T, D>::from_pretrained(a.model, options);
  const std::vector<std::string> regions = split_list(a.regions, "--regions");
  for (const std::string& r : regions) model.config().region_prompt(r);  // an unknown region fails before any work
  CTMLLM_CHECK(a.mask.empty() || model.config().segmentation_mask, "--mask: the model in ", a.model,
               " was not built to read a segmentation mask (its config has segmentation_mask false)");
  CTMLLM_CHECK(!a.mask.empty() || !model.config().segmentation_mask, "--mask is required: the model in ", a.model,
               " reads the segmentation mask beside the CT");

  const io::NiftiImage ct_image = io::read_nifti(a.ct);
  const Tensor<T, D> ct = vision::preprocess_ct(ct_image, model.config().preprocess).template to<T>().template to_device<D>();
  Tensor<T, D> mask;
  if (!a.mask.empty()) {
    const io::NiftiImage mask_image = io::read_nifti(a.mask);
    CTMLLM_CHECK(mask_image.data.shape() == ct_image.data.shape(), a.mask, ": the mask grid ", mask_image.data.shape(),
                 " differs from the CT's ", ct_image.data.shape());
    mask = vision::preprocess_label_map(mask_image.data, ct_image.spacing[2], model.config().mask_num_classes,
                                        model.config().preprocess)
               .template to<T>()
               .template to_device<D>();
  }
  const auto t_loaded = clock::now();
  const autograd::Variable<T, D> visual = mllm::encode_ct(model, ct, mask);

  mllm::AnswerOptions o;
  generate::GenerationOptions& g = o.generation;
  g.max_new_tokens = a.max_new_tokens;
  g.num_beams = a.num_beams;
  g.do_sample = a.do_sample;
  g.temperature = a.temperature;
  g.top_k = a.top_k;
  g.top_p = a.top_p;
  g.repetition_penalty = a.repetition_penalty;
  g.seed = a.seed;
  const bool augment = a.normality || a.focused;
  const bool stream = !a.json && !augment && a.num_beams == 1;
  std::optional<OrderedPrinter> printer;
  if (stream) {
    printer.emplace(regions, mllm::SpecialIds::of(model).stop);
    o.on_text = [&](size_t row, std::string_view piece) { printer->text(row, piece); };
    g.on_token = [&](int64_t row, int64_t token) { printer->token(size_t(row), token); };
  }
  const std::vector<mllm::Answer> answers = mllm::write_reports(model, visual, regions, o);
  if (printer) {
    printer->finish();
    std::cout << "\n";
  }
  const auto t_generated = clock::now();

  // Augmenters, the paper's order: focused inference first, then the normality knowledge base.
  std::vector<std::string> final_text;
  nlohmann::json augment_json = nlohmann::json::object();
  const augment::KnowledgeBase kb =
      a.knowledge_base.empty() ? augment::default_knowledge_base() : augment::KnowledgeBase::load(a.knowledge_base);
  const augment::FocusedInferenceConfig fc = a.focused_config.empty() ? augment::FocusedInferenceConfig::defaults()
                                                                      : augment::FocusedInferenceConfig::load(a.focused_config);
  for (size_t i = 0; i < regions.size(); ++i) {
    std::string text = answers[i].text;
    nlohmann::json aj = nlohmann::json::object();
    if (a.focused && fc.regions.count(regions[i])) {
      const augment::FocusedRegion& fr = fc.region(regions[i]);
      mllm::AnswerOptions qo;
      qo.generation.do_sample = true;
      qo.generation.temperature = fc.temperature;
      qo.generation.top_p = fc.top_p;
      qo.generation.max_new_tokens = fc.max_new_tokens;
      qo.generation.seed = a.seed;
      const auto ask = [&](const std::string& question) {
        return mllm::answer(model, visual, {augment::focused_messages(fr, question)}, qo).front().text;
      };
      const augment::FocusedResult fres = augment::focused_inference(text, regions[i], fc, ask);
      text = fres.report;
      for (const auto& q : fres.answers)
        aj["focused"].push_back({{"question", q.question}, {"answer", q.answer}, {"added", q.added}});
    }
    if (a.normality) {
      const augment::NormalityResult n = augment::augment_normality(text, regions[i], kb);
      text = n.report;
      aj["normality_added"] = n.added.size();
    }
    final_text.push_back(text);
    augment_json[regions[i]] = aj;
  }
  const auto t_done = clock::now();
  const auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };

  if (a.json) {
    nlohmann::json j = {{"model", a.model}, {"ct", a.ct}, {"regions", nlohmann::json::object()}};
    if (!a.mask.empty()) j["mask"] = a.mask;
    for (size_t i = 0; i < regions.size(); ++i) {
      nlohmann::json r = {{"findings", final_text[i]},
                          {"generated", answers[i].text},
                          {"tokens", answers[i].tokens.size()},
                          {"stop", stop_reason_name(answers[i].reason)}};
      if (augment) r["augment"] = augment_json[regions[i]];
      j["regions"][regions[i]] = r;
    }
    j["seconds"] = {{"load", seconds(t_loaded - t0)}, {"generate", seconds(t_generated - t_loaded)},
                    {"augment", seconds(t_done - t_generated)}};
    std::cout << j.dump(2) << "\n";
  } else if (!stream) {
    for (size_t i = 0; i < regions.size(); ++i)
      std::cout << (i ? "\n" : "") << "## " << regions[i] << "\n" << final_text[i] << "\n";
  }
  std::fprintf(stderr, "report: %zu regions in %.1f s (load and preprocess %.1f s, generation %.1f s%s)\n", regions.size(),
               seconds(t_done - t0), seconds(t_loaded - t0), seconds(t_generated - t_loaded),
               augment ? (", augmenters " + std::to_string(seconds(t_done - t_generated)).substr(0, 4) + " s").c_str() : "");
}

}  // namespace ctmllm::cli
