// gelu (erf, tanh) and silu against PyTorch fixtures, and their backward by finite differences; the
// gated form f(gate) · up against activation-then-mul, bit for bit, in every element type.
#include <cstring>

#include "ctmllm/autograd/activation.hpp"
#include "ctmllm/ops/elementwise.hpp"
#include "support/catch.hpp"
#include "support/compare.hpp"
#include "support/files_and_errors.hpp"
#include "support/fixtures.hpp"
#include "support/gradcheck.hpp"

using namespace ctmllm;
using testing::message_of;
using testing::rel_error;

namespace {
void check_fixture(const char* file, ops::Activation kind) {
  testing::Fixture f(file);
  const auto x = f.get("x");
  CHECK(rel_error(ops::activation(x, kind), f.get("y")) <= 1e-5);
  CHECK(rel_error(ops::activation_backward(f.get("dy"), x, kind), f.get("dx")) <= 1e-5);
}
template <class T>
bool same_bits(const Tensor<T, Cpu>& a, const Tensor<T, Cpu>& b) {
  const Tensor<T, Cpu> x = a.contiguous(), y = b.contiguous();
  return x.shape() == y.shape() && std::memcmp(x.data(), y.data(), size_t(x.numel()) * sizeof(T)) == 0;
}

// gate and up as the two halves of one [5, 2·67] tensor (strided views), as a fused projection
// gives them; the two-op composition is the reference.
template <class T>
void check_gated_equals_composition(uint64_t seed) {
  Rng rng(seed);
  const auto both = rng.normal<float>({5, 134}, 0.0, 2.0).to<T>();
  const auto dy = rng.normal<float>({5, 67}).to<T>();
  const auto gate = both.slice(1, 0, 67), up = both.slice(1, 67, 134);
  for (auto kind : {ops::Activation::gelu_erf, ops::Activation::gelu_tanh, ops::Activation::silu}) {
    INFO("activation " << int(kind));
    const auto a = ops::activation(gate, kind);
    CHECK(same_bits(ops::gated_activation(gate, up, kind), ops::mul(a, up)));
    const auto mul_grads = ops::binary_backward(dy, a, up, ops::Binary::mul);
    const auto fused = ops::gated_activation_backward(dy, gate, up, kind);
    CHECK(same_bits(fused.up, mul_grads.db));
    CHECK(same_bits(fused.gate, ops::activation_backward(mul_grads.da, gate, kind)));
    // Views whose rows are not contiguous (transposed) take the copying path.
    const auto gt = gate.transpose(0, 1), ut = up.transpose(0, 1);
    CHECK(same_bits(ops::gated_activation(gt, ut, kind), ops::mul(ops::activation(gt, kind), ut)));
  }
}
}  // namespace

TEST_CASE("gated activation equals activation then mul to the bit", "[ops][activation]") {
  check_gated_equals_composition<float>(11);
  check_gated_equals_composition<double>(12);
  check_gated_equals_composition<bf16>(13);
  check_gated_equals_composition<half>(14);
}

TEST_CASE("activations do not depend on the thread count or on where a range splits", "[ops][activation]") {
  // 40000 elements: several threads' ranges, each in chunks with a partial last packet.
  Rng rng(7);
  const auto x = rng.normal<float>({40000}, 0.0, 3.0), dy = rng.normal<float>({40000});
  const int threads = num_threads();
  for (auto kind : {ops::Activation::gelu_erf, ops::Activation::gelu_tanh, ops::Activation::silu}) {
    INFO("activation " << int(kind));
    set_num_threads(1);
    const auto one = ops::activation(x, kind);
    const auto back_one = ops::activation_backward(dy, x, kind);
    set_num_threads(3);
    const auto three = ops::activation(x, kind);
    const auto back_three = ops::activation_backward(dy, x, kind);
    set_num_threads(threads);
    CHECK(same_bits(one, three));
    CHECK(same_bits(back_one, back_three));
    // Each element alone (a padded packet) gives the bits it gets within the whole tensor.
    for (const int64_t i : {int64_t(0), int64_t(13), int64_t(39999)})
      CHECK(same_bits(ops::activation(x.slice(0, i, i + 1), kind), one.slice(0, i, i + 1)));
  }
}

TEST_CASE("gated activation backward passes finite differences", "[ops][activation][gradcheck]") {
  for (auto kind : {ops::Activation::gelu_erf, ops::Activation::gelu_tanh, ops::Activation::silu}) {
    Rng rng(4);
    autograd::Variable<double> gate(rng.normal<double>({3, 5}, 0.0, 2.0), true), up(rng.normal<double>({3, 5}), true);
    const double err = testing::gradcheck(
        [kind](const auto& in) { return autograd::gated_activation(in[0], in[1], kind); }, {gate, up});
    CHECK(err <= 1e-7);
  }
}

TEST_CASE("gated activation rejects mismatched shapes and undefined tensors", "[ops][activation]") {
  const auto gate = Rng(2).normal<float>({4, 6});
  const std::string msg = message_of([&] { ops::gated_activation(gate, Tensor<float, Cpu>::ones({4, 5}), ops::Activation::silu); });
  CHECK(msg.find("gated_activation") != std::string::npos);
  CHECK(msg.find("up") != std::string::npos);
  CHECK_THROWS_AS(ops::gated_activation(gate, Tensor<float, Cpu>(), ops::Activation::silu), ctmllm::Error);
  CHECK_THROWS_AS(ops::gated_activation_backward(Tensor<float, Cpu>::ones({4, 5}), gate, gate, ops::Activation::silu),
                  ctmllm::Error);
  // All three undefined: shapes agree ({}), the gate's check catches it.
  const Tensor<float, Cpu> none;
  CHECK_THROWS_AS(ops::gated_activation_backward(none, none, none, ops::Activation::silu), ctmllm::Error);
}

TEST_CASE("gelu erf matches torch.nn.functional.gelu", "[ops][activation]") {
  check_fixture("ops/gelu_erf.safetensors", ops::Activation::gelu_erf);
}
TEST_CASE("gelu tanh matches approximate='tanh'", "[ops][activation]") {
  check_fixture("ops/gelu_tanh.safetensors", ops::Activation::gelu_tanh);
}
TEST_CASE("silu matches torch.nn.functional.silu", "[ops][activation]") {
  check_fixture("ops/silu.safetensors", ops::Activation::silu);
}

TEST_CASE("activation backward passes finite differences", "[ops][activation][gradcheck]") {
  for (auto kind : {ops::Activation::gelu_erf, ops::Activation::gelu_tanh, ops::Activation::silu}) {
    autograd::Variable<double> x(Rng(3).normal<double>({3, 5}, 0.0, 2.0), true);
    const double err = testing::gradcheck([kind](const auto& in) { return autograd::activation(in[0], kind); }, {x});
    CHECK(err <= 1e-7);
  }
}

TEST_CASE("activation works on strided views", "[ops][activation]") {
  const auto x = Rng(1).normal<float>({4, 6});
  const auto xt = x.transpose(0, 1);
  CHECK(rel_error(ops::gelu(xt), ops::gelu(xt.contiguous())) == 0.0);
}
