// Beam search on a tiny random decoder (vocabulary 5) against a brute-force search over every
// continuation: with as many beams as continuations nothing is pruned, so the best finished
// hypothesis must be the exact optimum of sum(log p) / length^length_penalty.
#include <cmath>
#include <vector>

#include "ctmllm/generate/generate.hpp"
#include "support/catch.hpp"

using namespace ctmllm;
using generate::GenerationOptions;

namespace {
using Model = llm::Decoder<float>;

Model tiny_model() {
  const io::LlmConfig c{.model_type = "llama", .vocab_size = 5, .hidden_size = 16, .intermediate_size = 24,
                        .num_hidden_layers = 2, .num_attention_heads = 2, .num_key_value_heads = 1, .head_dim = 8,
                        .max_position_embeddings = 64, .rms_norm_eps = 1e-6};
  return Model(c, llm::RandomWeights(3));
}

struct Best {
  std::vector<int64_t> tokens;
  double score = -INFINITY;
};

// Every continuation of up to `len` tokens that is complete (ends at eos, or reaches len), scored
// from one full forward of prompt + continuation; the processors see the same history as in search.
Best brute_force(const Model& model, const std::vector<int64_t>& prompt, int64_t len, const GenerationOptions& o) {
  autograd::NoGradGuard no_grad;
  const int64_t V = model.vocab_size();
  Best best;
  std::vector<int64_t> seq(size_t(len), 0);
  const int64_t total = int64_t(std::pow(V, len));
  for (int64_t code = 0; code < total; ++code) {
    for (int64_t i = 0, c = code; i < len; ++i, c /= V) seq[size_t(i)] = c % V;
    std::vector<int64_t> ids = prompt;
    ids.insert(ids.end(), seq.begin(), seq.end());
    const auto logits =
        model.forward({.input_ids = Tensor<int64_t>::from(std::span<const int64_t>(ids), {1, int64_t(ids.size())})})
            .logits.value();
    double sum = 0;
    for (int64_t t = 0; t < len; ++t) {
      std::vector<float> lp(static_cast<size_t>(V));
      const int64_t pos = int64_t(prompt.size()) + t - 1;
      double mx = -INFINITY, z = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(logits.at(0, pos, v)));
      for (int64_t v = 0; v < V; ++v) z += std::exp(double(logits.at(0, pos, v)) - mx);
      for (int64_t v = 0; v < V; ++v) lp[size_t(v)] = float(double(logits.at(0, pos, v)) - mx - std::log(z));
      const std::vector<int64_t> history(ids.begin(), ids.begin() + pos + 1);
      generate::repetition_penalty(lp, history, o.repetition_penalty);
      sum += lp[size_t(seq[size_t(t)])];
      const bool eos =
          std::find(o.eos_token_ids.begin(), o.eos_token_ids.end(), seq[size_t(t)]) != o.eos_token_ids.end();
      if (eos || t + 1 == len) {
        const double score = sum / std::pow(double(t + 1), o.length_penalty);
        const std::vector<int64_t> hyp(seq.begin(), seq.begin() + t + 1);
        if (score > best.score) best = {hyp, score};
        break;  // nothing follows an eos
      }
    }
  }
  return best;
}

GenerationOptions beams(int64_t n, int64_t k) {
  GenerationOptions o;
  o.max_new_tokens = n;
  o.num_beams = k;
  return o;
}
}  // namespace

TEST_CASE("exhaustive beam search finds the brute-force optimum", "[generate][beam]") {
  const Model model = tiny_model();
  const std::vector<int64_t> prompt = {1, 4, 3};
  const int64_t len = 3, all = 125;  // 5^3 continuations, all kept
  SECTION("no eos: the most likely sequence of max_new_tokens") {
    const GenerationOptions o = beams(len, all);
    const Best expect = brute_force(model, prompt, len, o);
    const auto got = generate::generate(model, generate::left_pad<float>({prompt}, 0), o);
    CHECK(got[0].tokens == expect.tokens);
    CHECK(got[0].score == Catch::Approx(expect.score).epsilon(1e-5));
  }
  SECTION("eos and a length penalty, early_stopping = never (the exact bound)") {
    for (const double lp : {0.0, 1.0, 2.0}) {
      GenerationOptions o = beams(len, all);
      o.eos_token_ids = {2};
      o.length_penalty = lp;
      o.early_stopping = generate::EarlyStopping::never;
      o.repetition_penalty = 1.3;
      const Best expect = brute_force(model, prompt, len, o);
      const auto got = generate::generate(model, generate::left_pad<float>({prompt}, 0), o);
      INFO("length_penalty " << lp);
      CHECK(got[0].tokens == expect.tokens);
      CHECK(got[0].score == Catch::Approx(expect.score).epsilon(1e-5));
    }
  }
}

TEST_CASE("beam search over a batch equals each prompt alone", "[generate][beam]") {
  const Model model = tiny_model();
  const std::vector<std::vector<int64_t>> prompts = {{1, 4, 3, 3, 0}, {2, 1}};
  GenerationOptions o = beams(5, 3);
  o.eos_token_ids = {2};
  const auto batch = generate::generate(model, generate::left_pad<float>(prompts, 0), o);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto alone = generate::generate(model, generate::left_pad<float>({prompts[i]}, 0), o);
    CHECK(batch[i].tokens == alone[0].tokens);
    CHECK(batch[i].score == Catch::Approx(alone[0].score).epsilon(1e-5));
  }
  // More beams never find a worse hypothesis here. When both find the same one, its score comes
  // from batches of 25 and 2 rows, whose GEMMs may round differently: a few float32 ulps of slack.
  const auto wide = generate::generate(model, generate::left_pad<float>({prompts[0]}, 0), beams(3, 25));
  const auto narrow = generate::generate(model, generate::left_pad<float>({prompts[0]}, 0), beams(3, 2));
  CHECK(wide[0].score >= narrow[0].score - 1e-6 * std::abs(narrow[0].score));
}
