#pragma once
// The report-text corpus the tokenizer benchmarks share with tokenizers_reference.py: every text of
// the real tokenizers' fixture cases, repeated until the corpus holds about 512 KiB, one report a line.
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ctmllm::bench {

inline std::vector<std::string> report_corpus(const std::string& source_dir) {
  std::vector<std::string> texts;
  for (const char* name : {"llama3", "qwen3", "llama2"}) {
    std::ifstream f(source_dir + "/tests/fixtures/tokenizer_real/" + name + "/cases.json");
    for (const auto& c : nlohmann::json::parse(f)["cases"]) texts.push_back(c["text"].get<std::string>());
  }
  std::vector<std::string> lines;
  size_t bytes = 0;
  while (bytes < (size_t(512) << 10))
    for (const auto& t : texts) {
      lines.push_back(t);
      bytes += t.size();
    }
  return lines;
}

}  // namespace ctmllm::bench
