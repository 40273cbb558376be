#pragma once
// Visual-token splicing: the rows of the LLM's input embeddings at the placeholder positions are
// replaced by the projected visual tokens (LLaVA / M3D-LaMed). As an autograd op: the gradient of
// the visual tokens is the output gradient at their positions, and the replaced embedding rows
// get none (their <im_patch> embedding never reaches the output).
#include <cstdint>
#include <string>
#include <vector>

#include "ctmllm/autograd/variable.hpp"

namespace ctmllm::mllm {

// positions[b][i]: the sequence position that takes visual token i of row b.
using VisualPositions = std::vector<std::vector<int64_t>>;

// The placeholder positions of each row: ids [B, S] equal to `image_token_id`, left to right. Every
// row must hold exactly `count` of them (an Error names the row otherwise).
inline VisualPositions placeholder_positions(const Tensor<int64_t, Cpu>& ids, int64_t image_token_id, int64_t count) {
  check_rank(ids, 2, "placeholder_positions", "input_ids");
  VisualPositions out(static_cast<size_t>(ids.size(0)));
  for (int64_t b = 0; b < ids.size(0); ++b) {
    for (int64_t s = 0; s < ids.size(1); ++s)
      if (ids.at(b, s) == image_token_id) out[size_t(b)].push_back(s);
    CTMLLM_CHECK(int64_t(out[size_t(b)].size()) == count, "splice: row ", b, " holds ", out[size_t(b)].size(),
                 " image tokens (id ", image_token_id, "), the model makes ", count, " visual tokens");
  }
  return out;
}

// The published fixed rule: the `count` positions after each row's first real token (its BOS);
// `mask` [B, S] (1 = real) locates it in a left-padded row, undefined = no padding.
inline VisualPositions positions_after_bos(const Shape& ids_shape, const Tensor<int64_t, Cpu>& mask, int64_t count) {
  const int64_t B = ids_shape[0], S = ids_shape[1];
  VisualPositions out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    int64_t first = 0;
    if (mask.defined())
      while (first < S && mask.at(b, first) == 0) ++first;
    CTMLLM_CHECK(first + count < S, "splice: row ", b, " has no room for ", count, " visual tokens after its first token");
    for (int64_t i = 0; i < count; ++i) out[size_t(b)].push_back(first + 1 + i);
  }
  return out;
}

// Calls f(i, s, n) for each run of consecutive positions in one row's list: visual tokens i..i+n-1
// go to positions s..s+n-1. The usual layouts (256 placeholders in a row, or right after BOS) are one
// run, i.e. one copy instead of one per token (on a GPU, 512 launches fewer per training step).
template <class F>
void for_each_position_run(const std::vector<int64_t>& positions, F&& f) {
  for (size_t i = 0; i < positions.size();) {
    size_t n = 1;
    while (i + n < positions.size() && positions[i + n] == positions[i] + int64_t(n)) ++n;
    f(int64_t(i), positions[i], int64_t(n));
    i += n;
  }
}

// embeds [B, S, H], visual [B, N, H] -> [B, S, H] with row positions[b][i] = visual[b, i].
template <class T, class D>
autograd::Variable<T, D> splice_visual_tokens(const autograd::Variable<T, D>& embeds,
                                              const autograd::Variable<T, D>& visual, const VisualPositions& positions) {
  CTMLLM_CHECK(embeds.rank() == 3 && visual.rank() == 3 && embeds.size(0) == visual.size(0) &&
                   embeds.size(2) == visual.size(2),
               "splice: embeddings ", embeds.value().describe(), " and visual tokens ", visual.value().describe(),
               " must be [B, S, H] and [B, N, H]");
  const int64_t B = embeds.size(0), S = embeds.size(1), N = visual.size(1);
  CTMLLM_CHECK(int64_t(positions.size()) == B, "splice: ", positions.size(), " position lists for a batch of ", B);
  for (int64_t b = 0; b < B; ++b) {
    CTMLLM_CHECK(int64_t(positions[size_t(b)].size()) == N, "splice: row ", b, " has ", positions[size_t(b)].size(),
                 " positions for ", N, " visual tokens");
    for (int64_t s : positions[size_t(b)]) CTMLLM_CHECK(s >= 0 && s < S, "splice: position ", s, " is outside the sequence");
  }
  // Copies of runs of rows through tensor views, on any device.
  // (A plain function of its arguments: the backward runs after this frame is gone.)
  auto place = [](const Tensor<T, D>& dst, const Tensor<T, D>& src, const VisualPositions& pos, bool into_sequence) {
    for (size_t b = 0; b < pos.size(); ++b)
      for_each_position_run(pos[b], [&](int64_t i, int64_t s, int64_t n) {
        const int64_t row = int64_t(b);
        if (into_sequence) dst.select(0, row).slice(0, s, s + n).copy_from(src.select(0, row).slice(0, i, i + n));
        else dst.select(0, row).slice(0, i, i + n).copy_from(src.select(0, row).slice(0, s, s + n));
      });
  };
  Tensor<T, D> out = embeds.value().contiguous().clone();
  place(out, visual.value(), positions, true);
  return autograd::record(std::move(out), "splice_visual_tokens", {embeds, visual},
                          [positions, place, B, N, H = embeds.size(2)](const Tensor<T, D>& dy) {
                            Tensor<T, D> dembeds = dy.contiguous().clone();
                            const Tensor<T, D> zero = Tensor<T, D>::zeros({H});
                            for (int64_t b = 0; b < B; ++b)
                              for_each_position_run(positions[size_t(b)], [&](int64_t, int64_t s, int64_t n) {
                                dembeds.select(0, b).slice(0, s, s + n).copy_from(zero.expand({n, H}));
                              });
                            Tensor<T, D> dvisual = Tensor<T, D>::empty({B, N, H});
                            place(dvisual, dy, positions, false);
                            return std::vector<Tensor<T, D>>{dembeds, dvisual};
                          });
}

}  // namespace ctmllm::mllm
