#pragma once
// The loss curve of a run as a stand-alone SVG: training loss per step (faint), its moving average
// (solid), and the eval loss (orange, with markers) when there is one; axes with "nice" ticks
// (1, 2 or 5 × 10^k), labels and a legend. Written atomically (temp file + rename) so a viewer
// refreshing it during training never sees half a file.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ctmllm/core/error.hpp"

namespace ctmllm::train {

using CurvePoint = std::pair<double, double>;  // (step, loss)

// Tick positions covering [lo, hi] with about `target` steps of 1, 2 or 5 × 10^k.
inline std::vector<double> nice_ticks(double lo, double hi, int target = 6) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / mag < 1.5 ? 1 : raw / mag < 3.5 ? 2 : raw / mag < 7.5 ? 5 : 10, step = m * mag;
  // Tick k is (k·m)·10^e, computed as an integer times or over a power of ten so that 0.6 prints
  // as 0.6, not 0.6000000000000001.
  const double ten_e = mag >= 1 ? mag : std::round(1 / mag);
  auto tick = [&](int64_t k) { return mag >= 1 ? double(k) * m * ten_e : double(k) * m / ten_e; };
  std::vector<double> t;
  for (int64_t k = int64_t(std::ceil(lo / step - 1e-9)); tick(k) <= hi + step * 1e-9; ++k) t.push_back(tick(k));
  return t;
}

inline std::string format_tick(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

inline std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
  return out;
}

inline std::string loss_curve_svg(const std::vector<CurvePoint>& train, const std::vector<CurvePoint>& eval,
                                  const std::string& title = "training loss") {
  constexpr double W = 800, H = 480, left = 70, right = 20, top = 40, bottom = 60;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool any = false;
  for (const auto* series : {&train, &eval})
    for (const auto& [x, y] : *series) {
      if (!std::isfinite(y)) continue;
      if (!any) x0 = x1 = x, y0 = y1 = y;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      any = true;
    }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y0 -= 0.5, y1 += 0.5;
  const std::vector<double> xt = nice_ticks(x0, x1), yt = nice_ticks(y0, y1);
  x0 = std::min(x0, xt.front()), x1 = std::max(x1, xt.back()), y0 = std::min(y0, yt.front()), y1 = std::max(y1, yt.back());
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  auto path = [&](const std::vector<CurvePoint>& pts) {
    std::ostringstream d;
    bool pen = false;
    for (const auto& [x, y] : pts) {
      if (!std::isfinite(y)) {
        pen = false;
        continue;
      }
      d << (pen ? " L" : " M") << px(x) << "," << py(y);
      pen = true;
    }
    return d.str();
  };

  std::ostringstream s;
  s.precision(6);
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W << " "
    << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" << xml_escape(title) << "</text>\n";
  for (double t : xt)
    s << "<line x1=\"" << px(t) << "\" y1=\"" << top << "\" x2=\"" << px(t) << "\" y2=\"" << H - bottom
      << "\" stroke=\"#e4e4e4\"/>\n<text x=\"" << px(t) << "\" y=\"" << H - bottom + 18 << "\" text-anchor=\"middle\">"
      << format_tick(t) << "</text>\n";
  for (double t : yt)
    s << "<line x1=\"" << left << "\" y1=\"" << py(t) << "\" x2=\"" << W - right << "\" y2=\"" << py(t)
      << "\" stroke=\"#e4e4e4\"/>\n<text x=\"" << left - 8 << "\" y=\"" << py(t) + 4 << "\" text-anchor=\"end\">"
      << format_tick(t) << "</text>\n";
  s << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n"
    << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 16 << "\" text-anchor=\"middle\">step</text>\n"
    << "<text transform=\"translate(18," << (top + H - bottom) / 2
    << ") rotate(-90)\" text-anchor=\"middle\">loss</text>\n";

  // Moving average of the training loss (debiased EMA, β = 0.9).
  std::vector<CurvePoint> smooth;
  double ema = 0;
  int n = 0;
  for (const auto& [x, y] : train) {
    if (!std::isfinite(y)) continue;
    ema = 0.9 * ema + 0.1 * y;
    smooth.emplace_back(x, ema / (1 - std::pow(0.9, ++n)));
  }
  if (!train.empty()) {
    s << "<path d=\"" << path(train) << "\" fill=\"none\" stroke=\"#9ecae1\" stroke-width=\"1\"/>\n";
    s << "<path d=\"" << path(smooth) << "\" fill=\"none\" stroke=\"#08519c\" stroke-width=\"2\"/>\n";
  }
  if (!eval.empty()) {
    s << "<path d=\"" << path(eval) << "\" fill=\"none\" stroke=\"#e6550d\" stroke-width=\"2\"/>\n";
    for (const auto& [x, y] : eval)
      if (std::isfinite(y)) s << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"3\" fill=\"#e6550d\"/>\n";
  }
  const double lx = W - right - 170;
  int row = 0;
  auto legend = [&](const char* color, const char* label) {
    const double y = top + 14 + 18 * row++;
    s << "<line x1=\"" << lx << "\" y1=\"" << y - 4 << "\" x2=\"" << lx + 24 << "\" y2=\"" << y - 4 << "\" stroke=\""
      << color << "\" stroke-width=\"2\"/>\n<text x=\"" << lx + 30 << "\" y=\"" << y << "\">" << label << "</text>\n";
  };
  if (!train.empty()) legend("#9ecae1", "train loss"), legend("#08519c", "train loss (EMA 0.9)");
  if (!eval.empty()) legend("#e6550d", "eval loss");
  s << "</svg>\n";
  return s.str();
}

inline void write_loss_curve_svg(const std::string& path, const std::vector<CurvePoint>& train,
                                 const std::vector<CurvePoint>& eval, const std::string& title = "training loss") {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    CTMLLM_CHECK(out.good(), path, ": cannot open for writing");
    out << loss_curve_svg(train, eval, title);
    CTMLLM_CHECK(out.good(), path, ": write failed");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace ctmllm::train
