#pragma once
// Training a byte-level BPE tokenizer from text, and writing it as a Hugging Face tokenizer.json +
// tokenizer_config.json that text::Tokenizer and transformers both load (ctmllm demo makes its own
// tokenizer from its synthetic reports this way, with no download).
//
//   text::BpeTrainerOptions opt;            // 2048 tokens, Llama-3 split regex, ChatML chat template
//   text::TrainedBpe bpe = text::train_bpe(reports, opt);
//   bpe.save("out/tokenizer");              // then text::Tokenizer::from_file("out/tokenizer")
//
// The algorithm is HF tokenizers' BpeTrainer::do_train (0.23), step by step, so that the vocab and
// the merges are HF's for the same corpus and settings (initial_alphabet = ByteLevel.alphabet()):
//   1. ids: the special tokens first, in the given order, then the 256 byte symbols of
//      ByteLevelMap sorted by code point (HF sorts its alphabet by character);
//   2. words: each text is split by the pre-tokenizer regex, each piece byte-mapped; equal words are
//      counted once with their multiplicity (texts are not split at special tokens, as in HF);
//   3. pair counts over the words, weighted by word count (overlapping pairs such as the two in
//      "aaa" both count, as in HF), each pair queued with the words that contain it;
//   4. repeatedly pop the queued pair with the highest count, ties to the smallest (left id,
//      right id). A popped entry whose count went stale is requeued with the current count. The new
//      token is left + right (a string already in the vocab keeps its id). It is merged, left to
//      right and non-overlapping, in the words the entry lists; the neighbouring pairs' counts move
//      by the word's count, and every pair that gained occurrences is queued with those words.
//   Training stops when the vocab reaches vocab_size, nothing is queued, or the best count is below
//   max(1, min_frequency). Cost: each merge touches only the words that contain its pair.
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/byte_level.hpp"
#include "ctmllm/text/pretokenize.hpp"
#include "ctmllm/text/string_map.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

struct BpeTrainerOptions {
  size_t vocab_size = 2048;    // special tokens + 256 byte symbols + merges
  uint64_t min_frequency = 2;  // a pair seen fewer times is not merged
  // Matched whole in text, ids 0, 1, ... in this order. The ChatML turn markers serve the chat template.
  std::vector<std::string> special_tokens = {"<|begin_of_text|>", "<|end_of_text|>", "<|pad|>", "<|im_start|>",
                                             "<|im_end|>",        "<im_patch>",      "<bx_start>", "<bx_end>"};
  SplitPattern pre_tokenizer = SplitPattern::Llama3;
  // Each must be one of special_tokens, or empty for none. The BOS is what encode(text, true) puts
  // first (TemplateProcessing, as Llama-3.1); the EOS is the end of an assistant turn, so generation
  // stops where the chat template closes a turn.
  std::string bos_token = "<|begin_of_text|>", eos_token = "<|im_end|>", pad_token = "<|pad|>";
  // Writes a ChatML chat_template (needs <|im_start|> and <|im_end|> among special_tokens).
  bool chatml_template = true;
  size_t model_max_length = 4096;
};

// The result: the vocab (token strings by id, byte-level encoded) and the merges in rank order.
struct TrainedBpe {
  BpeTrainerOptions options;
  std::vector<std::string> tokens;
  std::vector<std::pair<int32_t, int32_t>> merges;  // ids into tokens; a pair merged twice appears twice

  nlohmann::ordered_json tokenizer_json() const {
    using ojson = nlohmann::ordered_json;
    ojson added = ojson::array();
    for (const std::string& s : options.special_tokens)
      added.push_back({{"id", id_of(s)}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", true}});
    const ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
    const ojson pre = {{"type", "Sequence"},
                       {"pretokenizers",
                        {{{"type", "Split"},
                          {"pattern", {{"Regex", std::string(pattern_string(options.pre_tokenizer))}}},
                          {"behavior", "Isolated"},
                          {"invert", false}},
                         byte_level}}};
    // Llama-3.1's post-processor: ByteLevel (offsets only), then the BOS template.
    ojson post = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
    if (!options.bos_token.empty()) {
      const std::string& bos = options.bos_token;
      auto special = [&](int type_id) { return ojson{{"SpecialToken", {{"id", bos}, {"type_id", type_id}}}}; };
      auto sequence = [&](const char* id, int type_id) { return ojson{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
      const ojson tmpl = {{"type", "TemplateProcessing"},
                          {"single", {special(0), sequence("A", 0)}},
                          {"pair", {special(0), sequence("A", 0), special(1), sequence("B", 1)}},
                          {"special_tokens", {{bos, {{"id", bos}, {"ids", {id_of(bos)}}, {"tokens", {bos}}}}}}};
      post = {{"type", "Sequence"}, {"processors", {post, tmpl}}};
    }
    ojson vocab = ojson::object();
    for (size_t id = 0; id < tokens.size(); ++id) vocab[tokens[id]] = id;
    // HF keeps one rank per pair, the last one (its merges are a map), and writes them by rank.
    std::unordered_map<uint64_t, size_t> last;
    for (size_t r = 0; r < merges.size(); ++r) last[pair_key(merges[r].first, merges[r].second)] = r;
    ojson merge_list = ojson::array();
    for (size_t r = 0; r < merges.size(); ++r)
      if (last[pair_key(merges[r].first, merges[r].second)] == r)
        merge_list.push_back({tokens[size_t(merges[r].first)], tokens[size_t(merges[r].second)]});
    return {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer", pre},
            {"post_processor", post},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"ignore_merges", false},
              {"vocab", vocab},
              {"merges", merge_list}}}};
  }

  nlohmann::ordered_json tokenizer_config_json() const {
    using ojson = nlohmann::ordered_json;
    ojson decoder = ojson::object();
    for (const std::string& s : options.special_tokens)
      decoder[std::to_string(id_of(s))] = {{"content", s}, {"lstrip", false}, {"normalized", false},
                                           {"rstrip", false}, {"single_word", false}, {"special", true}};
    ojson c = {{"added_tokens_decoder", decoder}};
    auto token = [&](const char* key, const std::string& t) { c[key] = t.empty() ? ojson(nullptr) : ojson(t); };
    token("bos_token", options.bos_token);
    token("eos_token", options.eos_token);
    token("pad_token", options.pad_token);
    // Byte-level decoding is exact; HF's clean-up would change " ." back into ".".
    c["clean_up_tokenization_spaces"] = false;
    c["model_input_names"] = {"input_ids", "attention_mask"};
    c["model_max_length"] = options.model_max_length;
    c["tokenizer_class"] = "PreTrainedTokenizerFast";
    if (options.chatml_template) c["chat_template"] = std::string(kChatmlTemplate);
    return c;
  }

  // Writes tokenizer.json and tokenizer_config.json into `dir` (created when missing).
  void save(const std::string& dir) const {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    CTMLLM_CHECK(!ec, dir, ": cannot create the directory (", ec.message(), ")");
    write(dir + "/tokenizer.json", tokenizer_json());
    write(dir + "/tokenizer_config.json", tokenizer_config_json());
  }

  // ChatML as ChatTemplate::detect recognises it ("chatml") and transformers renders it.
  static constexpr std::string_view kChatmlTemplate =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

 private:
  int32_t id_of(const std::string& token) const {
    const auto it = std::find(tokens.begin(), tokens.end(), token);
    CTMLLM_CHECK(it != tokens.end(), "TrainedBpe: token '", token, "' is not in the vocab");
    return int32_t(it - tokens.begin());
  }
  static std::string_view pattern_string(SplitPattern p) {
    return p == SplitPattern::Llama3 ? kLlama3Pattern : p == SplitPattern::Qwen2 ? kQwen2Pattern : kGpt2Pattern;
  }
  static void write(const std::string& path, const nlohmann::ordered_json& j) {
    std::ofstream out(path, std::ios::binary);
    CTMLLM_CHECK(out.good(), path, ": cannot open for writing");
    out << j.dump(2) << "\n";
    CTMLLM_CHECK(out.good(), path, ": write failed");
  }
};

namespace detail {

// One pair of the training queue with the words to merge it in (HF's `Merge`).
struct BpeQueued {
  int64_t count;
  uint64_t pair;
  std::vector<uint32_t> words;
  // priority_queue puts the largest on top: highest count, then the smallest pair.
  bool operator<(const BpeQueued& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

// Merges every non-overlapping (a, b), left to right, into `merged` in one word's symbols and
// reports the neighbouring pairs that lost (-1) or gained (+1) an occurrence, in HF's order.
template <class Change>
void merge_in_word(std::vector<int32_t>& sym, int32_t a, int32_t b, int32_t merged, Change&& change) {
  for (size_t i = 0; i + 1 < sym.size(); ++i) {
    if (sym[i] != a || sym[i + 1] != b) continue;
    if (i > 0) {
      change(sym[i - 1], a, -1);
      change(sym[i - 1], merged, +1);
    }
    sym[i] = merged;
    sym.erase(sym.begin() + std::ptrdiff_t(i) + 1);
    if (i + 1 < sym.size()) {
      change(b, sym[i + 1], -1);
      change(merged, sym[i + 1], +1);
    }
  }
}

}  // namespace detail

// Trains on `texts` (valid UTF-8 each); see the top of this file for the algorithm.
inline TrainedBpe train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& options) {
  TrainedBpe out;
  out.options = options;
  StringMap<int32_t> ids;
  auto add_token = [&](std::string s) {
    const auto [it, fresh] = ids.emplace(s, int32_t(out.tokens.size()));
    if (fresh) out.tokens.push_back(std::move(s));
    return it->second;
  };

  for (const std::string& s : options.special_tokens) {
    CTMLLM_CHECK(!s.empty() && utf8_error_offset(s) == std::string_view::npos,
                 "train_bpe: a special token is empty or not valid UTF-8");
    CTMLLM_CHECK(!ids.count(s), "train_bpe: special token '", s, "' is listed twice");
    add_token(s);
  }
  for (const std::string* t : {&options.bos_token, &options.eos_token, &options.pad_token})
    CTMLLM_CHECK(t->empty() || ids.count(*t), "train_bpe: bos/eos/pad token '", *t, "' is not one of the special tokens");
  if (options.chatml_template)
    CTMLLM_CHECK(ids.count("<|im_start|>") && ids.count("<|im_end|>"),
                 "train_bpe: the ChatML chat template needs <|im_start|> and <|im_end|> among the special tokens");
  CTMLLM_CHECK(options.vocab_size >= ids.size() + 256, "train_bpe: vocab_size ", options.vocab_size,
               " leaves no room for the ", ids.size(), " special tokens and the 256 byte symbols");

  // The 256 byte symbols, by code point of the character standing for each byte.
  const ByteLevelMap& bytes = ByteLevelMap::get();
  std::vector<std::pair<char32_t, int>> alphabet;  // (character, byte)
  for (int b = 0; b < 256; ++b) {
    size_t i = 0;
    alphabet.emplace_back(next_char(bytes.encode(static_cast<unsigned char>(b)), i), b);
  }
  std::sort(alphabet.begin(), alphabet.end());
  std::array<int32_t, 256> byte_id{};
  for (const auto& [cp, b] : alphabet) byte_id[size_t(b)] = add_token(std::string(bytes.encode(static_cast<unsigned char>(b))));

  // Distinct words as byte-symbol ids, with counts (in order of first appearance).
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  StringMap<uint32_t> word_index;
  for (size_t t = 0; t < texts.size(); ++t) {
    CTMLLM_CHECK(utf8_error_offset(texts[t]) == std::string_view::npos, "train_bpe: text ", t, " is not valid UTF-8");
    split_by_pattern(options.pre_tokenizer, texts[t], [&](std::string_view piece) {
      if (const auto it = word_index.find(piece); it != word_index.end()) {
        ++counts[it->second];
        return;
      }
      word_index.emplace(piece, uint32_t(words.size()));
      std::vector<int32_t> sym;
      sym.reserve(piece.size());
      for (char c : piece) sym.push_back(byte_id[static_cast<unsigned char>(c)]);
      words.push_back(std::move(sym));
      counts.push_back(1);
    });
  }

  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;  // pairs that gained occurrences, and where
  auto note = [&](uint64_t pair, uint32_t w) {
    auto& list = where[pair];
    if (list.empty() || list.back() != w) list.push_back(w);  // words arrive one at a time
  };
  for (uint32_t w = 0; w < words.size(); ++w)
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t p = TrainedBpe::pair_key(words[w][i], words[w][i + 1]);
      pair_counts[p] += counts[w];
      note(p, w);
    }
  std::priority_queue<detail::BpeQueued> queue;
  auto flush = [&] {
    for (auto& [pair, list] : where)
      if (const int64_t c = pair_counts[pair]; c > 0) queue.push({c, pair, std::move(list)});
    where.clear();
  };
  flush();

  const int64_t min_count = std::max<int64_t>(1, int64_t(options.min_frequency));
  while (out.tokens.size() < options.vocab_size && !queue.empty()) {
    detail::BpeQueued top = queue.top();
    queue.pop();
    if (const int64_t now = pair_counts[top.pair]; now != top.count) {
      top.count = now;
      queue.push(std::move(top));
      continue;
    }
    if (top.count < min_count) break;
    const auto a = int32_t(top.pair >> 32), b = int32_t(uint32_t(top.pair));
    const int32_t merged = add_token(out.tokens[size_t(a)] + out.tokens[size_t(b)]);
    out.merges.emplace_back(a, b);
    for (uint32_t w : top.words)
      detail::merge_in_word(words[w], a, b, merged, [&](int32_t x, int32_t y, int delta) {
        const uint64_t p = TrainedBpe::pair_key(x, y);
        pair_counts[p] += delta * counts[w];
        if (delta > 0) note(p, w);
      });
    flush();
  }
  return out;
}

}  // namespace ctmllm::text
