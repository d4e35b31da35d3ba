#include "results/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "results/xml_escape.h"

namespace krepro::results {

namespace {

constexpr int kLeft = 70, kRight = 190, kTop = 30, kGap = 28, kBottom = 36;

// 1-2-5 tick step covering range with about n ticks.
double nice_step(double range, int n) {
  double raw = range / n;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

std::string short_num(double v) {
  double a = std::fabs(v);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:.3g}k", v / 1e3);
  return fmt::format("{:.4g}", v);
}

}  // namespace

std::string format_ns(double ns) {
  if (ns >= 1e9) return fmt::format("{:.3g} s", ns / 1e9);
  if (ns >= 1e6) return fmt::format("{:.3g} ms", ns / 1e6);
  if (ns >= 1e3) return fmt::format("{:.3g} µs", ns / 1e3);
  return fmt::format("{:.0f} ns", ns);
}

std::string render_timeline_svg(const TimelineSpec& spec) {
  const int w = spec.width, ph = spec.panel_height;
  const int n = static_cast<int>(spec.panels.size());
  const int h = kTop + n * ph + std::max(0, n - 1) * kGap + kBottom;
  const double pw = w - kLeft - kRight;
  const double tmax = spec.t_max > 0 ? spec.t_max : 1;
  auto X = [&](double t) { return kLeft + std::clamp(t / tmax, 0.0, 1.0) * pw; };
  std::string o = fmt::format(
      "<svg class=\"timeline\" viewBox=\"0 0 {} {}\" "
      "width=\"{}\" height=\"{}\" font-family=\"system-ui,sans-serif\" font-size=\"11\">\n",
      w, h, w, h);
  o += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fff\"/>\n", w, h);
  const double plot_bottom = kTop + n * ph + std::max(0, n - 1) * kGap;
  // Phases: alternate shades across the full height, label at the top.
  double label_end = 0;
  for (size_t i = 0; i < spec.bands.size(); ++i) {
    const auto& b = spec.bands[i];
    double x0 = X(b.t0), x1 = X(b.t1);
    // Narrow phases: push the label right of its neighbour's.
    double lx = std::max(x0 + 4, label_end + 8);
    label_end = lx + 6.5 * static_cast<double>(b.label.size());
    o += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", x0, kTop,
        std::max(1.0, x1 - x0), plot_bottom - kTop, i % 2 ? "#eef3fb" : "#f4f7fc");
    o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" fill=\"#4a5a78\" font-weight=\"600\">{}</text>\n",
                     lx, kTop - 8, xml_escape(b.label));
  }
  for (int p = 0; p < n; ++p) {
    const auto& panel = spec.panels[p];
    const double y0 = kTop + p * (ph + kGap), y1 = y0 + ph;
    double lo = 0, hi = 0;
    bool any = false;
    for (const auto& s : panel.series)
      for (auto [t, v] : s.points) {
        if (panel.log_y && v <= 0) continue;
        if (!any) lo = hi = v;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        any = true;
      }
    if (!panel.log_y) lo = std::min(0.0, lo);
    if (panel.log_y) {
      lo = any ? std::pow(10, std::floor(std::log10(lo))) : 1;
      hi = any ? std::pow(10, std::ceil(std::log10(hi))) : 10;
      if (hi <= lo) hi = lo * 10;
    } else if (hi <= lo) {
      hi = lo + 1;
    }
    auto Y = [&](double v) {
      double f = panel.log_y ? (std::log10(std::max(v, lo)) - std::log10(lo)) /
                                   (std::log10(hi) - std::log10(lo))
                             : (v - lo) / (hi - lo);
      return y1 - std::clamp(f, 0.0, 1.0) * ph;
    };
    o += fmt::format(
        "<rect x=\"{}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{}\" fill=\"none\" "
        "stroke=\"#c8cfdc\"/>\n",
        kLeft, y0, pw, ph);
    // Y grid and labels.
    std::vector<double> ticks;
    if (panel.log_y) {
      for (double v = lo; v <= hi * 1.0001; v *= 10) ticks.push_back(v);
    } else {
      // Round the top up to a tick so the highest value sits under a label.
      double st = nice_step(hi - lo, 4);
      hi = std::ceil(hi / st - 1e-9) * st;
      for (double v = std::ceil(lo / st) * st; v <= hi + st * 1e-9; v += st) ticks.push_back(v);
    }
    for (double v : ticks) {
      double y = Y(v);
      o += fmt::format(
          "<line x1=\"{}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e3e7ee\"/>"
          "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n",
          kLeft, kLeft + pw, y, y, kLeft - 6, y + 4, short_num(v));
    }
    o += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" fill=\"#222\" font-weight=\"600\" font-size=\"12\" "
        "paint-order=\"stroke\" stroke=\"#fff\" stroke-width=\"4\">{}</text>\n",
        kLeft + 6, y0 + 15, xml_escape(panel.title));
    if (!any)
      o += fmt::format(
          "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#999\">no data</text>\n",
          kLeft + pw / 2, y0 + ph / 2.0);
    // Series and legend.
    double ly = y0 + 12;
    for (const auto& s : panel.series) {
      if (s.points.empty()) continue;
      if (s.dots) {
        for (auto [t, v] : s.points)
          o += fmt::format(
              "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\" fill-opacity=\"0.8\"/>\n",
              X(t), Y(v), s.color);
      } else {
        std::string pts;
        for (auto [t, v] : s.points) pts += fmt::format("{:.1f},{:.1f} ", X(t), Y(v));
        o += fmt::format(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" "
            "stroke-linejoin=\"round\"{}/>\n",
            pts, s.color, s.dashed ? " stroke-dasharray=\"6 4\"" : "");
        // Few samples (short runs): mark each, a single one is no line at all.
        if (s.points.size() <= 40)
          for (auto [t, v] : s.points)
            o += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", X(t),
                             Y(v), s.color);
      }
      o += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"4\" fill=\"{}\"/>"
          "<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#333\">{}</text>\n",
          kLeft + pw + 12, ly - 4, s.color, kLeft + pw + 28, ly + 1, xml_escape(s.label));
      ly += 15;
    }
  }
  // Markers through every panel; labels staggered so neighbours stay legible.
  std::vector<double> row_end;
  for (size_t i = 0; i < spec.markers.size(); ++i) {
    const auto& m = spec.markers[i];
    double x = X(m.t);
    o += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{:.1f}\" stroke=\"{}\" "
        "stroke-width=\"1.5\" stroke-dasharray=\"4 3\"><title>{}</title></line>\n",
        x, x, kTop, plot_bottom, m.color, xml_escape(m.label));
    // Greedy rows: a label goes to the first row where it clears the
    // previous label (about 6 px per character at this font size).
    double width = 6.2 * static_cast<double>(m.label.size()) + 8;
    size_t row = 0;
    while (row < row_end.size() && row_end[row] > x) ++row;
    if (row == row_end.size()) row_end.push_back(0);
    row_end[row] = x + width;
    double ty = kTop + 28 + static_cast<double>(row % 8) * 13;
    o += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"{}\" font-size=\"10.5\" font-weight=\"600\" "
        "paint-order=\"stroke\" stroke=\"#fff\" stroke-width=\"3\">{}</text>\n",
        x + 3, ty, m.color, xml_escape(m.label));
  }
  // Time axis.
  double st = nice_step(tmax, 10);
  for (double t = 0; t <= tmax + st * 1e-9; t += st) {
    double x = X(t);
    o += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#888\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n",
        x, x, plot_bottom, plot_bottom + 5, x, plot_bottom + 18, short_num(t));
  }
  o += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#333\">run time (s)</text>\n",
      kLeft + pw / 2, plot_bottom + 32);
  o += "</svg>\n";
  return o;
}

std::string render_histogram_svg(const std::vector<std::pair<double, double>>& ladder,
                                 double min_ns, double max_ns, double axis_lo_ns, double axis_hi_ns,
                                 int width, int height) {
  constexpr int kBins = 40;
  double lo = std::log10(std::max(1.0, axis_lo_ns)), hi = std::log10(std::max(2.0, axis_hi_ns));
  if (hi <= lo) hi = lo + 1;
  std::vector<double> bins(kBins, 0);
  auto bin_of = [&](double ns) {
    double f = (std::log10(std::max(1.0, ns)) - lo) / (hi - lo);
    return std::clamp(static_cast<int>(f * kBins), 0, kBins - 1);
  };
  // Steps: (0 %, min) -> ladder... -> (100 %, max). A step's share of
  // operations lies between its two latencies; spread it evenly in log space.
  std::vector<std::pair<double, double>> pts;
  pts.emplace_back(0.0, min_ns);
  for (auto p : ladder) pts.push_back(p);
  pts.emplace_back(100.0, max_ns);
  std::sort(pts.begin(), pts.end());
  for (size_t i = 1; i < pts.size(); ++i) {
    double share = pts[i].first - pts[i - 1].first;
    if (share <= 0) continue;
    int b0 = bin_of(std::min(pts[i - 1].second, pts[i].second));
    int b1 = bin_of(std::max(pts[i - 1].second, pts[i].second));
    for (int b = b0; b <= b1; ++b) bins[b] += share / (b1 - b0 + 1);
  }
  double peak = *std::max_element(bins.begin(), bins.end());
  std::string o = fmt::format(
      "<svg class=\"hist\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\">",
      width, height, width, height);
  double bw = static_cast<double>(width) / kBins;
  for (int b = 0; b < kBins; ++b) {
    if (bins[b] <= 0) continue;
    // sqrt scale keeps the 0.01 % tail visible next to the body.
    double f = peak > 0 ? std::sqrt(bins[b] / peak) : 0;
    double bh = std::max(1.5, f * (height - 2));
    o += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
        "<title>{:.2f} % of ops</title></rect>",
        b * bw + 0.5, height - bh, bw - 1, bh,
        b >= bin_of(ladder.empty() ? max_ns : ladder.back().second) ? "#d9534f" : "#4a7fd4",
        bins[b]);
  }
  o += fmt::format("<line x1=\"0\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#999\"/></svg>", width,
                   height - 0.5, height - 0.5);
  return o;
}

}  // namespace krepro::results
