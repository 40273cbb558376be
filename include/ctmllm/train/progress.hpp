#pragma once
// Progress: one status line for a training run,
//   step 120/1000 [##########..........] 12% | loss 2.4137 | lr 4.85e-05 | gnorm 1.23 | 812 tok/s | ETA 3m12s
// On a terminal the line is redrawn in place (carriage return); into a file or a pipe it is
// printed as a plain line every `plain_every_s` seconds (and at the last step), so logs stay short.
// The shown loss is an exponential moving average (debiased as Adam's moments, so the first steps
// are not pulled towards 0); the ETA extrapolates the mean step time since the first update shown.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>

namespace ctmllm::train {

inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(seconds + 0.5);
  std::ostringstream o;
  if (s >= 3600) o << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  else if (s >= 60) o << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  else o << s << "s";
  return o.str();
}

struct ProgressFields {
  int64_t step = 0;
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  int64_t tokens = 0;  // this step's
  double step_seconds = 0;
};

class Progress {
 public:
  // tty: redraw in place (pass stderr_is_terminal() when `out` is std::cerr).
  Progress(std::ostream& out, int64_t total_steps, bool tty, double plain_every_s = 30.0, double smoothing = 0.9)
      : out_(out), total_(total_steps), tty_(tty), plain_every_s_(plain_every_s), beta_(smoothing) {}

  static bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

  double smoothed_loss() const { return ema_ / (1 - std::pow(beta_, double(n_))); }

  void update(const ProgressFields& f) {
    const auto now = std::chrono::steady_clock::now();
    if (n_ == 0) {
      start_ = now - std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(f.step_seconds));
      first_step_ = f.step - 1;
      last_print_ = now;
    }
    ++n_;
    ema_ = beta_ * ema_ + (1 - beta_) * f.loss;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double per_step = elapsed / double(f.step - first_step_);
    const bool last = f.step >= total_;
    if (tty_) {
      out_ << "\r" << line(f, per_step) << "\033[K" << (last ? "\n" : "") << std::flush;
    } else if (last || n_ == 1 || std::chrono::duration<double>(now - last_print_).count() >= plain_every_s_) {
      out_ << line(f, per_step) << "\n" << std::flush;
      last_print_ = now;
    }
  }

  // A message (an eval result, a checkpoint) on its own line without breaking the bar.
  void note(const std::string& message) {
    out_ << (tty_ ? "\r\033[K" : "") << message << "\n" << std::flush;
  }

 private:
  std::string line(const ProgressFields& f, double per_step) const {
    constexpr int kWidth = 20;
    const double frac = total_ > 0 ? std::min(1.0, double(f.step) / double(total_)) : 0.0;
    const int filled = int(frac * kWidth);
    std::ostringstream o;
    o << "step " << f.step << "/" << total_ << " [" << std::string(size_t(filled), '#')
      << std::string(size_t(kWidth - filled), '.') << "] " << int(frac * 100) << "% | loss " << std::fixed
      << std::setprecision(4) << smoothed_loss() << " | lr " << std::scientific << std::setprecision(2) << f.lr
      << " | gnorm " << std::defaultfloat << std::setprecision(3) << f.grad_norm;
    if (f.tokens > 0 && f.step_seconds > 0) o << " | " << int64_t(double(f.tokens) / f.step_seconds) << " tok/s";
    o << " | ETA " << format_duration(per_step * double(total_ - f.step));
    return o.str();
  }

  std::ostream& out_;
  int64_t total_;
  bool tty_;
  double plain_every_s_, beta_;
  double ema_ = 0;
  int64_t n_ = 0, first_step_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace ctmllm::train
