#pragma once
// Smooth 3-D noise in [-1, 1]: random values on a coarse lattice, trilinearly interpolated. It
// gives organs a low-frequency texture and lays out bowel loops, at a few multiply-adds per voxel.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ctmllm/data/sampler.hpp"

namespace ctmllm::data {

class ValueNoise {
 public:
  ValueNoise() = default;
  // Covers the box [lo, hi] (x, y, z mm) with lattice spacing `step` mm.
  ValueNoise(const std::array<double, 3>& lo, const std::array<double, 3>& hi, double step, uint64_t seed)
      : lo_(lo), inv_step_(1.0 / step) {
    for (int d = 0; d < 3; ++d) n_[d] = int64_t(std::ceil((hi[d] - lo[d]) / step)) + 2;
    values_.resize(size_t(n_[0] * n_[1] * n_[2]));
    Sampler s(seed);
    for (float& v : values_) v = float(s.uniform(-1.0, 1.0));
  }

  // The noise on the plane at height z: the lattice interpolated in z once, then bilinear in x, y.
  // Rasterizing a slice through a Plane costs half the 3-D lookup.
  class Plane {
   public:
    float operator()(double x, double y) const {
      int64_t i, j;
      float fx, fy;
      noise_->cell(0, x, i, fx);
      noise_->cell(1, y, j, fy);
      const int64_t n = noise_->n_[0];
      const float* r0 = values_.data() + j * n + i;
      const float* r1 = r0 + n;
      const float a = r0[0] + fx * (r0[1] - r0[0]), b = r1[0] + fx * (r1[1] - r1[0]);
      return a + fy * (b - a);
    }

   private:
    friend class ValueNoise;
    const ValueNoise* noise_ = nullptr;
    std::vector<float> values_;
  };

  Plane plane(double z) const {
    Plane p;
    p.noise_ = this;
    int64_t k;
    float fz;
    cell(2, z, k, fz);
    const size_t layer = size_t(n_[0] * n_[1]);
    p.values_.resize(layer);
    const float* v0 = values_.data() + size_t(k) * layer;
    const float* v1 = v0 + layer;
    for (size_t i = 0; i < layer; ++i) p.values_[i] = v0[i] + fz * (v1[i] - v0[i]);
    return p;
  }

  float operator()(double x, double y, double z) const {
    int64_t i, j, k;
    float fx, fy, fz;
    cell(0, x, i, fx);
    cell(1, y, j, fy);
    cell(2, z, k, fz);
    float w[2];
    for (int c = 0; c < 2; ++c) {
      const float* r0 = values_.data() + ((k + c) * n_[1] + j) * n_[0] + i;
      const float* r1 = r0 + n_[0];
      const float a = r0[0] + fx * (r0[1] - r0[0]), b = r1[0] + fx * (r1[1] - r1[0]);
      w[c] = a + fy * (b - a);
    }
    return w[0] + fz * (w[1] - w[0]);
  }

 private:
  // Lattice cell and smoothstep weight of coordinate v along axis d (smoothstep: no visible creases).
  void cell(int d, double v, int64_t& index, float& weight) const {
    const double c = std::clamp((v - lo_[size_t(d)]) * inv_step_, 0.0, double(n_[size_t(d)] - 2) - 1e-9);
    index = int64_t(c);
    const float u = float(c - double(index));
    weight = u * u * (3 - 2 * u);
  }

  std::array<double, 3> lo_{};
  double inv_step_ = 1;
  std::array<int64_t, 3> n_{};
  std::vector<float> values_;
};

}  // namespace ctmllm::data
