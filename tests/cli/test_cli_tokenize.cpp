// The `ctmllm tokenize` / `detokenize` contract, run as a user would: the real binary, text on
// stdin, one JSON array on stdout; compared with HF tokenizers' ids for the real tokenizers.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "support/catch.hpp"
#include "support/fixtures.hpp"
#include "support/run_cli.hpp"

using ctmllm::testing::run_cli;
using Run = ctmllm::testing::CliRun;

TEST_CASE("ctmllm tokenize and detokenize reproduce HF tokenizers on the real tokenizers", "[cli][text]") {
  for (const char* name : {"llama3", "qwen3", "llama2"}) {
    const std::string dir = ctmllm::testing::fixture_path(std::string("tokenizer_real/") + name);
    std::ifstream f(dir + "/cases.json");
    const auto cases = nlohmann::json::parse(f)["cases"];
    for (size_t i = 0; i < cases.size(); i += 12) {  // a sample: each run loads the tokenizer anew
      const auto& c = cases[i];
      INFO(name << " case " << i);
      const Run enc = run_cli("tokenize --tokenizer " + dir, c["text"].get<std::string>());
      REQUIRE(enc.status == 0);
      CHECK(nlohmann::json::parse(enc.out) == c["ids"]);
      const Run with = run_cli("tokenize --add-special-tokens --tokenizer " + dir, c["text"].get<std::string>());
      CHECK(nlohmann::json::parse(with.out) == c["ids_with_specials"]);
      const Run dec = run_cli("detokenize --tokenizer " + dir, c["ids"].dump());
      REQUIRE(dec.status == 0);
      CHECK(dec.out == c["decoded"].get<std::string>());
    }
  }
}

TEST_CASE("the CLI fails with one line and a non-zero status on bad input", "[cli]") {
  CHECK(run_cli("tokenize --tokenizer /nonexistent", "x").status != 0);
  const std::string dir = ctmllm::testing::fixture_path("tokenizer_real/llama3");
  CHECK(run_cli("detokenize --tokenizer " + dir, "not json").status != 0);
  CHECK(run_cli("detokenize --tokenizer " + dir, "[1, 999999999]").status != 0);
  CHECK(run_cli("tokenize --tokenizer " + dir, "\xff\xfe").status != 0);  // invalid UTF-8
  CHECK(run_cli("nosuchcommand", "").status != 0);
  CHECK(run_cli("tokenize --help", "").status == 0);
}
