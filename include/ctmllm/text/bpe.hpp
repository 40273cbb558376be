#pragma once
// The BPE model of tokenizer.json: vocab + ranked merges, as HF tokenizers applies them to one
// pre-token at a time. Serves byte-level BPE (Llama-3, Qwen2: pre-tokens arrive byte-mapped) and
// SentencePiece-style BPE (Llama-2, Mistral: byte_fallback and unk_token).
//
// Merging repeatedly joins the adjacent pair of lowest merge rank, leftmost first; a heap keyed on
// (rank, position) with lazy invalidation does that in O(n log n). Results for short pieces are
// cached, since report text repeats its words.
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctmllm/core/error.hpp"
#include "ctmllm/text/json_file.hpp"
#include "ctmllm/text/string_map.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

class BpeModel {
 public:
  static BpeModel from_json(const nlohmann::json& m, const std::string& where) {
    CTMLLM_CHECK(m.is_object(), where, ": \"model\" is not an object");
    const std::string type = json_string_or(m, "type", "BPE", where);
    CTMLLM_CHECK(type == "BPE", where, ": unknown model type '", type, "' (supported: BPE)");
    CTMLLM_CHECK(m.contains("vocab") && m["vocab"].is_object(), where, ": BPE model has no \"vocab\" object");
    CTMLLM_CHECK(m.contains("merges") && m["merges"].is_array(), where, ": BPE model has no \"merges\" array");
    auto opt_string = [&](const char* key) -> std::string {
      if (!m.contains(key) || m[key].is_null()) return {};
      CTMLLM_CHECK(m[key].is_string(), where, ": BPE model field \"", key, "\" is not a string");
      return m[key].get<std::string>();
    };
    auto opt_bool = [&](const char* key) {
      if (!m.contains(key) || m[key].is_null()) return false;
      CTMLLM_CHECK(m[key].is_boolean(), where, ": BPE model field \"", key, "\" is not a boolean");
      return m[key].get<bool>();
    };
    CTMLLM_CHECK(opt_string("continuing_subword_prefix").empty() && opt_string("end_of_word_suffix").empty(), where,
                 ": BPE continuing_subword_prefix / end_of_word_suffix are not supported");
    if (m.contains("dropout") && !m["dropout"].is_null())
      CTMLLM_CHECK(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0, where,
                   ": BPE dropout is not supported (it makes encoding random)");

    BpeModel b;
    b.byte_fallback_ = opt_bool("byte_fallback");
    b.fuse_unk_ = opt_bool("fuse_unk");
    b.ignore_merges_ = opt_bool("ignore_merges");
    const auto& vocab = m["vocab"];
    b.vocab_.reserve(vocab.size());
    int64_t max_id = -1;
    // Ids index a table, so they must be dense-ish: a stray huge id must not allocate gigabytes.
    const int64_t id_limit = 2 * int64_t(vocab.size()) + 1024;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      CTMLLM_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0 &&
                       it.value().get<int64_t>() < id_limit,
                   where, ": vocab entry '", it.key(), "' has no valid id (ids run from 0 to about the vocab size, ",
                   vocab.size(), ")");
      const auto id = int32_t(it.value().get<int64_t>());
      b.vocab_[it.key()] = id;
      max_id = std::max<int64_t>(max_id, id);
    }
    b.tokens_.assign(size_t(max_id + 1), std::string());
    for (const auto& [tok, id] : b.vocab_) b.tokens_[size_t(id)] = tok;

    const std::string unk = opt_string("unk_token");
    if (!unk.empty()) {
      const auto id = b.token_to_id(unk);
      CTMLLM_CHECK(id.has_value(), where, ": unk_token '", unk, "' is not in the vocab");
      b.unk_id_ = *id;
    }
    if (b.byte_fallback_) {
      for (int v = 0; v < 256; ++v) b.byte_ids_[size_t(v)] = b.token_to_id(byte_piece(uint8_t(v))).value_or(-1);
    }

    const auto& merges = m["merges"];
    b.merges_.reserve(merges.size());
    int32_t rank = 0;
    std::string joined;
    for (const auto& e : merges) {
      std::string_view left, right;
      if (e.is_string()) {  // "a b"
        const std::string_view s = e.get_ref<const std::string&>();
        if (s.starts_with("#version")) continue;
        const size_t sp = s.find(' ');
        CTMLLM_CHECK(sp != std::string_view::npos && s.find(' ', sp + 1) == std::string_view::npos, where, ": merge ",
                     rank, " '", s, "' is not two tokens separated by one space");
        left = s.substr(0, sp);
        right = s.substr(sp + 1);
      } else {  // ["a", "b"]
        CTMLLM_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), where, ": merge ", rank,
                     " is neither \"a b\" nor [\"a\", \"b\"]");
        left = e[0].get_ref<const std::string&>();
        right = e[1].get_ref<const std::string&>();
      }
      joined.assign(left).append(right);
      const auto a = b.token_to_id(left), c = b.token_to_id(right), ab = b.token_to_id(joined);
      CTMLLM_CHECK(a && c && ab, where, ": merge ", rank, " ('", left, "', '", right,
                   "') uses a token that is not in the vocab");
      b.merges_[pair_key(*a, *c)] = Merge{rank, *ab};  // a later duplicate wins, as in HF
      ++rank;
    }
    b.split_at_metaspace_ = !b.ignore_merges_ && b.token_to_id(kMetaspace);
    for (auto it = b.vocab_.begin(); b.split_at_metaspace_ && it != b.vocab_.end(); ++it)
      b.split_at_metaspace_ = !has_char_before_metaspace(it->first);
    for (char32_t cp = 0; cp < b.char_ids_.size(); ++cp) {
      std::string s;
      append_utf8(s, cp);
      b.char_ids_[cp] = b.token_to_id(s).value_or(-1);
    }
    return b;
  }

  // One past the largest id of the vocab.
  size_t size() const { return tokens_.size(); }

  std::optional<int32_t> token_to_id(std::string_view token) const {
    const auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  // The token of `id`, or nullptr for an id the vocab does not define.
  const std::string* id_to_token(int32_t id) const {
    if (id < 0 || size_t(id) >= tokens_.size()) return nullptr;
    const std::string& t = tokens_[size_t(id)];
    if (t.empty()) {  // a hole in the ids, unless "" really is the token of `id`
      const auto it = vocab_.find(t);
      if (it == vocab_.end() || it->second != id) return nullptr;
    }
    return &t;
  }

  // Appends the ids of one pre-token (valid UTF-8).
  void tokenize(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      if (const auto id = token_to_id(word)) {
        out.push_back(*id);
        return;
      }
    }
    if (!split_at_metaspace_) {
      tokenize_piece(word, out);
      return;
    }
    size_t begin = 0;
    for (size_t pos = word.find(kMetaspace, 1); pos != std::string_view::npos; pos = word.find(kMetaspace, pos + 1)) {
      if (pos >= kMetaspace.size() && word.substr(pos - kMetaspace.size(), kMetaspace.size()) == kMetaspace) continue;
      tokenize_piece(word.substr(begin, pos - begin), out);
      begin = pos;
    }
    tokenize_piece(word.substr(begin), out);
  }

  static std::string byte_piece(uint8_t v) {
    static const char* hex = "0123456789ABCDEF";
    return std::string("<0x") + hex[v >> 4] + hex[v & 15] + ">";
  }

 private:
  BpeModel() = default;

  // Merging one piece, through the cache.
  void tokenize_piece(std::string_view word, std::vector<int32_t>& out) const {
    const bool cacheable = word.size() <= kMaxCachedBytes;
    if (cacheable) {
      std::shared_lock lock(cache_->mutex);
      if (const auto it = cache_->words.find(word); it != cache_->words.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t first = out.size();
    merge_word(word, out);
    if (cacheable) {
      std::unique_lock lock(cache_->mutex);
      if (cache_->words.size() < kCacheCapacity) cache_->words.emplace(std::string(word), std::vector<int32_t>(out.begin() + first, out.end()));
    }
  }

  struct Merge {
    int32_t rank, new_id;
  };
  struct Symbol {
    int32_t id, prev, next;
  };
  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  static constexpr size_t kMaxCachedBytes = 256, kCacheCapacity = 10000;
  static constexpr std::string_view kMetaspace = "\u2581";

  // Whether U+2581 follows some other character in `s`.
  static bool has_char_before_metaspace(std::string_view s) {
    for (size_t pos = s.find(kMetaspace, 1); pos != std::string_view::npos; pos = s.find(kMetaspace, pos + 1))
      if (pos < kMetaspace.size() || s.substr(pos - kMetaspace.size(), kMetaspace.size()) != kMetaspace) return true;
    return false;
  }

  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  const Merge* find_merge(int32_t a, int32_t b) const {
    const auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  }

  int32_t char_id(std::string_view ch, char32_t cp) const {
    if (cp < char_ids_.size()) return char_ids_[cp];
    return token_to_id(ch).value_or(-1);
  }

  // Initial symbols (characters, byte pieces or unk, as HF's BPE::merge_word), merges, output.
  void merge_word(std::string_view word, std::vector<int32_t>& out) const {
    std::vector<Symbol> sym;
    sym.reserve(word.size());
    auto push = [&](int32_t id) { sym.push_back({id, int32_t(sym.size()) - 1, int32_t(sym.size()) + 1}); };
    int32_t pending_unk = 0;  // unk symbols not yet pushed (fused into one when fuse_unk)
    auto flush_unk = [&] {
      for (; pending_unk > 0; --pending_unk) push(unk_id_);
    };
    for (size_t i = 0; i < word.size();) {
      const size_t start = i;
      const char32_t cp = next_char(word, i);
      const std::string_view ch = word.substr(start, i - start);
      if (const int32_t id = char_id(ch, cp); id >= 0) {
        flush_unk();
        push(id);
        continue;
      }
      if (byte_fallback_ && all_bytes_known(ch)) {
        flush_unk();
        for (char c : ch) push(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
      if (unk_id_ >= 0) pending_unk = fuse_unk_ ? 1 : pending_unk + 1;
    }
    flush_unk();
    if (sym.empty()) return;
    sym.back().next = -1;

    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    for (size_t p = 0; p + 1 < sym.size(); ++p)
      if (const Merge* m = find_merge(sym[p].id, sym[p + 1].id)) heap.push({m->rank, int32_t(p), m->new_id});
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& left = sym[size_t(c.pos)];
      if (left.id < 0 || left.next < 0) continue;
      Symbol& right = sym[size_t(left.next)];
      const Merge* m = find_merge(left.id, right.id);
      if (!m || m->new_id != c.new_id) continue;  // stale: a neighbour changed since it was queued
      left.id = c.new_id;
      right.id = -1;
      left.next = right.next;
      if (left.next >= 0) sym[size_t(left.next)].prev = c.pos;
      if (left.prev >= 0)
        if (const Merge* pm = find_merge(sym[size_t(left.prev)].id, left.id)) heap.push({pm->rank, left.prev, pm->new_id});
      if (left.next >= 0)
        if (const Merge* nm = find_merge(left.id, sym[size_t(left.next)].id)) heap.push({nm->rank, c.pos, nm->new_id});
    }
    for (const Symbol& s : sym)
      if (s.id >= 0) out.push_back(s.id);
  }

  bool all_bytes_known(std::string_view ch) const {
    for (char c : ch)
      if (byte_ids_[static_cast<unsigned char>(c)] < 0) return false;
    return true;
  }

  StringMap<int32_t> vocab_;
  std::vector<std::string> tokens_;  // by id
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<int32_t> char_ids_ = std::vector<int32_t>(0x800, -1);  // ids of single characters below U+0800
  std::array<int32_t, 256> byte_ids_{};                               // ids of <0xNN> pieces (byte_fallback)
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  // SentencePiece-style vocabularies put U+2581 (the space) only at the start of a token or in runs
  // of it. Then no merge can join a character to a U+2581 that follows it, and a long word splits
  // there into pieces that merge independently (and hit the cache): same result, linear time.
  bool split_at_metaspace_ = false;
  struct WordCache {
    std::shared_mutex mutex;
    StringMap<std::vector<int32_t>> words;
  };
  std::unique_ptr<WordCache> cache_ = std::make_unique<WordCache>();  // filled by const encode calls
};

}  // namespace ctmllm::text
