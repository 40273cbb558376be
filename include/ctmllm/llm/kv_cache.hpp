#pragma once
// KvCache: the keys (after RoPE) and values of every layer, preallocated as one buffer each,
// [layers, batch, kv_heads, max_length, head_dim] (so moving a row of the batch is one copy for all
// layers) — kv heads, not query heads, so GQA/MQA models keep only what they compute. A forward over
// S new tokens writes slots [length, length + S) of every layer and then advances length; every row
// of the batch advances together, so a left-padded batch stays aligned and padding is carried as a
// keep mask [batch, max_length] (0 = a pad slot no query may attend to). Each row also counts its
// real tokens, which is the position its next real token takes (position_ids = cumsum(mask) − 1, as
// Hugging Face computes them). The keys and values start as zeros, so slots not yet written hold
// finite values: a fixed-shape decode step (static_decode_step.hpp) attends over every slot under a
// mask, and masked slots then add 0 · 0.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "ctmllm/core/tensor.hpp"
#include "ctmllm/ops/rope.hpp"

namespace ctmllm::llm {

template <class T, class D = Cpu>
class KvCache {
 public:
  KvCache() = default;
  KvCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t head_dim, int64_t max_length)
      : batch_(batch), max_length_(max_length), real_(size_t(batch), 0) {
    CTMLLM_CHECK(layers > 0 && batch > 0 && kv_heads > 0 && head_dim > 0 && max_length > 0,
                 "KvCache: layers, batch, kv_heads, head_dim and max_length must be positive, got ", layers, ", ",
                 batch, ", ", kv_heads, ", ", head_dim, ", ", max_length);
    keys_ = Tensor<T, D>::zeros({layers, batch, kv_heads, max_length, head_dim});
    values_ = Tensor<T, D>::zeros({layers, batch, kv_heads, max_length, head_dim});
    keep_ = std::vector<uint8_t>(size_t(batch * max_length), 1);
  }

  bool defined() const { return keys_.defined(); }
  int64_t layers() const { return keys_.size(0); }
  int64_t batch() const { return batch_; }
  int64_t length() const { return length_; }
  int64_t max_length() const { return max_length_; }
  int64_t kv_heads() const { return keys_.size(2); }
  int64_t head_dim() const { return keys_.size(4); }
  // Real (unmasked) tokens stored for row b: the position of its next real token.
  int64_t real_tokens(int64_t b) const { return real_.at(size_t(b)); }
  // Keep flag of slot j of row b (j < length).
  bool kept(int64_t b, int64_t j) const { return keep_[size_t(b * max_length_ + j)] != 0; }

  // Prepares S new slots: checks room and records their keep flags (keep: row-major [batch, S]).
  void reserve(int64_t S, const std::vector<uint8_t>& keep) {
    CTMLLM_CHECK(length_ + S <= max_length_, "KvCache: ", S, " new tokens after ", length_,
                 " do not fit in max_length ", max_length_);
    CTMLLM_CHECK(int64_t(keep.size()) == batch_ * S, "KvCache::reserve: ", keep.size(), " keep flags for batch ",
                 batch_, " x ", S, " tokens");
    for (int64_t b = 0; b < batch_; ++b)
      for (int64_t s = 0; s < S; ++s) keep_[size_t(b * max_length_ + length_ + s)] = keep[size_t(b * S + s)];
  }
  // Writes layer l's new keys and values k, v [batch, kv_heads, S, head_dim] at the reserved slots.
  void store(int64_t l, const Tensor<T, D>& k, const Tensor<T, D>& v) {
    const int64_t S = k.size(2);
    keys_.select(0, l).slice(2, length_, length_ + S).copy_from(k);
    values_.select(0, l).slice(2, length_, length_ + S).copy_from(v);
  }
  // An inference step's write in one pass (ops::rope_into_cache): returns rope(q) and writes layer
  // l's keys rope(k) and values v [batch, kv_heads, S, head_dim] at the reserved slots, or, when
  // `slots` is given, at the S slots that it names ([S], int64, on the device: the write of a step
  // whose slot index lives on the device). k is rotated here, so the cache holds keys after RoPE.
  Tensor<T, D> store_rotated(int64_t l, const Tensor<int64_t, D>* slots, const Tensor<T, D>& q, const Tensor<T, D>& k,
                             const Tensor<T, D>& v, const Tensor<int64_t, D>& positions, const ops::RopeConfig& rope) {
    return ops::rope_into_cache(q, k, v, positions, rope, keys_.select(0, l), values_.select(0, l),
                                slots ? ops::CacheSlots<D>{0, *slots} : ops::CacheSlots<D>{length_, {}});
  }
  // Layer l's keys / values of slots [0, end): views [batch, kv_heads, end, head_dim].
  Tensor<T, D> keys(int64_t l, int64_t end) const { return keys_.select(0, l).slice(2, 0, end); }
  Tensor<T, D> values(int64_t l, int64_t end) const { return values_.select(0, l).slice(2, 0, end); }
  // The attention key mask of slots [0, end) as [batch, end], or undefined when every slot is kept.
  Tensor<uint8_t, D> keep_mask(int64_t end) const {
    Tensor<uint8_t, Cpu> m = Tensor<uint8_t, Cpu>::empty({batch_, end});
    bool all = true;
    for (int64_t b = 0; b < batch_; ++b)
      for (int64_t j = 0; j < end; ++j) all &= (m.data()[b * end + j] = keep_[size_t(b * max_length_ + j)]) != 0;
    return all ? Tensor<uint8_t, D>() : m.template to_device<D>();
  }
  // Makes the S reserved slots part of the cache.
  void advance(int64_t S) {
    for (int64_t b = 0; b < batch_; ++b)
      for (int64_t s = 0; s < S; ++s) real_[size_t(b)] += keep_[size_t(b * max_length_ + length_ + s)];
    length_ += S;
  }
  void clear() {
    length_ = 0;
    std::fill(real_.begin(), real_.end(), 0);
    std::fill(keep_.begin(), keep_.end(), uint8_t(1));
  }

  // A cache whose row r is this cache's row rows[r] (any count, repeats allowed): expands a prompt
  // to several beams or samples.
  KvCache select_rows(const std::vector<int64_t>& rows) const {
    check_rows(rows, "KvCache::select_rows");
    const int64_t n = int64_t(rows.size());
    KvCache out(layers(), n, kv_heads(), head_dim(), max_length_);
    out.length_ = length_;
    for (int64_t r = 0; r < n; ++r) {
      out.filled(out.keys_, r).copy_from(filled(keys_, rows[size_t(r)]));
      out.filled(out.values_, r).copy_from(filled(values_, rows[size_t(r)]));
    }
    pick_bookkeeping(rows, out.keep_, out.real_);
    return out;
  }
  // Row r becomes row rows[r] (one source per row, repeats allowed), in place: beam search's reorder
  // after each step. Only the rows that change are copied, slots [0, length) only, each row after
  // every copy that reads it; a cycle of rows (beams trading places) goes through one spare row. The
  // tensors keep their addresses, so a captured decode step (static_decode_step.hpp) stays valid.
  void reorder_rows(const std::vector<int64_t>& rows) {
    CTMLLM_CHECK(int64_t(rows.size()) == batch_, "KvCache::reorder_rows: ", rows.size(), " rows for a batch of ",
                 batch_);
    check_rows(rows, "KvCache::reorder_rows");
    const std::vector<Move> moves = reorder_moves(rows);
    if (!moves.empty() && length_ > 0) {
      const bool spare_used = std::any_of(moves.begin(), moves.end(), [](const Move& m) { return m.to == kSpare; });
      const Tensor<T, D> spare =
          spare_used ? Tensor<T, D>::empty({layers(), kv_heads(), length_, head_dim()}) : Tensor<T, D>();
      for (const Tensor<T, D>* t : {&keys_, &values_})
        for (const Move& m : moves)
          (m.to == kSpare ? spare : filled(*t, m.to)).copy_from(m.from == kSpare ? spare : filled(*t, m.from));
    }
    std::vector<uint8_t> keep(keep_.size());
    std::vector<int64_t> real(real_.size());
    pick_bookkeeping(rows, keep, real);
    keep_ = std::move(keep);
    real_ = std::move(real);
  }

 private:
  static constexpr int64_t kSpare = -1;
  struct Move {
    int64_t to, from;  // rows, or kSpare
  };

  void check_rows(const std::vector<int64_t>& rows, const char* op) const {
    for (const int64_t src : rows)
      CTMLLM_CHECK(src >= 0 && src < batch_, op, ": row ", src, " outside a batch of ", batch_);
  }
  // Row r of every layer's keys or values, slots [0, length): [layers, kv_heads, length, head_dim],
  // one strided copy (one kernel on the GPU) whatever the layer count.
  Tensor<T, D> filled(const Tensor<T, D>& t, int64_t r) const { return t.select(1, r).slice(2, 0, length_); }
  // Row r of keep [rows, max_length] and real [rows] gets row rows[r]'s keep flags and real tokens.
  void pick_bookkeeping(const std::vector<int64_t>& rows, std::vector<uint8_t>& keep,
                        std::vector<int64_t>& real) const {
    for (size_t r = 0; r < rows.size(); ++r) {
      std::copy_n(keep_.begin() + rows[r] * max_length_, max_length_, keep.begin() + int64_t(r) * max_length_);
      real[r] = real_[size_t(rows[r])];
    }
  }
  // The copies that give row r row rows[r]'s content for every r, in an order where no row is
  // overwritten while a copy still has to read it. Rows left after that form cycles: one row of a
  // cycle is saved to the spare, its reader takes the spare, and the cycle unwinds.
  static std::vector<Move> reorder_moves(const std::vector<int64_t>& rows) {
    const int64_t n = int64_t(rows.size());
    std::vector<int64_t> from = rows, readers(size_t(n), 0);  // readers: copies yet to read the row
    std::vector<bool> settled(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      settled[size_t(r)] = from[size_t(r)] == r;
      if (!settled[size_t(r)]) ++readers[size_t(from[size_t(r)])];
    }
    std::vector<Move> moves;
    for (;;) {
      bool progress = false;
      for (int64_t r = 0; r < n; ++r) {
        if (settled[size_t(r)] || readers[size_t(r)] > 0) continue;
        moves.push_back({r, from[size_t(r)]});
        settled[size_t(r)] = progress = true;
        if (from[size_t(r)] != kSpare) --readers[size_t(from[size_t(r)])];
      }
      if (progress) continue;
      const auto left = std::find(settled.begin(), settled.end(), false);
      if (left == settled.end()) return moves;
      const int64_t r = left - settled.begin();  // in a cycle: its one reader takes the spare
      moves.push_back({kSpare, r});
      for (int64_t t = 0; t < n; ++t)
        if (!settled[size_t(t)] && from[size_t(t)] == r) from[size_t(t)] = kSpare;
      readers[size_t(r)] = 0;
    }
  }

  Tensor<T, D> keys_, values_;  // [layers, batch, kv_heads, max_length, head_dim]
  int64_t batch_ = 0, max_length_ = 0, length_ = 0;
  std::vector<uint8_t> keep_;  // [batch, max_length] on the host: the bookkeeping is tiny
  std::vector<int64_t> real_;  // [batch]
};

}  // namespace ctmllm::llm
