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

// j[key] as a string; `fallback` when j has no such key or it is null. Any other type is an Error
// naming the source and the key (nlohmann's value() would throw its own exception instead).
inline std::string json_string_or(const nlohmann::json& j, const char* key, const std::string& fallback,
                                  const std::string& where) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  CTMLLM_CHECK(j[key].is_string(), where, ": \"", key, "\" is not a string");
  return j[key].get<std::string>();
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
