// train::AdamW against torch.optim.AdamW: three steps of a tiny Llama with global-norm clipping
// (tests/fixtures/train/llama_adamw, reference in float64), one step against the closed form,
// parameter groups, parameters without a gradient, and a state round trip.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "ctmllm/autograd/backward.hpp"
#include "ctmllm/llm/causal_lm_loss.hpp"
#include "ctmllm/llm/decoder.hpp"
#include "ctmllm/train/adamw.hpp"
#include "ctmllm/train/clip.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/fixtures.hpp"
#include "train/grad_source.hpp"

using namespace ctmllm;
using testing::rel_error;
using Var = autograd::Variable<float>;

TEST_CASE("AdamW with gradient clipping follows torch for three steps of a tiny Llama", "[train][adamw]") {
  auto model = llm::Decoder<float>::from_pretrained(testing::fixture_path("train/llama_adamw/base"));
  const testing::Fixture ref("train/llama_adamw/reference.safetensors");
  const auto ids = ref.get<int64_t>("input_ids"), labels = ref.get<int64_t>("labels");
  const std::vector<Var> params = model.parameters().all();
  // hparams.json: lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on every parameter, clip 1.
  train::AdamW<float> opt(params, {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    opt.zero_grad();
    const Var loss = llm::causal_lm_loss(model.forward({.input_ids = ids}).logits, labels);
    loss.backward();
    const double norm = train::clip_grad_norm(params, 1.0);
    const double loss_err = rel_error(loss.value(), ref.get("loss." + std::to_string(step)));
    const double norm_err = std::abs(norm / ref.get("grad_norm." + std::to_string(step)).item() - 1);
    INFO("loss rel err " << loss_err << ", grad norm rel err " << norm_err);
    CHECK(loss_err <= 1e-5);
    CHECK(norm_err <= 1e-5);
    if (step == 0) {  // grad0.* are stored after clip_grad_norm_ (the metadata note says otherwise)
      for (const Var& p : params) {
        const double err = rel_error(p.grad(), ref.get("grad0." + p.name()));
        INFO(p.name() << " grad rel err " << err);
        CHECK(err <= 1e-4);
      }
    }
    opt.step();
  }
  for (const Var& p : params) {
    const double err = rel_error(p.value(), ref.get("final." + p.name()));
    INFO(p.name() << " final rel err " << err);
    CHECK(err <= 1e-5);  // measured ≤ 1.2e-6 (gradients ≤ 1.2e-6, losses ≤ 7.5e-8, norms ≤ 3e-7)
  }
}

namespace {
using DVar = autograd::Variable<double>;
using testing::backward_with_grad;
using testing::vec;

// One torch AdamW update of x with gradient g at step t (1-based), moments m, v updated in place.
double adamw_closed_form(double x, double g, double& m, double& v, int t, const train::AdamWOptions& o) {
  x *= 1 - o.lr * o.weight_decay;
  m = o.beta1 * m + (1 - o.beta1) * g;
  v = o.beta2 * v + (1 - o.beta2) * g * g;
  const double mhat = m / (1 - std::pow(o.beta1, t)), vhat = v / (1 - std::pow(o.beta2, t));
  return x - o.lr * mhat / (std::sqrt(vhat) + o.eps);
}
}  // namespace

TEST_CASE("AdamW steps follow the closed form", "[train][adamw]") {
  const train::AdamWOptions o{.lr = 0.1, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-3, .weight_decay = 0.05};
  DVar w(vec({1.0, -2.0, 0.5, 0.0}), true, "w");
  train::AdamW<double> opt({w}, o);
  std::vector<double> x = {1.0, -2.0, 0.5, 0.0}, m(4, 0.0), v(4, 0.0);
  const std::vector<std::vector<double>> grads = {{0.1, 0.2, -0.3, 0.0}, {-0.4, 0.05, 0.3, 1.0}, {0.2, 0.2, 0.2, 0.2}};
  for (int t = 1; t <= 3; ++t) {
    opt.zero_grad();
    backward_with_grad(w, vec({grads[t - 1][0], grads[t - 1][1], grads[t - 1][2], grads[t - 1][3]}));
    opt.step();
    for (int i = 0; i < 4; ++i) {
      x[i] = adamw_closed_form(x[i], grads[t - 1][i], m[i], v[i], t, o);
      // The moments are stored in float: ~1e-7 relative.
      CHECK(w.value().data()[i] == Approx(x[i]).epsilon(1e-6).margin(1e-9));
    }
  }
}

TEST_CASE("AdamW groups have their own lr and weight decay, scaled by the schedule factor", "[train][adamw]") {
  DVar a(vec({1.0, 2.0}), true, "a"), b(vec({1.0, -3.0}), true, "b");
  train::AdamW<double> opt(train::AdamWOptions{.lr = 0.1, .weight_decay = 0.0});
  opt.add_group({a});
  opt.add_group({b}, 0.01, 0.5);
  opt.set_lr_factor(0.5);
  CHECK(opt.lr(0) == 0.05);
  CHECK(opt.lr(1) == 0.005);
  CHECK_THROWS_AS(opt.lr(2), Error);
  // A zero gradient makes the Adam term 0: only the decoupled decay w ← w·(1 − lr·wd) acts.
  backward_with_grad(a, vec({0.0, 0.0}));
  backward_with_grad(b, vec({0.0, 0.0}));
  opt.step();
  CHECK(a.value().data()[0] == 1.0);
  CHECK(a.value().data()[1] == 2.0);
  CHECK(b.value().data()[0] == Approx(1.0 * (1 - 0.005 * 0.5)).epsilon(1e-15));
  CHECK(b.value().data()[1] == Approx(-3.0 * (1 - 0.005 * 0.5)).epsilon(1e-15));
}

TEST_CASE("AdamW skips parameters without a gradient and keeps their step count", "[train][adamw]") {
  DVar a(vec({1.0, 2.0}), true, "a"), b(vec({3.0, 4.0}), true, "b");
  train::AdamW<double> opt({a, b}, {.lr = 0.1, .weight_decay = 0.1});
  backward_with_grad(a, vec({1.0, -1.0}));
  opt.step();
  CHECK(b.value().data()[0] == 3.0);  // no decay either: torch skips the whole update
  CHECK(b.value().data()[1] == 4.0);
  CHECK(a.value().data()[0] != 1.0);
  std::map<std::string, Tensor<float>> state;
  for (auto& [name, t] : opt.state()) state.emplace(name, t);
  CHECK(state.at("a.step").item() == 1.0f);
  CHECK(state.at("b.step").item() == 0.0f);
}

TEST_CASE("AdamW state round trip continues bit-identically", "[train][adamw]") {
  const std::vector<Tensor<float>> grads = {Tensor<float>::from({0.3f, -1.0f, 2.0f}, {3}),
                                            Tensor<float>::from({-0.5f, 0.25f, 1.5f}, {3}),
                                            Tensor<float>::from({0.1f, 0.9f, -0.7f}, {3}),
                                            Tensor<float>::from({1.0f, -0.2f, 0.4f}, {3})};
  const train::AdamWOptions o{.lr = 0.05, .weight_decay = 0.1};
  Var w(Tensor<float>::from({1.0f, 2.0f, -1.0f}, {3}), true, "w");
  train::AdamW<float> opt({w}, o);
  auto run = [&](train::AdamW<float>& op, const Var& p, size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      op.zero_grad();
      backward_with_grad(p, grads[i]);
      op.step();
    }
  };
  run(opt, w, 0, 2);
  std::map<std::string, Tensor<float>> saved;
  for (auto& [name, t] : opt.state()) saved.emplace(name, t.clone());
  Var resumed(w.value().clone(), true, "w");
  run(opt, w, 2, 4);

  train::AdamW<float> fresh({resumed}, o);
  fresh.load_state([&](const std::string& name) {
    auto it = saved.find(name);
    CTMLLM_CHECK(it != saved.end(), "no state '", name, "'");
    return it->second;
  });
  run(fresh, resumed, 2, 4);
  for (int i = 0; i < 3; ++i) CHECK(resumed.value().data()[i] == w.value().data()[i]);

  // A state of the wrong shape names the tensor.
  train::AdamW<float> other({Var(Tensor<float>::zeros({3}), true, "w")}, o);
  saved.at("w.exp_avg") = Tensor<float>::zeros({4});
  CHECK_THROWS_WITH(other.load_state([&](const std::string& n) { return saved.at(n); }), Catch::Contains("w.exp_avg"));
}

TEST_CASE("AdamW refuses bad parameters and options", "[train][adamw]") {
  Var w(Tensor<float>::zeros({2}), true, "w"), frozen(Tensor<float>::zeros({2}), false, "frozen");
  CHECK_THROWS_WITH(train::AdamW<float>({w, w}, {}), Catch::Contains("two groups"));
  CHECK_THROWS_WITH(train::AdamW<float>({frozen}, {}), Catch::Contains("frozen"));
  CHECK_THROWS_AS(train::AdamW<float>({w}, {.beta1 = 1.0}), Error);
  CHECK_THROWS_AS(train::AdamW<float>({w}, {.lr = -1}), Error);
}

TEST_CASE("adamw_update over a list equals each parameter's update alone and checks the list", "[train][adamw]") {
  Rng rng(17);
  const std::vector<Shape> shapes = {{3, 4}, {0}, {5}};
  std::vector<Tensor<float>> w, g, m, v;
  for (const Shape& s : shapes) {
    w.push_back(rng.normal<float>(s));
    g.push_back(rng.normal<float>(s));
    m.push_back(rng.normal<float>(s, 0.0, 0.1));
    v.push_back(rng.uniform<float>(s, 0.0, 0.1));
  }
  g[2] = rng.normal<float>({5, 2}).slice(1, 1, 2).squeeze(1);  // a strided gradient
  const std::vector<ops::AdamWCoefficients> c = {{1e-2, 0.1, 0.9, 0.99, 1e-8, 0.1, 0.1},
                                                 {1e-2, 0.1, 0.9, 0.99, 1e-8, 0.1, 0.1},
                                                 {3e-2, 0.0, 0.8, 0.95, 1e-6, 0.2, 0.3}};
  std::vector<Tensor<float>> w1, m1, v1;
  for (size_t i = 0; i < shapes.size(); ++i) {
    w1.push_back(w[i].clone());
    m1.push_back(m[i].clone());
    v1.push_back(v[i].clone());
    ops::adamw_update<float, Cpu>({w1[i]}, {g[i]}, {m1[i]}, {v1[i]}, {c[i]});
  }
  ops::adamw_update(w, g, m, v, c);
  for (size_t i = 0; i < shapes.size(); ++i) {
    INFO("parameter " << i);
    CHECK(rel_error(w[i], w1[i]) == 0);
    CHECK(rel_error(m[i], m1[i]) == 0);
    CHECK(rel_error(v[i], v1[i]) == 0);
  }
  CHECK_THROWS_WITH(ops::adamw_update(w, g, m, v, std::vector<ops::AdamWCoefficients>(2, c[0])),
                    Catch::Contains("3 parameters"));
  std::vector<Tensor<float>> strided_m = m;
  strided_m[0] = rng.normal<float>({4, 3}).transpose(0, 1);
  CHECK_THROWS_WITH(ops::adamw_update(w, g, strided_m, v, c), Catch::Contains("contiguous"));
  std::vector<Tensor<float>> wrong_g = g;
  wrong_g[2] = Tensor<float>::zeros({6});
  CHECK_THROWS_AS(ops::adamw_update(w, wrong_g, m, v, c), Error);
}
