#pragma once
// `ctmllm tokenize` and `ctmllm detokenize`: the tokenizer as a filter, so any text can be checked
// against another implementation.
//   ctmllm tokenize --tokenizer DIR [--add-special-tokens] < text      -> [ids] on one line
//   ctmllm detokenize --tokenizer DIR [--skip-special-tokens] < [ids]  -> text
#include <CLI/CLI.hpp>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "ctmllm/text/tokenizer.hpp"

namespace ctmllm::cli {

inline std::string read_stdin() { return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()}; }

inline void add_tokenize_commands(CLI::App& app) {
  auto* tok = app.add_subcommand("tokenize", "Encode UTF-8 text from stdin; print the ids as one JSON array");
  static std::string tok_dir;
  static bool add_special = false;
  tok->add_option("--tokenizer", tok_dir, "Folder with tokenizer.json or tokenizer.model (or the file itself)")->required();
  tok->add_flag("--add-special-tokens", add_special, "Add the tokenizer's special tokens (e.g. BOS), as HF's add_special_tokens=True");
  tok->callback([] {
    const text::Tokenizer t = text::Tokenizer::from_file(tok_dir);
    const std::vector<int32_t> ids = t.encode(read_stdin(), add_special);
    std::cout << nlohmann::json(ids).dump() << "\n";
  });

  auto* detok = app.add_subcommand("detokenize", "Decode a JSON array of ids from stdin; print the text");
  static std::string detok_dir;
  static bool skip_special = false;
  detok->add_option("--tokenizer", detok_dir, "Folder with tokenizer.json or tokenizer.model (or the file itself)")->required();
  detok->add_flag("--skip-special-tokens", skip_special, "Leave special tokens out of the text");
  detok->callback([] {
    const text::Tokenizer t = text::Tokenizer::from_file(detok_dir);
    const nlohmann::json j = nlohmann::json::parse(read_stdin(), nullptr, /*allow_exceptions=*/false);
    CTMLLM_CHECK(j.is_array(), "detokenize: stdin must hold a JSON array of token ids");
    std::vector<int32_t> ids;
    for (const auto& v : j) {
      CTMLLM_CHECK(v.is_number_integer(), "detokenize: every element must be an integer token id, got ", v.dump());
      const int64_t id = v.get<int64_t>();
      CTMLLM_CHECK(id >= 0 && id <= INT32_MAX, "detokenize: token id ", id, " is out of range");
      ids.push_back(int32_t(id));
    }
    std::cout << t.decode(ids, skip_special);
  });
}

}  // namespace ctmllm::cli
