// train::SGD against torch.optim.SGD (values printed by the snippet below, float64):
//   w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
//   o = torch.optim.SGD([w], lr=0.1, **kw)
//   for g in [[0.1, 0.2, -0.3], [-0.4, 0.05, 0.3], [0.2, 0.2, 0.2]]: w.grad = torch.tensor(g); o.step()
#include <map>
#include <string>
#include <vector>

#include "ctmllm/train/sgd.hpp"
#include "support/catch.hpp"
#include "train/grad_source.hpp"

using namespace ctmllm;
using testing::backward_with_grad;
using testing::vec;
using DVar = autograd::Variable<double>;

namespace {
const std::vector<Tensor<double>> kGrads = {vec({0.1, 0.2, -0.3}), vec({-0.4, 0.05, 0.3}), vec({0.2, 0.2, 0.2})};

void run(train::SGD<double>& opt, const DVar& w, size_t from = 0, size_t to = 3) {
  for (size_t i = from; i < to; ++i) {
    opt.zero_grad();
    backward_with_grad(w, kGrads[i]);
    opt.step();
  }
}
}  // namespace

TEST_CASE("SGD follows torch: plain, momentum with dampening and decay, Nesterov", "[train][sgd]") {
  struct Case {
    train::SGDOptions options;
    std::vector<double> expect;
  };
  const std::vector<Case> cases = {
      {{.lr = 0.1}, {1.01, -2.045, 0.48}},
      {{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}, {1.01798602109, -2.0700460245799994, 0.509263838895}},
      {{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true},
       {1.027933412551, -2.104035929462, 0.47965201634050003}},
  };
  for (const Case& c : cases) {
    INFO("momentum " << c.options.momentum << ", nesterov " << c.options.nesterov);
    DVar w(vec({1.0, -2.0, 0.5}), true, "w");
    train::SGD<double> opt({w}, c.options);
    run(opt, w);
    // The momentum buffer is stored in float: ~1e-8 absolute here.
    for (int i = 0; i < 3; ++i) CHECK(w.value().data()[i] == Approx(c.expect[size_t(i)]).epsilon(0).margin(1e-7));
  }
}

TEST_CASE("SGD groups, skipped parameters and a state round trip", "[train][sgd]") {
  DVar a(vec({1.0, -2.0, 0.5}), true, "a"), b(vec({1.0, 1.0, 1.0}), true, "b");
  train::SGD<double> opt(train::SGDOptions{.lr = 0.1, .momentum = 0.9});
  opt.add_group({a});
  opt.add_group({b}, 0.5, 0.0);
  opt.set_lr_factor(0.5);
  backward_with_grad(b, vec({1.0, 2.0, 3.0}));
  opt.step();  // a has no gradient: untouched; b moves by lr·factor·g
  CHECK(a.value().data()[0] == 1.0);
  CHECK(b.value().data()[2] == Approx(1.0 - 0.25 * 3.0));

  DVar w(vec({1.0, -2.0, 0.5}), true, "w");
  const train::SGDOptions o{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01};
  train::SGD<double> full({w}, o);
  run(full, w, 0, 1);
  std::map<std::string, Tensor<float>> saved;
  for (auto& [name, t] : full.state()) saved.emplace(name, t.clone());
  DVar resumed(w.value().clone(), true, "w");
  run(full, w, 1, 3);
  train::SGD<double> fresh({resumed}, o);
  fresh.load_state([&](const std::string& n) { return saved.at(n); });
  run(fresh, resumed, 1, 3);
  for (int i = 0; i < 3; ++i) CHECK(resumed.value().data()[i] == w.value().data()[i]);
}

TEST_CASE("SGD refuses bad options", "[train][sgd]") {
  CHECK_THROWS_WITH(train::SGD<double>({.lr = 0.1, .nesterov = true}), Catch::Contains("nesterov"));
  CHECK_THROWS_AS(train::SGD<double>({.lr = -1}), Error);
  DVar w(vec({1.0}), true, "w");
  CHECK_THROWS_WITH(train::SGD<double>({w, w}, {}), Catch::Contains("two groups"));
}
