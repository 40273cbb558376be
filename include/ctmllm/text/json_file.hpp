#pragma once
// Reading the JSON files of a tokenizer directory, with errors that name the file.
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"

namespace ctmllm::text {

inline nlohmann::json parse_json_text(std::string_view text, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  CTMLLM_CHECK(!j.is_discarded(), where, ": invalid JSON");
  return j;
}

inline nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CTMLLM_CHECK(in.good(), path, ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  CTMLLM_CHECK(!in.bad(), path, ": read failed");
  return parse_json_text(ss.str(), path);
}

}  // namespace ctmllm::text
