#pragma once
// Autograd for patchify / unpatchify (each the other's backward) and patch_embed (saves x and the
// weight; dx is computed only when x needs it).
#include "ctmllm/autograd/variable.hpp"
#include "ctmllm/ops/patch_embed.hpp"

namespace ctmllm::autograd {

template <class T, class D>
Variable<T, D> patchify(const Variable<T, D>& x, std::array<int64_t, 3> patch,
                        ops::PatchOrder order = ops::PatchOrder::channel_last) {
  const Shape shape = x.shape();
  return record(ops::patchify(x.value(), patch, order), "patchify", {x}, [shape, patch, order](const Tensor<T, D>& dy) {
    return std::vector<Tensor<T, D>>{ops::unpatchify(dy, shape, patch, order)};
  });
}

template <class T, class D>
Variable<T, D> unpatchify(const Variable<T, D>& patches, const Shape& volume_shape, std::array<int64_t, 3> patch,
                          ops::PatchOrder order = ops::PatchOrder::channel_last) {
  return record(ops::unpatchify(patches.value(), volume_shape, patch, order), "unpatchify", {patches},
                [patch, order](const Tensor<T, D>& dy) {
                  return std::vector<Tensor<T, D>>{ops::patchify(dy, patch, order)};
                });
}

// bias may be an undefined Variable (no bias).
template <class T, class D>
Variable<T, D> patch_embed(const Variable<T, D>& x, const Variable<T, D>& weight, const Variable<T, D>& bias,
                           std::array<int64_t, 3> patch, ops::PatchOrder order = ops::PatchOrder::channel_last) {
  const Tensor<T, D> xv = x.value(), wv = weight.value();
  const bool has_bias = bias.defined(), need_dx = x.requires_grad();
  Tensor<T, D> y = ops::patch_embed(xv, wv, has_bias ? bias.value() : Tensor<T, D>(), patch, order);
  return record(std::move(y), "patch_embed", {x, weight, bias},
                [xv, wv, has_bias, need_dx, patch, order](const Tensor<T, D>& dy) {
                  auto g = ops::patch_embed_backward(dy, xv, wv, patch, order, need_dx);
                  return std::vector<Tensor<T, D>>{g.dx, g.dweight, has_bias ? g.dbias : Tensor<T, D>()};
                });
}

}  // namespace ctmllm::autograd
