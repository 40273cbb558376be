// Chat templates: each family renders what transformers' apply_chat_template renders with that
// family's Jinja template (expected strings produced with transformers 5.24 / jinja2 from the
// templates of Meta-Llama-3-8B-Instruct, Llama-3.1-8B-Instruct, Phi-3-mini-4k-instruct,
// Qwen2.5-Instruct, Qwen3, Mistral-7B-Instruct-v0.1 and Gemma-3), detection from a template source,
// and the user-defined JSON format.
#include <string>
#include <vector>

#include "ctmllm/text/chat_template.hpp"
#include "ctmllm/text/tokenizer.hpp"
#include "support/catch.hpp"
#include "support/fixtures.hpp"

using namespace ctmllm;
using text::ChatMessage;
using text::ChatTemplate;

namespace {
const ChatMessage kSystem{"system", "  You are a radiologist.\n"};
const ChatMessage kUser{"user", "Describe the CT. \n"};
const ChatMessage kAssistant{"assistant", "<think>\nlook at the liver\n</think>\n\nThe liver is normal."};
const ChatMessage kUser2{"user", "And the lungs?"};

std::vector<ChatMessage> conversation(const std::string& name) {
  if (name == "multi") return {kSystem, kUser, kAssistant, kUser2};
  if (name == "last_assistant") return {kUser, kAssistant};
  return {kUser};
}
}  // namespace

TEST_CASE("family templates render exactly as transformers", "[text][chat]") {
  struct Case {
    const char* family;
    const char* conversation;
    bool generation_prompt;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"llama3", "multi", true, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a radiologist.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nDescribe the CT.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<think>\nlook at the liver\n</think>\n\nThe liver is normal.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd the lungs?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
      {"llama3", "user", false, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nDescribe the CT.<|eot_id|>"},
      {"llama3.1", "multi", true, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a radiologist.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nDescribe the CT.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<think>\nlook at the liver\n</think>\n\nThe liver is normal.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd the lungs?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
      {"llama3.1", "user", false, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nDescribe the CT.<|eot_id|>"},
      {"phi3", "multi", true, "<|system|>\n  You are a radiologist.\n<|end|>\n<|user|>\nDescribe the CT. \n<|end|>\n<|assistant|>\n<think>\nlook at the liver\n</think>\n\nThe liver is normal.<|end|>\n<|user|>\nAnd the lungs?<|end|>\n<|assistant|>\n"},
      {"phi3", "user", false, "<|user|>\nDescribe the CT. \n<|end|>\n<|endoftext|>"},
      {"qwen2.5", "multi", true, "<|im_start|>system\n  You are a radiologist.\n<|im_end|>\n<|im_start|>user\nDescribe the CT. \n<|im_end|>\n<|im_start|>assistant\n<think>\nlook at the liver\n</think>\n\nThe liver is normal.<|im_end|>\n<|im_start|>user\nAnd the lungs?<|im_end|>\n<|im_start|>assistant\n"},
      {"qwen2.5", "user", false, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nDescribe the CT. \n<|im_end|>\n"},
      {"qwen3", "multi", true, "<|im_start|>system\n  You are a radiologist.\n<|im_end|>\n<|im_start|>user\nDescribe the CT. \n<|im_end|>\n<|im_start|>assistant\nThe liver is normal.<|im_end|>\n<|im_start|>user\nAnd the lungs?<|im_end|>\n<|im_start|>assistant\n"},
      {"qwen3", "user", false, "<|im_start|>user\nDescribe the CT. \n<|im_end|>\n"},
      {"qwen3", "last_assistant", true, "<|im_start|>user\nDescribe the CT. \n<|im_end|>\n<|im_start|>assistant\n<think>\nlook at the liver\n</think>\n\nThe liver is normal.<|im_end|>\n<|im_start|>assistant\n"},
      {"mistral", "multi", true, "<s> [INST]   You are a radiologist.\n\n\nDescribe the CT. \n [/INST] <think>\nlook at the liver\n</think>\n\nThe liver is normal.</s> [INST] And the lungs? [/INST]"},
      {"mistral", "user", false, "<s> [INST] Describe the CT. \n [/INST]"},
      {"gemma", "multi", true, "<bos><start_of_turn>user\n  You are a radiologist.\n\n\nDescribe the CT.<end_of_turn>\n<start_of_turn>model\n<think>\nlook at the liver\n</think>\n\nThe liver is normal.<end_of_turn>\n<start_of_turn>user\nAnd the lungs?<end_of_turn>\n<start_of_turn>model\n"},
      {"gemma", "user", false, "<bos><start_of_turn>user\nDescribe the CT.<end_of_turn>\n"},
  };
  for (const Case& c : cases) {
    INFO(c.family << " / " << c.conversation << " / generation prompt " << c.generation_prompt);
    CHECK(ChatTemplate::family(c.family).render(conversation(c.conversation), c.generation_prompt) == c.expected);
  }
}

TEST_CASE("chatml without Qwen specifics keeps the conversation as given", "[text][chat]") {
  const ChatTemplate t = ChatTemplate::family("chatml");
  CHECK(t.render({kUser}, true) == "<|im_start|>user\nDescribe the CT. \n<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("roles the families do not know, and broken alternation, are errors", "[text][chat]") {
  CHECK_THROWS_AS(ChatTemplate::family("phi3").render({{"tool", "x"}}), Error);
  CHECK_THROWS_AS(ChatTemplate::family("mistral").render({kUser, kUser}), Error);
  CHECK_THROWS_AS(ChatTemplate::family("gemma").render({kAssistant}), Error);
  CHECK_THROWS_AS(ChatTemplate::family("llama3.1").render({{"ipython", "{}"}}), Error);
  CHECK_NOTHROW(ChatTemplate::family("llama3").render({{"ipython", "{}"}}));  // its template takes any role
  CHECK_THROWS_AS(ChatTemplate::family("llama4"), Error);
}

TEST_CASE("families are detected from a Jinja template source", "[text][chat]") {
  const auto name = [](const std::string& src) {
    const auto t = ChatTemplate::detect(src);
    return t ? t->name() : std::string("none");
  };
  CHECK(name("{{ '<|start_header_id|>' + message['role'] }}") == "llama3");
  CHECK(name("Cutting Knowledge Date: ... <|start_header_id|>") == "llama3.1");
  CHECK(name("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.") == "qwen2.5");
  CHECK(name("<|im_start|> ... <think>") == "qwen3");
  CHECK(name("<|im_start|>") == "chatml");
  CHECK(name("{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{{ '<|assistant|>\n' }}") == "phi3");
  CHECK(name("{{ bos_token + '[INST] ' }}") == "mistral");
  CHECK(name("[INST] <<SYS>>") == "none");  // Llama-2 chat is a different format
  CHECK(name("<start_of_turn>model") == "gemma");
  CHECK(name("{{ messages }}") == "none");
}

TEST_CASE("user-defined JSON templates", "[text][chat]") {
  const ChatTemplate t = ChatTemplate::from_json(nlohmann::json::parse(R"({
      "bos": "<s>", "default_system": "You read CT scans.", "trim": true,
      "roles": {"system": {"prefix": "<<SYS>>", "suffix": "<</SYS>>\n"},
                "user": {"prefix": "USER: ", "suffix": "\n"},
                "assistant": {"prefix": "ASSISTANT: ", "suffix": "</s>\n"}},
      "generation_prompt": "ASSISTANT:"})"),
                                                 "custom.json");
  CHECK(t.name() == "custom");
  CHECK(t.render({kUser}, true) == "<s><<SYS>>You read CT scans.<</SYS>>\nUSER: Describe the CT.\nASSISTANT:");
  CHECK(t.render({kSystem, kUser, {"assistant", "Normal."}}, false) ==
        "<s><<SYS>>You are a radiologist.<</SYS>>\nUSER: Describe the CT.\nASSISTANT: Normal.</s>\n");
  CHECK_THROWS_AS(t.render({{"tool", "x"}}), Error);
  CHECK_THROWS_AS(ChatTemplate::from_json(nlohmann::json::parse(R"({"bos": "<s>"})"), "custom.json"), Error);
  CHECK_THROWS_AS(ChatTemplate::from_json(nlohmann::json::parse(R"({"roles": {"user": {"prefix": 3}}})"), "custom.json"),
                  Error);
  CHECK_THROWS_AS(ChatTemplate::from_json(nlohmann::json::parse(R"({"generation_promt": "x", "roles": {"user": {}}})"),
                                          "custom.json"),
                  Error);
  CHECK_THROWS_AS(ChatTemplate::from_json(nlohmann::json::parse(R"({"roles": {"user": {"prefx": "U: "}}})"), "custom.json"),
                  Error);
  CHECK_THROWS_AS(ChatTemplate::from_json(nlohmann::json::parse(R"({"default_system": "x", "roles": {"user": {}}})"),
                                          "custom.json"),
                  Error);
}

TEST_CASE("a family template set on a tokenizer encodes to its special tokens", "[text][chat]") {
  text::Tokenizer tok = text::Tokenizer::from_file(testing::fixture_path("tokenizer/bpe_llama3/tokenizer.json"));
  CHECK_THROWS_AS(tok.apply_chat_template({kUser}), Error);  // no tokenizer_config.json here
  tok.set_chat_template(ChatTemplate::family("llama3"));
  const std::string prompt = tok.apply_chat_template({kUser});
  CHECK(prompt == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nDescribe the CT.<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
  const auto ids = tok.encode(prompt, false);
  CHECK(ids.front() == 0);  // <|begin_of_text|> of this small tokenizer
  CHECK(tok.decode(ids, true) == "user\n\nDescribe the CT.assistant\n\n");
}
