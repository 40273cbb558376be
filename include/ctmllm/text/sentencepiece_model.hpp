#pragma once
// A SentencePiece tokenizer.model (BPE with byte fallback, as Llama-2 / Mistral ship it), read and
// run without the sentencepiece library.
//
// The file is a protobuf ModelProto, read here field by field:
//   1 pieces (repeated): 1 piece (string), 2 score (float), 3 type (NORMAL=1 UNKNOWN=2 CONTROL=3
//                        USER_DEFINED=4 UNUSED=5 BYTE=6)
//   2 trainer_spec:      3 model_type (BPE=2), 24 treat_whitespace_as_suffix, 35 byte_fallback,
//                        40-43 unk/bos/eos/pad ids, 44 unk_surface
//   3 normalizer_spec:   1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
//                        4 remove_extra_whitespaces, 5 escape_whitespaces
// Other fields are skipped. Only the identity normalizer is supported (an empty charsmap), which is
// what the Llama / Mistral models use.
//
// Encoding follows sentencepiece: normalize (dummy-prefix space, spaces -> U+2581), split into
// characters with user-defined symbols whole, then repeatedly merge the adjacent pair whose
// concatenation is the piece of highest score (leftmost on ties); an unknown piece becomes its
// UTF-8 bytes as <0xNN> pieces when byte_fallback is on, else <unk> (consecutive ones fused).
#include <cstdint>
#include <cstring>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ctmllm/core/error.hpp"
#include "ctmllm/io/mapped_file.hpp"
#include "ctmllm/text/bpe.hpp"
#include "ctmllm/text/string_map.hpp"
#include "ctmllm/text/utf8.hpp"

namespace ctmllm::text {

// Reads protobuf wire format from a byte range; every overrun is an Error naming the source.
class ProtoReader {
 public:
  enum Wire { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

  ProtoReader(std::string_view data, const std::string& where) : data_(data), where_(where) {}

  // Reads the next field key; false at the end of the data.
  bool next(uint32_t& field, int& wire) {
    if (pos_ == data_.size()) return false;
    const uint64_t key = varint();
    field = uint32_t(key >> 3);
    wire = int(key & 7);
    CTMLLM_CHECK(field != 0 && (wire == kVarint || wire == kFixed64 || wire == kBytes || wire == kFixed32), where_,
                 ": corrupt protobuf (bad field key at byte ", pos_, ")");
    return true;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      CTMLLM_CHECK(pos_ < data_.size(), where_, ": truncated protobuf (varint at byte ", pos_, ")");
      const auto b = static_cast<unsigned char>(data_[pos_++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(where_, ": corrupt protobuf (varint longer than 10 bytes at byte ", pos_, ")");
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    CTMLLM_CHECK(n <= data_.size() - pos_, where_, ": truncated protobuf (", n, "-byte field at byte ", pos_,
                 " runs past the end)");
    const std::string_view s = data_.substr(pos_, size_t(n));
    pos_ += size_t(n);
    return s;
  }
  float fixed32_float() {
    CTMLLM_CHECK(data_.size() - pos_ >= 4, where_, ": truncated protobuf (float at byte ", pos_, ")");
    uint32_t u = 0;
    for (int k = 0; k < 4; ++k) u |= uint32_t(static_cast<unsigned char>(data_[pos_ + size_t(k)])) << (8 * k);
    pos_ += 4;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  void skip(int wire) {
    switch (wire) {
      case kVarint: varint(); break;
      case kBytes: bytes(); break;
      case kFixed64:
      case kFixed32: {
        const size_t n = wire == kFixed64 ? 8 : 4;
        CTMLLM_CHECK(data_.size() - pos_ >= n, where_, ": truncated protobuf (fixed field at byte ", pos_, ")");
        pos_ += n;
        break;
      }
    }
  }
  // An Error naming `what` unless the field just read has the expected wire type.
  void expect(int wire, int expected, const char* what) {
    CTMLLM_CHECK(wire == expected, where_, ": protobuf field ", what, " has wire type ", wire, ", expected ", expected);
  }

 private:
  std::string_view data_;
  std::string where_;
  size_t pos_ = 0;
};

class SentencePieceModel {
 public:
  enum class PieceType : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
  struct Piece {
    std::string text;
    float score = 0;
    PieceType type = PieceType::Normal;
  };

  static SentencePieceModel from_file(const std::string& path) {
    const io::MappedFile f(path);
    return from_bytes(std::string_view(reinterpret_cast<const char*>(f.data()), f.size()), path);
  }

  static SentencePieceModel from_bytes(std::string_view data, const std::string& where) {
    SentencePieceModel m;
    int model_type = 1;  // proto default: UNIGRAM
    bool suffix_whitespace = false;
    std::string normalizer_name;
    bool has_charsmap = false;
    ProtoReader r(data, where);
    uint32_t field;
    int wire;
    while (r.next(field, wire)) {
      if (field == 1) {
        r.expect(wire, ProtoReader::kBytes, "pieces");
        m.pieces_.push_back(read_piece(r.bytes(), where));
      } else if (field == 2) {
        r.expect(wire, ProtoReader::kBytes, "trainer_spec");
        ProtoReader t(r.bytes(), where);
        while (t.next(field, wire)) {
          auto int_field = [&] { return (t.expect(wire, ProtoReader::kVarint, "trainer_spec id"), int32_t(t.varint())); };
          switch (field) {
            case 3: model_type = int_field(); break;
            case 24: suffix_whitespace = int_field() != 0; break;
            case 35: m.byte_fallback_ = int_field() != 0; break;
            case 40: m.unk_id_ = int_field(); break;
            case 41: m.bos_id_ = int_field(); break;
            case 42: m.eos_id_ = int_field(); break;
            case 43: m.pad_id_ = int_field(); break;
            case 44:
              t.expect(wire, ProtoReader::kBytes, "unk_surface");
              m.unk_surface_ = std::string(t.bytes());
              break;
            default: t.skip(wire);
          }
        }
      } else if (field == 3) {
        r.expect(wire, ProtoReader::kBytes, "normalizer_spec");
        ProtoReader n(r.bytes(), where);
        while (n.next(field, wire)) {
          auto flag = [&] { return (n.expect(wire, ProtoReader::kVarint, "normalizer_spec flag"), n.varint() != 0); };
          switch (field) {
            case 1:
              n.expect(wire, ProtoReader::kBytes, "normalizer_spec.name");
              normalizer_name = std::string(n.bytes());
              break;
            case 2:
              n.expect(wire, ProtoReader::kBytes, "precompiled_charsmap");
              has_charsmap = !n.bytes().empty();
              break;
            case 3: m.add_dummy_prefix_ = flag(); break;
            case 4: m.remove_extra_whitespaces_ = flag(); break;
            case 5: m.escape_whitespaces_ = flag(); break;
            default: n.skip(wire);
          }
        }
      } else {
        r.skip(wire);
      }
    }
    CTMLLM_CHECK(!m.pieces_.empty(), where, ": no pieces (not a SentencePiece model?)");
    CTMLLM_CHECK(model_type == 2, where, ": SentencePiece model_type ", model_type,
                 " is not supported (only BPE = 2; 1 is unigram)");
    CTMLLM_CHECK(!has_charsmap, where, ": normalizer '", normalizer_name,
                 "' uses a precompiled charsmap; only the identity normalizer is supported");
    CTMLLM_CHECK(!suffix_whitespace, where, ": treat_whitespace_as_suffix is not supported");
    m.index(where);
    return m;
  }

  size_t size() const { return pieces_.size(); }
  const Piece& piece(int32_t id) const { return pieces_[size_t(id)]; }
  bool valid_id(int32_t id) const { return id >= 0 && size_t(id) < pieces_.size(); }
  std::optional<int32_t> piece_to_id(std::string_view text) const {
    if (const auto it = reserved_.find(text); it != reserved_.end()) return it->second;
    if (const auto it = normal_.find(text); it != normal_.end()) return it->second;
    return std::nullopt;
  }
  std::optional<int32_t> bos_id() const { return optional_id(bos_id_); }
  std::optional<int32_t> eos_id() const { return optional_id(eos_id_); }
  std::optional<int32_t> pad_id() const { return optional_id(pad_id_); }
  const std::string& unk_surface() const { return unk_surface_; }
  // Special for skip_special_tokens: control pieces (<s>, </s>) and <unk>.
  bool is_special(int32_t id) const {
    return valid_id(id) && (piece(id).type == PieceType::Control || piece(id).type == PieceType::Unknown);
  }

  // Appends the ids of `text` (valid UTF-8).
  void encode(std::string_view text, std::vector<int32_t>& out) const {
    const std::string norm = normalize(text);
    if (norm.empty()) return;
    bool prev_unk = false;
    for (const auto& [piece_text, id] : merge(norm)) {
      const bool unk = id == unk_id_;
      if (unk && byte_fallback_) {
        for (char c : piece_text) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      } else if (!(unk && prev_unk)) {  // a run of unknown pieces is one <unk>
        out.push_back(id);
      }
      prev_unk = unk && !byte_fallback_;
    }
  }

  // Appends the text of the ordinary pieces (not control, not <unk>) in [begin, end) the way
  // sentencepiece decodes: U+2581 -> space, the dummy-prefix space of the first piece dropped, byte
  // pieces reassembled into characters (an invalid byte -> U+FFFD).
  // `bos_space_allowed` (in/out) starts true for a new text; `out` may hold earlier text.
  void decode(const int32_t* begin, const int32_t* end, bool& bos_space_allowed, std::string& out) const {
    std::string bytes;
    auto flush_bytes = [&] {
      size_t i = 0, bad = 0;
      while (i < bytes.size()) {
        const size_t n = utf8_char_at(bytes, i, bad);
        if (n == 0) {
          append_utf8(out, kReplacementChar);
          ++i;
        } else {
          out.append(bytes, i, n);
          i += n;
        }
      }
      bytes.clear();
    };
    for (const int32_t* p = begin; p != end; ++p) {
      const Piece& pc = piece(*p);
      if (pc.type == PieceType::Byte) {
        bytes += char(byte_of_piece_[size_t(*p)]);
        continue;
      }
      flush_bytes();
      if (!out.empty()) bos_space_allowed = false;
      std::string_view t = pc.text;
      if (bos_space_allowed && (add_dummy_prefix_ || remove_extra_whitespaces_) && t.starts_with(kSpaceSymbol)) {
        t.remove_prefix(kSpaceSymbol.size());
        // sentencepiece drops only one such space, unless it removes extra white space anyway
        bos_space_allowed = remove_extra_whitespaces_;
      }
      for (size_t k; (k = t.find(kSpaceSymbol)) != std::string_view::npos; t.remove_prefix(k + kSpaceSymbol.size())) {
        out.append(t.substr(0, k));
        out += ' ';
      }
      out.append(t);
    }
    flush_bytes();
  }

 private:
  static constexpr std::string_view kSpaceSymbol = "\u2581";

  SentencePieceModel() = default;

  static Piece read_piece(std::string_view data, const std::string& where) {
    Piece p;
    ProtoReader r(data, where);
    uint32_t field;
    int wire;
    while (r.next(field, wire)) {
      if (field == 1) {
        r.expect(wire, ProtoReader::kBytes, "piece");
        p.text = std::string(r.bytes());
      } else if (field == 2) {
        r.expect(wire, ProtoReader::kFixed32, "score");
        p.score = r.fixed32_float();
      } else if (field == 3) {
        r.expect(wire, ProtoReader::kVarint, "type");
        const uint64_t t = r.varint();
        CTMLLM_CHECK(t >= 1 && t <= 6, where, ": piece '", p.text, "' has unknown type ", t);
        p.type = PieceType(t);
      } else {
        r.skip(wire);
      }
    }
    return p;
  }

  void index(const std::string& where) {
    byte_of_piece_.assign(pieces_.size(), -1);
    byte_ids_.fill(-1);
    for (size_t i = 0; i < pieces_.size(); ++i) {
      const Piece& p = pieces_[i];
      const auto id = int32_t(i);
      CTMLLM_CHECK(!p.text.empty() && utf8_error_offset(p.text) == std::string_view::npos, where, ": piece ", i,
                   " is empty or not valid UTF-8");
      const bool normal = p.type == PieceType::Normal || p.type == PieceType::UserDefined || p.type == PieceType::Unused;
      auto& map = normal ? normal_ : reserved_;
      CTMLLM_CHECK(map.emplace(p.text, id).second, where, ": piece '", p.text, "' appears twice");
      if (p.type == PieceType::UserDefined) user_defined_.push_back(p.text);
      if (p.type == PieceType::Byte) {
        CTMLLM_CHECK(byte_fallback_, where, ": byte piece '", p.text, "' in a model without byte_fallback");
        int v = -1;
        for (int b = 0; b < 256 && v < 0; ++b)
          if (p.text == BpeModel::byte_piece(uint8_t(b))) v = b;
        CTMLLM_CHECK(v >= 0, where, ": byte piece '", p.text, "' is not of the form <0xNN>");
        byte_of_piece_[i] = int16_t(v);
        byte_ids_[size_t(v)] = id;
      }
    }
    CTMLLM_CHECK(valid_id(unk_id_) && piece(unk_id_).type == PieceType::Unknown, where, ": unk_id ", unk_id_,
                 " is not an UNKNOWN piece");
    if (byte_fallback_)
      for (int b = 0; b < 256; ++b)
        CTMLLM_CHECK(byte_ids_[size_t(b)] >= 0, where, ": byte_fallback is on but piece ", BpeModel::byte_piece(uint8_t(b)),
                     " is missing");
    // Longest user-defined symbol first, so the first hit at a position is the longest.
    std::stable_sort(user_defined_.begin(), user_defined_.end(),
                     [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }

  // A trainer_spec id (-1 means none), if it names a piece.
  std::optional<int32_t> optional_id(int32_t id) const {
    if (!valid_id(id)) return std::nullopt;
    return id;
  }

  // Length of the user-defined symbol at s[i], 0 when none starts there.
  size_t user_symbol_at(std::string_view s, size_t i) const {
    for (const std::string& u : user_defined_)
      if (s.substr(i).starts_with(u)) return u.size();
    return 0;
  }

  std::string normalize(std::string_view text) const {
    if (remove_extra_whitespaces_) {
      while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    }
    std::string out;
    if (text.empty()) return out;
    const std::string space = escape_whitespaces_ ? std::string(kSpaceSymbol) : std::string(" ");
    if (add_dummy_prefix_) out += space;
    bool prev_space = remove_extra_whitespaces_;
    for (char c : text) {  // the identity normalizer changes nothing but spaces
      if (c == ' ') {
        if (!prev_space) out += space;
        prev_space = remove_extra_whitespaces_;
      } else {
        out += c;
        prev_space = false;
      }
    }
    if (remove_extra_whitespaces_)
      while (out.ends_with(space)) out.resize(out.size() - space.size());
    return out;
  }

  // BPE by piece score over the normalized text: (piece text, id) in order; unknown -> unk_id_.
  std::vector<std::pair<std::string_view, int32_t>> merge(std::string_view s) const {
    struct Symbol {
      size_t begin, len;
      int32_t prev, next;
      bool frozen;
    };
    struct Pair {
      float score;
      int32_t left, right;
      size_t len;
      bool operator<(const Pair& o) const { return score != o.score ? score < o.score : left > o.left; }
    };
    std::vector<Symbol> sym;
    for (size_t i = 0; i < s.size();) {
      size_t n = user_symbol_at(s, i);
      const bool frozen = n > 0;
      if (!frozen) n = utf8_length(static_cast<unsigned char>(s[i]));
      sym.push_back({i, n, int32_t(sym.size()) - 1, int32_t(sym.size()) + 1, frozen});
      i += n;
    }
    sym.back().next = -1;

    std::priority_queue<Pair> agenda;
    std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;  // unused pieces
    auto maybe_add = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0 || sym[size_t(l)].frozen || sym[size_t(r)].frozen) return;
      const std::string_view joined = s.substr(sym[size_t(l)].begin, sym[size_t(l)].len + sym[size_t(r)].len);
      const auto it = normal_.find(joined);
      if (it == normal_.end()) return;
      agenda.push({pieces_[size_t(it->second)].score, l, r, joined.size()});
      if (pieces_[size_t(it->second)].type == PieceType::Unused)
        rev_merge[joined] = {s.substr(sym[size_t(l)].begin, sym[size_t(l)].len), s.substr(sym[size_t(r)].begin, sym[size_t(r)].len)};
    };
    for (size_t i = 1; i < sym.size(); ++i) maybe_add(int32_t(i) - 1, int32_t(i));
    while (!agenda.empty()) {
      const Pair top = agenda.top();
      agenda.pop();
      Symbol& l = sym[size_t(top.left)];
      Symbol& r = sym[size_t(top.right)];
      if (l.len == 0 || r.len == 0 || l.len + r.len != top.len) continue;  // stale
      l.len += r.len;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = top.left;
      r.len = 0;
      maybe_add(l.prev, top.left);
      maybe_add(top.left, l.next);
    }

    std::vector<std::pair<std::string_view, int32_t>> result;
    // An unused piece is split back into the pieces it was merged from.
    auto resegment = [&](auto&& self, std::string_view w) -> void {
      const std::optional<int32_t> id = piece_to_id(w);
      if (id && pieces_[size_t(*id)].type == PieceType::Unused) {
        if (const auto it = rev_merge.find(w); it != rev_merge.end()) {
          self(self, it->second.first);
          self(self, it->second.second);
          return;
        }
      }
      result.emplace_back(w, id.value_or(unk_id_));
    };
    for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) resegment(resegment, s.substr(sym[size_t(i)].begin, sym[size_t(i)].len));
    return result;
  }

  std::vector<Piece> pieces_;
  StringMap<int32_t> normal_, reserved_;  // NORMAL / USER_DEFINED / UNUSED; the other types
  std::vector<std::string> user_defined_;
  std::vector<int16_t> byte_of_piece_;  // by id: the byte of a BYTE piece, else -1
  std::array<int32_t, 256> byte_ids_{};
  int32_t unk_id_ = 0, bos_id_ = 1, eos_id_ = 2, pad_id_ = -1;
  std::string unk_surface_ = " \xE2\x81\x87 ";
  bool byte_fallback_ = false, add_dummy_prefix_ = true, remove_extra_whitespaces_ = true, escape_whitespaces_ = true;
};

}  // namespace ctmllm::text
