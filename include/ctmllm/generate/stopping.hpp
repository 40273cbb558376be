#pragma once
// When a row stops: at an eos token (the token is kept), when the text of its generated tokens
// contains a stop string, or after max_new_tokens. Stop strings are matched on the detokenized text,
// so a stop string split across several tokens, or ending inside one, is found; the check runs
// after every token, so the first match is always caused by the newest token. The text is the
// generated tokens' only: a stop string that would straddle the prompt is not matched.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ctmllm/generate/options.hpp"

namespace ctmllm::generate {

class StoppingCriteria {
 public:
  explicit StoppingCriteria(const GenerationOptions& o)
      : eos_(o.eos_token_ids), stop_strings_(o.stop_strings), detokenize_(o.detokenize) {}

  bool is_eos(int64_t token) const { return std::find(eos_.begin(), eos_.end(), token) != eos_.end(); }

  // Why a row whose generated tokens are `generated` (the newest last) stops now, if it does;
  // max_new_tokens is the caller's count.
  std::optional<StopReason> check(std::span<const int64_t> generated) const {
    if (!generated.empty() && is_eos(generated.back())) return StopReason::eos;
    if (!stop_strings_.empty()) {
      const std::string text = detokenize_(generated);
      for (const std::string& s : stop_strings_)
        if (!s.empty() && text.find(s) != std::string::npos) return StopReason::stop_string;
    }
    return std::nullopt;
  }

 private:
  std::vector<int64_t> eos_;
  std::vector<std::string> stop_strings_;
  Detokenize detokenize_;
};

}  // namespace ctmllm::generate
