#pragma once
// Filling registered parameters from a checkpoint by name. A source is anything with
// `bool contains(name)` and `Tensor<T, Cpu> get<T>(name)` (io::SafeTensorsFile, a checkpoint
// folder, a PyTorch state dict). Names may be mapped (a prefix added or stripped) on the way.
#include <functional>
#include <string>
#include <vector>

#include "ctmllm/autograd/parameters.hpp"

namespace ctmllm::nn {

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;  // registered, not in the source
};

// For each parameter, looks up source_name(parameter name) in the source and copies it in
// (converting dtype, checking the shape). With `strict`, a missing tensor is an Error listing all
// missing names.
template <class T, class D, class Source>
LoadReport load_parameters(const autograd::Parameters<T, D>& params, const Source& source,
                           const std::function<std::string(const std::string&)>& source_name = {}, bool strict = true) {
  LoadReport report;
  for (const auto& p : params.all()) {
    const std::string key = source_name ? source_name(p.name()) : p.name();
    if (!source.contains(key)) {
      report.missing.push_back(key);
      continue;
    }
    const Tensor<T, Cpu> t = source.template get<T>(key);
    CTMLLM_CHECK(t.shape() == p.shape(), "load_parameters: '", key, "' has shape ", t.shape(), " in the checkpoint but ",
                 p.shape(), " in the model");
    if constexpr (std::is_same_v<D, Cpu>) p.value().copy_from(t);
    else p.value().copy_from(t.template to_device<D>());
    report.loaded.push_back(key);
  }
  if (strict && !report.missing.empty()) {
    std::string names;
    for (size_t i = 0; i < report.missing.size() && i < 10; ++i) names += (i ? ", " : "") + report.missing[i];
    if (report.missing.size() > 10) names += ", ...";
    fail("load_parameters: ", report.missing.size(), " parameters missing from the checkpoint: ", names);
  }
  return report;
}

}  // namespace ctmllm::nn
