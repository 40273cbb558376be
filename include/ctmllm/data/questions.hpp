#pragma once
// Visual questions about a case (AMOS-MM's second track, docs/SYNTHETIC_CT.md "Questions"): a
// question with its answer, open (yes/no) or multiple choice, optionally tagged with the report
// region it is about. The JSON entry is AMOS-MM's VQA record ("labels": {"qa": [...]}, as the
// paper's code reads it) plus our optional "region":
//
//   {"question": "Which organ is enlarged?", "options": {"A": "Liver", "B": "Spleen", ...}, "answer": "B"}
//   {"question": "Is there a pleural effusion?", "answer": "Yes.", "region": "chest"}
//
// A multiple-choice question is asked and answered as the paper's code trains it: the question
// followed by " Choices: A. ... B. ...", answered "B. Spleen". Other keys of an entry (AMOS-MM's
// "type", "reasoning") are ignored.
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/data/findings.hpp"
#include "ctmllm/eval/sentences.hpp"

namespace ctmllm::data {

struct Question {
  std::string question;
  std::string answer;                          // the answer text, or the right option's letter
  std::optional<Region> region;                // what it is about: focused inference's system prompt
  std::map<std::string, std::string> options;  // multiple choice: letter -> text; empty for open questions

  // The user turn: the question, and the choices of a multiple-choice one.
  std::string prompt() const {
    std::string p = question;
    if (!options.empty()) p += " Choices:";
    for (const auto& [letter, text] : options) p += " " + letter + ". " + text;
    return p;
  }
  // The answer as the model is taught to write it.
  std::string reply() const { return options.empty() ? answer : answer + ". " + options.at(answer); }
};

namespace detail {

inline std::string nonblank_string(const nlohmann::json& j, const char* key, const std::string& where) {
  CTMLLM_CHECK(j.contains(key) && j[key].is_string() && !eval::trim(j[key].get<std::string>()).empty(), where, ": \"",
               key, "\" must be a non-empty string");
  return j[key].get<std::string>();
}

}  // namespace detail

// One entry; `where` names the file (and the entry) in errors.
inline Question question_from_json(const nlohmann::json& j, const std::string& where) {
  CTMLLM_CHECK(j.is_object(), where, ": a question must be an object with \"question\" and \"answer\"");
  Question q;
  q.question = detail::nonblank_string(j, "question", where);
  q.answer = detail::nonblank_string(j, "answer", where);
  if (j.contains("region") && !j["region"].is_null()) {
    CTMLLM_CHECK(j["region"].is_string(), where, ": \"region\" must be chest, abdomen or pelvis");
    try {
      q.region = parse_region(j["region"].get<std::string>());
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
  }
  if (j.contains("options") && !j["options"].is_null()) {
    const nlohmann::json& o = j["options"];
    CTMLLM_CHECK(o.is_object() && o.size() >= 2, where, ": \"options\" must be an object of at least two choices");
    for (const auto& [letter, text] : o.items()) {
      CTMLLM_CHECK(letter.size() == 1 && std::isupper(static_cast<unsigned char>(letter[0])), where, ": option '",
                   letter, "' is not a capital letter");
      CTMLLM_CHECK(text.is_string() && !eval::trim(text.get<std::string>()).empty(), where, ": option ", letter,
                   " must be a non-empty string");
      q.options[letter] = text.get<std::string>();
    }
    CTMLLM_CHECK(q.options.count(q.answer), where, ": the answer '", q.answer, "' is not one of the options' letters");
  }
  return q;
}

// A list of entries ("qa"); `where` names the file.
inline std::vector<Question> questions_from_json(const nlohmann::json& qa, const std::string& where) {
  CTMLLM_CHECK(qa.is_array(), where, ": \"qa\" must be a list of questions");
  std::vector<Question> out;
  for (size_t i = 0; i < qa.size(); ++i)
    out.push_back(question_from_json(qa[i], where + ": question " + std::to_string(i)));
  return out;
}

inline nlohmann::ordered_json question_to_json(const Question& q) {
  nlohmann::ordered_json j;
  j["question"] = q.question;
  if (!q.options.empty()) j["options"] = q.options;
  j["answer"] = q.answer;
  if (q.region) j["region"] = region_name(*q.region);
  return j;
}

}  // namespace ctmllm::data
