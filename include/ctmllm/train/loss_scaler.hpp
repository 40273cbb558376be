#pragma once
// Dynamic loss scaling for half-precision training, as torch.amp.GradScaler does it: the loss's
// backward is seeded with `scale` so small gradients stay representable, the gradients are unscaled
// in float (MasterWeights::load_grads), and an overflow skips the step and shrinks the scale.
#include <cmath>
#include <cstdint>

#include "ctmllm/core/error.hpp"

namespace ctmllm::train {

struct LossScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

// torch.amp.GradScaler's dynamic scale: a step whose gradients overflowed is skipped and the scale
// multiplied by backoff_factor; after growth_interval finite steps in a row it grows by growth_factor.
class DynamicLossScaler {
 public:
  explicit DynamicLossScaler(LossScalerOptions o = {}) : o_(o), scale_(o.init_scale) {
    CTMLLM_CHECK(o.init_scale > 0 && std::isfinite(o.init_scale), "DynamicLossScaler: init_scale must be finite and > 0");
    CTMLLM_CHECK(o.growth_factor > 1 && o.backoff_factor > 0 && o.backoff_factor < 1,
                 "DynamicLossScaler: growth_factor must be > 1 and backoff_factor in (0, 1)");
    CTMLLM_CHECK(o.growth_interval > 0, "DynamicLossScaler: growth_interval must be > 0");
  }

  double scale() const { return scale_; }
  int64_t good_steps() const { return good_steps_; }

  // Records whether this step's gradients overflowed; returns whether the optimizer may step.
  bool update(bool found_inf) {
    if (found_inf) {
      scale_ *= o_.backoff_factor;
      good_steps_ = 0;
      return false;
    }
    if (++good_steps_ == o_.growth_interval) {
      scale_ *= o_.growth_factor;
      good_steps_ = 0;
    }
    return true;
  }

 private:
  LossScalerOptions o_;
  double scale_;
  int64_t good_steps_ = 0;
};

}  // namespace ctmllm::train
