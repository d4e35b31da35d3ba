// Inline SVG charts for report.html, generated here so the report needs no
// script library or network: time-series panels with shaded phases and
// event markers, and a latency histogram derived from fio percentiles.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace krepro::results {

struct PlotSeries {
  std::string label;
  std::string color;                              // CSS colour
  std::vector<std::pair<double, double>> points;  // (t seconds, value)
  bool dots = false;    // draw points (sparse data, e.g. stalls) instead of a line
  bool dashed = false;  // a line known only at its ends (e.g. a drain wait)
};
struct PlotMarker {
  double t = 0;
  std::string label;
  std::string color;
};
struct PlotBand {
  double t0 = 0, t1 = 0;
  std::string label;
};
struct PlotPanel {
  std::string title;  // y axis meaning, with unit
  std::vector<PlotSeries> series;
  bool log_y = false;
};
struct TimelineSpec {
  double t_max = 1;  // seconds
  int width = 1240;
  int panel_height = 170;
  std::vector<PlotPanel> panels;
  std::vector<PlotMarker> markers;  // vertical lines through every panel
  std::vector<PlotBand> bands;      // shaded phases
};

// One <svg> with the panels stacked on a shared time axis.
std::string render_timeline_svg(const TimelineSpec& spec);

// Histogram bars of one operation's latency, from its percentile ladder
// (pairs of percentile, ns, ascending) and max: each step between two
// percentiles holds that share of operations, spread over log-spaced bins.
std::string render_histogram_svg(const std::vector<std::pair<double, double>>& ladder,
                                 double min_ns, double max_ns, double axis_lo_ns, double axis_hi_ns,
                                 int width, int height);

// "1.2 ms", "830 µs", "2.1 s".
std::string format_ns(double ns);

}  // namespace krepro::results
