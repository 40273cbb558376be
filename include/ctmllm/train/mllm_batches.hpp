#pragma once
// The adapter from dataset samples to MLLM training batches: each CtSample (data/ct_samples.hpp)
// becomes the region's prompt + its findings text (mllm::training_sequence), right-padded into one
// batch beside the stacked CT (and mask) volumes; mllm_loss runs the model on it. The validation
// set is every (case, region with findings) pair, unaugmented, in case order: a fixed corpus, so
// eval losses of different steps and runs compare.
#include <cstdint>
#include <vector>

#include "ctmllm/data/ct_samples.hpp"
#include "ctmllm/mllm/prompt.hpp"
#include "ctmllm/ops/shape_ops.hpp"

namespace ctmllm::train {

struct MllmBatch {
  mllm::TokenBatch tokens;
  Tensor<float, Cpu> ct;    // [B, 1, D, H, W]
  Tensor<float, Cpu> mask;  // [B, 1, D, H, W] when the model takes a segmentation mask
  int64_t input_tokens = 0; // non-pad tokens, visual placeholders included (for tokens/s)
};

template <class T, class D>
MllmBatch make_mllm_batch(const mllm::Model<T, D>& model, const std::vector<data::CtSample>& samples, int64_t max_length) {
  CTMLLM_CHECK(!samples.empty(), "make_mllm_batch: no samples");
  std::vector<mllm::TokenSequence> seqs;
  std::vector<Tensor<float, Cpu>> cts, masks;
  for (const data::CtSample& s : samples) {
    seqs.push_back(mllm::training_sequence(model, mllm::region_messages(model, data::region_name(s.region)), s.findings,
                                           max_length));
    cts.push_back(s.image);
    if (s.mask.defined()) masks.push_back(s.mask);
  }
  CTMLLM_CHECK(masks.empty() || masks.size() == samples.size(), "make_mllm_batch: only some samples carry a mask");
  MllmBatch b{mllm::collate(seqs, mllm::SpecialIds::of(model).pad), ops::concat(cts, 0),
              masks.empty() ? Tensor<float, Cpu>() : ops::concat(masks, 0), 0};
  for (const auto& s : seqs) b.input_tokens += int64_t(s.ids.size());
  return b;
}

// The batch's mean causal-LM loss over its answer tokens.
template <class T, class D>
autograd::Variable<T, D> mllm_loss(const mllm::Model<T, D>& model, const MllmBatch& b) {
  const auto dev = [](const auto& t) { return t.template to_device<D>(); };
  mllm::MllmInput<T, D> in;
  in.input_ids = dev(b.tokens.input_ids);
  in.ct = dev(b.ct.template to<T>());
  if (b.mask.defined()) in.mask = dev(b.mask.template to<T>());
  in.attention_mask = dev(b.tokens.attention_mask);
  in.labels = dev(b.tokens.labels);
  return model.forward(in).loss;
}

// Every region with findings text of every case, in case then region order (augment_seed unused).
inline std::vector<data::PlannedItem> validation_items(const std::vector<data::AmosCase>& cases) {
  std::vector<data::PlannedItem> items;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto present = data::regions_present(cases[i]);
    for (data::Region r : data::kRegions)
      if (present[size_t(r)]) items.push_back({i, r, 0});
  }
  return items;
}

// The token-weighted mean loss over `items` (the mean over all their answer tokens, as one big
// batch would give), in batches of batch_size. Call without autograd (Trainer's eval does).
template <class T, class D>
double mean_validation_loss(const mllm::Model<T, D>& model, const data::CtSampleLoader& loader,
                            const std::vector<data::PlannedItem>& items, int64_t batch_size, int64_t max_length) {
  CTMLLM_CHECK(!items.empty() && batch_size > 0, "mean_validation_loss: no validation items or batch_size ", batch_size);
  double sum = 0;
  int64_t tokens = 0;
  for (size_t lo = 0; lo < items.size(); lo += size_t(batch_size)) {
    const std::vector<data::PlannedItem> chunk(items.begin() + std::ptrdiff_t(lo),
                                               items.begin() + std::ptrdiff_t(std::min(items.size(), lo + size_t(batch_size))));
    const MllmBatch b = make_mllm_batch(model, loader.load(chunk), max_length);
    const double l = double(mllm_loss(model, b).value().template to_device<Cpu>().item());
    sum += l * double(b.tokens.answer_tokens);
    tokens += b.tokens.answer_tokens;
  }
  return tokens > 0 ? sum / double(tokens) : 0.0;
}

}  // namespace ctmllm::train
