#pragma once
// Focused inference (the paper's second report augmenter): the report-writing model is asked
// targeted yes/no questions about findings it tends to miss, and each "yes" puts a fixed
// abnormal-finding sentence in front of the region's report unless the report already holds it
// (case-insensitive; a sentence without a final '.', '!' or '?' gets a '.').
//
// The model is reached through a callback, question text in, answer text out, so any MLLM
// plugs in: the caller builds the conversation from the region's system prompt and the question
// (focused_messages; training on questions builds the same, train/mllm_batches.hpp), adds the CT's
// visual tokens and samples with the config's settings (the paper: temperature 0.5, top-p 0.9, at
// most 5 new tokens). Every question of the region is asked, in order; the
// sentences of the "yes" answers go first in the report, in question order (the published code
// prepended them one by one, which reverses that order).
//
// Run it before the normality augmenter: its sentences then name the pleura, pericardium and
// lungs, so no contradicting normal sentence is added for them.
//
// JSON format (FocusedInferenceConfig::from_json / to_json):
//   {"temperature": 0.5, "top_p": 0.9, "max_new_tokens": 5,
//    "regions": {"chest": {"system_prompt": "...", "questions": [{"question": "...", "sentence": "..."}]}}}
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/chat_template.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/eval/sentences.hpp"
#include "ctmllm/eval/utf8.hpp"

namespace ctmllm::augment {

struct FocusedQuestion {
  std::string question;
  std::string sentence;  // the abnormal finding stated on "yes"
};

struct FocusedRegion {
  std::string system_prompt;
  std::vector<FocusedQuestion> questions;
};

struct FocusedInferenceConfig {
  std::map<std::string, FocusedRegion> regions;
  // Sampling settings for the answering model (applied by the callback).
  double temperature = 0.5;
  double top_p = 0.9;
  int max_new_tokens = 5;

  // The paper's questions (chest only), in this project's words.
  static FocusedInferenceConfig defaults() {
    const std::string answer_rule = " Answer 'yes' if you suspect any of them, even with low confidence.";
    FocusedInferenceConfig c;
    c.regions["chest"] = {
        "You are a thoracic radiologist reading a chest CT. Answer only 'yes' or 'no'.",
        {{"Is there fluid in the chest: in either pleural cavity or in the pericardium?" + answer_rule,
          "Fluid is seen in the pleural cavity or the pericardium, in keeping with an effusion."},
         {"Are there patchy, linear or high-density opacities in the lungs?" + answer_rule,
          "Patchy, linear and high-density opacities are seen in the lungs, which may reflect inflammation, "
          "edema or interstitial disease."}}};
    c.regions["abdomen"] = {"You are an abdominal radiologist reading an abdominal CT. Answer only 'yes' or 'no'.", {}};
    c.regions["pelvis"] = {"You are a pelvic radiologist reading a pelvic CT. Answer only 'yes' or 'no'.", {}};
    return c;
  }

  static FocusedInferenceConfig from_json(const nlohmann::json& j, const std::string& origin = "focused inference config") {
    CTMLLM_CHECK(j.is_object(), origin, ": must be a JSON object");
    FocusedInferenceConfig c;
    const auto str = [&](const nlohmann::json& v, const std::string& where) {
      CTMLLM_CHECK(v.is_string(), origin, ": '", where, "' must be a string");
      return v.get<std::string>();
    };
    for (const auto& [key, v] : j.items()) {
      if (key == "temperature" || key == "top_p") {
        CTMLLM_CHECK(v.is_number() && v.get<double>() >= 0, origin, ": '", key, "' must be a number >= 0");
        (key == "temperature" ? c.temperature : c.top_p) = v.get<double>();
      } else if (key == "max_new_tokens") {
        CTMLLM_CHECK(v.is_number_integer() && v.get<int64_t>() > 0, origin, ": 'max_new_tokens' must be a positive integer");
        c.max_new_tokens = v.get<int>();
      } else if (key == "regions") {
        CTMLLM_CHECK(v.is_object(), origin, ": 'regions' must be an object");
        for (const auto& [name, r] : v.items()) {
          const std::string where = "regions." + name;
          CTMLLM_CHECK(r.is_object(), origin, ": '", where, "' must be an object");
          FocusedRegion region;
          for (const auto& [field, f] : r.items()) {
            if (field == "system_prompt") {
              region.system_prompt = str(f, where + ".system_prompt");
            } else if (field == "questions") {
              CTMLLM_CHECK(f.is_array(), origin, ": '", where, ".questions' must be an array");
              for (const auto& q : f) {
                CTMLLM_CHECK(q.is_object() && q.size() == 2 && q.contains("question") && q.contains("sentence"), origin,
                             ": each of '", where, ".questions' needs exactly 'question' and 'sentence'");
                region.questions.push_back({str(q["question"], where + ".question"), str(q["sentence"], where + ".sentence")});
                CTMLLM_CHECK(!eval::trim(region.questions.back().sentence).empty(), origin, ": empty sentence in '", where, "'");
              }
            } else {
              fail(origin, ": unknown key '", where, ".", field, "'");
            }
          }
          c.regions[name] = std::move(region);
        }
      } else {
        fail(origin, ": unknown key '", key, "'");
      }
    }
    return c;
  }

  static FocusedInferenceConfig load(const std::string& path) { return from_json(text::read_json_file(path), path); }

  nlohmann::json to_json() const {
    nlohmann::json regions_json = nlohmann::json::object();
    for (const auto& [name, r] : regions) {
      nlohmann::json qs = nlohmann::json::array();
      for (const FocusedQuestion& q : r.questions) qs.push_back({{"question", q.question}, {"sentence", q.sentence}});
      regions_json[name] = {{"system_prompt", r.system_prompt}, {"questions", qs}};
    }
    return {{"temperature", temperature}, {"top_p", top_p}, {"max_new_tokens", max_new_tokens}, {"regions", regions_json}};
  }

  const FocusedRegion& region(std::string_view name) const {
    const auto it = regions.find(std::string(name));
    CTMLLM_CHECK(it != regions.end(), "focused inference: no region '", std::string(name), "'");
    return it->second;
  }
};

// The conversation a question is asked in: the region's system prompt (when it has one), then the
// question as the user turn.
inline std::vector<text::ChatMessage> focused_messages(const FocusedRegion& region, const std::string& question) {
  std::vector<text::ChatMessage> m;
  if (!region.system_prompt.empty()) m.push_back({"system", region.system_prompt});
  m.push_back({"user", question});
  return m;
}

enum class YesNo { Yes, No, Unclear };

// The first yes-like or no-like word of a short answer decides ("Yes.", "assistant\n\nno",
// "Yes, there is"); an answer with neither is Unclear, which counts as no.
inline YesNo parse_yes_no(std::string_view answer) {
  const std::string lower = eval::lowercase(answer, "parse_yes_no");
  std::string word;
  for (size_t i = 0; i <= lower.size(); ++i) {
    if (i < lower.size() && lower[i] >= 'a' && lower[i] <= 'z') {
      word += lower[i];
      continue;
    }
    if (word == "yes" || word == "yeah" || word == "yep" || word == "true") return YesNo::Yes;
    if (word == "no" || word == "nope" || word == "false") return YesNo::No;
    word.clear();
  }
  return YesNo::Unclear;
}

struct FocusedAnswer {
  std::string question, answer;
  YesNo parsed = YesNo::Unclear;
  bool added = false;  // its sentence was put in front of the report
};

struct FocusedResult {
  std::string report;
  std::vector<FocusedAnswer> answers;  // one per question of the region, in order
};

using FocusedAsker = std::function<std::string(const std::string& question)>;

inline FocusedResult focused_inference(std::string_view report, std::string_view region,
                                       const FocusedInferenceConfig& config, const FocusedAsker& ask) {
  CTMLLM_CHECK(static_cast<bool>(ask), "focused inference: the model callback is empty");
  const FocusedRegion& r = config.region(region);
  FocusedResult out;
  const std::string lower_report = eval::lowercase(report, "focused inference");
  std::string prefix;
  for (const FocusedQuestion& q : r.questions) {
    FocusedAnswer a{q.question, ask(q.question)};
    a.parsed = parse_yes_no(a.answer);
    std::string sentence(eval::trim(q.sentence));
    if (!eval::ends_sentence(sentence)) sentence += '.';
    const bool present = lower_report.find(eval::lowercase(sentence, "focused inference")) != std::string::npos;
    if (a.parsed == YesNo::Yes && !present && prefix.find(sentence) == std::string::npos) {
      if (!prefix.empty()) prefix += ' ';
      prefix += sentence;
      a.added = true;
    }
    out.answers.push_back(std::move(a));
  }
  const std::string_view body = eval::trim(report);
  out.report = prefix.empty() ? std::string(report) : body.empty() ? prefix : prefix + " " + std::string(body);
  return out;
}

}  // namespace ctmllm::augment
