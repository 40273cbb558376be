#pragma once
// The adapter from dataset samples to MLLM training batches: each CtSample (data/ct_samples.hpp)
// becomes the region's prompt + its findings text, or a question-answer sample's conversation +
// its answer (mllm::training_sequence), right-padded into one batch beside the stacked CT (and
// mask) volumes; mllm_loss runs the model on it. The validation set is every (case, region with
// findings) pair, unaugmented, in case order: a fixed corpus, so eval losses of different steps and
// runs compare.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "ctmllm/augment/focused_inference.hpp"
#include "ctmllm/autograd/elementwise.hpp"
#include "ctmllm/data/ct_samples.hpp"
#include "ctmllm/mllm/prompt.hpp"
#include "ctmllm/ops/shape_ops.hpp"

namespace ctmllm::train {

struct MllmBatch {
  mllm::TokenBatch tokens;
  Tensor<float, Cpu> ct;    // [B, 1, D, H, W]
  Tensor<float, Cpu> mask;  // [B, 1, D, H, W] when the model takes a segmentation mask
  int64_t input_tokens = 0; // non-pad tokens, visual placeholders included (for tokens/s)
  std::vector<bool> question_rows;  // per row: a question-answer sample
};

// A question's conversation as focused inference asks it (augment::focused_messages): the system
// prompt of its region in `focused`, then the question; without a region, or for a region `focused`
// does not have, the question alone.
inline std::vector<text::ChatMessage> question_messages(const data::Question& q,
                                                       const augment::FocusedInferenceConfig& focused) {
  const auto it = q.region ? focused.regions.find(data::region_name(*q.region)) : focused.regions.end();
  return augment::focused_messages(it != focused.regions.end() ? it->second : augment::FocusedRegion{}, q.prompt());
}

// `focused` gives the system prompts of question samples (report samples do not use it).
template <class T, class D>
MllmBatch make_mllm_batch(const mllm::Model<T, D>& model, const std::vector<data::CtSample>& samples,
                          int64_t max_length, const augment::FocusedInferenceConfig& focused) {
  CTMLLM_CHECK(!samples.empty(), "make_mllm_batch: no samples");
  std::vector<mllm::TokenSequence> seqs;
  std::vector<Tensor<float, Cpu>> cts, masks;
  std::vector<bool> question_rows;
  for (const data::CtSample& s : samples) {
    if (s.question)
      seqs.push_back(mllm::training_sequence(model, question_messages(*s.question, focused), s.question->reply(), max_length));
    else
      seqs.push_back(mllm::training_sequence(model, mllm::region_messages(model, data::region_name(s.region)), s.findings,
                                             max_length));
    question_rows.push_back(s.question.has_value());
    cts.push_back(s.image);
    if (s.mask.defined()) masks.push_back(s.mask);
  }
  CTMLLM_CHECK(masks.empty() || masks.size() == samples.size(), "make_mllm_batch: only some samples carry a mask");
  MllmBatch b{mllm::collate(seqs, mllm::SpecialIds::of(model).pad), ops::concat(cts, 0),
              masks.empty() ? Tensor<float, Cpu>() : ops::concat(masks, 0), 0, std::move(question_rows)};
  for (const auto& s : seqs) b.input_tokens += int64_t(s.ids.size());
  return b;
}

// The batch's causal-LM loss: the cross-entropy summed over the report answers' tokens, plus
// answer_weight times that of the question answers' tokens, divided by all N kept labels
// (answer_weight 1: the plain mean). Dividing by N, not by the weighted count, keeps each
// micro-batch's share of a step at its label count, so the Trainer's token-weighted accumulation
// (train/accumulate.hpp) stays exact.
template <class T, class D>
autograd::Variable<T, D> mllm_loss(const mllm::Model<T, D>& model, const MllmBatch& b, double answer_weight = 1) {
  const auto dev = [](const auto& t) { return t.template to_device<D>(); };
  mllm::MllmInput<T, D> in;
  in.input_ids = dev(b.tokens.input_ids);
  in.ct = dev(b.ct.template to<T>());
  if (b.mask.defined()) in.mask = dev(b.mask.template to<T>());
  in.attention_mask = dev(b.tokens.attention_mask);
  const bool any_question = std::find(b.question_rows.begin(), b.question_rows.end(), true) != b.question_rows.end();
  if (answer_weight == 1 || !any_question) {
    in.labels = dev(b.tokens.labels);
    return model.forward(in).loss;
  }
  const autograd::Variable<T, D> logits = model.forward(in).logits;
  // Two copies of the labels: the report rows' and the question rows'.
  Tensor<int64_t, Cpu> report = b.tokens.labels.clone(), answers = b.tokens.labels.clone();
  for (int64_t r = 0; r < report.size(0); ++r)
    for (int64_t t = 0; t < report.size(1); ++t) (b.question_rows[size_t(r)] ? report : answers).at(r, t) = -100;
  const int64_t n_report = llm::causal_lm_target_count(report), n_answers = llm::causal_lm_target_count(answers);
  const double n = double(n_report + n_answers);
  autograd::Variable<T, D> loss;
  if (n_report > 0) loss = autograd::mul_scalar(llm::causal_lm_loss(logits, dev(report)), double(n_report) / n);
  if (n_answers > 0) {
    const auto term =
        autograd::mul_scalar(llm::causal_lm_loss(logits, dev(answers)), answer_weight * double(n_answers) / n);
    loss = loss.defined() ? autograd::add(loss, term) : term;
  }
  return loss;
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
    // Report items only: no question needs a system prompt.
    const MllmBatch b = make_mllm_batch(model, loader.load(chunk), max_length, augment::FocusedInferenceConfig{});
    const double l = double(mllm_loss(model, b).value().template to_device<Cpu>().item());
    sum += l * double(b.tokens.answer_tokens);
    tokens += b.tokens.answer_tokens;
  }
  return tokens > 0 ? sum / double(tokens) : 0.0;
}

}  // namespace ctmllm::train
