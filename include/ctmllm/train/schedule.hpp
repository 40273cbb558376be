#pragma once
// Learning-rate schedules as multipliers of the base rate per optimizer step, with transformers'
// semantics (get_constant_schedule, get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup with half a cycle). With W warm-up and N total steps, at step s:
//
//   warm-up (s < W)        s / max(1, W)                      (every kind but constant)
//   constant               1
//   linear                 max(0, (N − s) / max(1, N − W))
//   cosine                 max(0, ½ (1 + cos(π · (s − W) / max(1, N − W))))
//
// The optimizer applies it with set_lr_factor(schedule(step)) before step `step` (0-based), as
// torch's LambdaLR does.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>

#include "ctmllm/core/error.hpp"

namespace ctmllm::train {

enum class ScheduleKind { constant, constant_with_warmup, linear, cosine };

// The names transformers' TrainingArguments.lr_scheduler_type uses.
inline ScheduleKind parse_schedule_kind(std::string_view name) {
  if (name == "constant") return ScheduleKind::constant;
  if (name == "constant_with_warmup") return ScheduleKind::constant_with_warmup;
  if (name == "linear") return ScheduleKind::linear;
  if (name == "cosine") return ScheduleKind::cosine;
  CTMLLM_CHECK(false, "lr_scheduler_type: unknown schedule '", std::string(name),
               "' (known: constant, constant_with_warmup, linear, cosine)");
  return ScheduleKind::constant;
}

// TrainingArguments.get_warmup_steps: ceil(ratio · total steps).
inline int64_t warmup_steps_from_ratio(double ratio, int64_t total_steps) {
  CTMLLM_CHECK(ratio >= 0 && ratio <= 1, "warmup_ratio must be in [0, 1], got ", ratio);
  CTMLLM_CHECK(total_steps >= 0, "warmup_steps_from_ratio: total steps must be >= 0, got ", total_steps);
  return int64_t(std::ceil(ratio * double(total_steps)));
}

struct Schedule {
  ScheduleKind kind = ScheduleKind::constant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // used by linear and cosine

  Schedule(ScheduleKind k = ScheduleKind::constant, int64_t warmup = 0, int64_t total = 0)
      : kind(k), warmup_steps(warmup), total_steps(total) {
    CTMLLM_CHECK(warmup >= 0 && total >= 0, "Schedule: warmup_steps and total_steps must be >= 0, got ", warmup, " and ", total);
  }

  // The multiplier of the base lr at optimizer step `step` (0-based).
  double operator()(int64_t step) const {
    CTMLLM_CHECK(step >= 0, "Schedule: step must be >= 0, got ", step);
    if (kind == ScheduleKind::constant) return 1.0;
    if (step < warmup_steps) return double(step) / double(std::max<int64_t>(1, warmup_steps));
    const double span = double(std::max<int64_t>(1, total_steps - warmup_steps));
    switch (kind) {
      case ScheduleKind::linear: return std::max(0.0, double(total_steps - step) / span);
      case ScheduleKind::cosine:
        return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * double(step - warmup_steps) / span)));
      default: return 1.0;  // constant_with_warmup after the warm-up
    }
  }
};

}  // namespace ctmllm::train
