// report.html: one self-contained page (inline CSS and SVG, no script, no
// external URL) that reads offline: verdict, findings, timeline, latency,
// churn errors, leaks and kernel signatures. Every string from the run
// (kernel log text above all) goes through xml_escape.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "results/formats.h"
#include "results/svg_plot.h"
#include "results/xml_escape.h"

namespace krepro::results {

namespace {

using nlohmann::json;

const char* kPalette[] = {"#2f6fdb", "#e07b00", "#2a9d4b", "#8e44ad",
                          "#c0392b", "#16a0a0", "#7f8c8d", "#b8860b"};

const char* kCss = R"(
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2433;background:#f3f5f9}
main{max-width:1300px;margin:0 auto;padding:24px}
header{display:flex;gap:24px;align-items:center;background:#fff;border-radius:10px;padding:20px 24px;box-shadow:0 1px 3px #0002}
header h1{margin:0 0 6px;font-size:22px}header .meta{color:#4a5568;font-size:13px}header .meta b{color:#1d2433}
.verdict{font-size:26px;font-weight:800;letter-spacing:.5px;padding:14px 22px;border-radius:10px;color:#fff;text-transform:uppercase;white-space:nowrap}
.v-reproduced{background:#c62828}.v-not_reproduced{background:#2e7d32}.v-inconclusive{background:#e6a100}.v-skipped{background:#78808c}.v-error{background:#6a1b9a}
.reason{margin-top:6px;color:#7a2e0e;font-weight:600}
section{background:#fff;border-radius:10px;padding:16px 24px;margin-top:18px;box-shadow:0 1px 3px #0002}
section h2{font-size:17px;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e4e8ef;vertical-align:top}
th{background:#f7f9fc;color:#4a5568;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:700;color:#fff}
.b-FAIL,.b-reproduced{background:#c62828}.b-PASS{background:#2e7d32}.b-SKIP{background:#78808c}.b-ERROR{background:#6a1b9a}.b-suspect{background:#e6a100}
.ev{font-family:ui-monospace,Menlo,monospace;font-size:12px;color:#333}
pre{background:#1e2230;color:#e8e8e8;padding:10px 12px;border-radius:6px;overflow-x:auto;font-size:12px;margin:6px 0 0;white-space:pre-wrap;word-break:break-all}
.muted{color:#8a93a3}.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px}.g-verdicts{grid-template-columns:2fr 3fr}
.timeline{max-width:100%;height:auto}.hist{vertical-align:middle}
footer{color:#8a93a3;font-size:12px;margin:18px 4px}
)";

std::string esc(const std::string& s) { return xml_escape(s); }

std::string fmt_num(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return fmt::format("{}", v.get<int64_t>());
  if (v.is_number_float()) return fmt::format("{:.4g}", v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Evidence in one line: "key: value" pairs; nested values compact JSON, cut.
std::string evidence_html(const json& ev) {
  if (!ev.is_object()) {
    std::string d = ev.dump(-1, ' ', false, json::error_handler_t::replace);
    if (d.size() > 300) d = d.substr(0, 300) + "…";
    return "<span class=\"ev\">" + esc(d) + "</span>";
  }
  std::string o;
  for (const auto& [k, v] : ev.items()) {
    std::string d =
        v.is_primitive() ? fmt_num(v) : v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (d.size() > 160) d = d.substr(0, 160) + "…";
    o += fmt::format("<div class=\"ev\"><b>{}</b>: {}</div>", esc(k), esc(d));
  }
  return o;
}

double t_of(const json& j, const char* k) {
  return j.contains(k) && j[k].is_number() ? j[k].get<double>() : -1;
}

std::string header(const RunData& run) {
  const auto& s = run.summary;
  std::string v = s.value("verdict", "error");
  std::string o = "<header>";
  o += fmt::format("<div class=\"verdict v-{}\">{}</div><div>", esc(v),
                   esc(v == "not_reproduced" ? std::string("not reproduced") : v));
  o += fmt::format("<h1>krepro · {}</h1><div class=\"meta\">", esc(scenario_name(s)));
  std::string desc = s.contains("scenario") && s["scenario"].is_object()
                         ? s["scenario"].value("description", "")
                         : "";
  if (!desc.empty()) o += esc(desc) + "<br>";
  o += fmt::format(
      "kernel <b>{}</b> · cgroup <b>{}</b> · duration <b>{:.1f} s</b> · run <b>{}</b> · "
      "started <b>{}</b>",
      esc(kernel_release(s)), esc(s.contains("host") ? s["host"].value("cgroup_mode", "?") : "?"),
      num(s, "duration_s"), esc(run_id_of(run)), esc(s.value("started_at", "?")));
  if (s.contains("host") && s["host"].contains("features_used")) {
    std::string f;
    for (const auto& x : s["host"]["features_used"]) f += (f.empty() ? "" : ", ") + fmt_num(x);
    o += "<br>features: " + esc(f);
  }
  if (s.value("partial", false)) o += "<br><b>partial results</b> (run was interrupted)";
  o += "</div>";
  if (s.contains("reason") && s["reason"].is_string())
    o += "<div class=\"reason\">" + esc(s["reason"]) + "</div>";
  o += "</div></header>\n";
  return o;
}

std::string verdicts(const RunData& run) {
  const auto& s = run.summary;
  std::string o =
      "<section><h2>Verdicts</h2><div class=\"grid g-verdicts\"><div><table>"
      "<tr><th>bug / detector</th><th>result</th><th>notes</th></tr>";
  for (const auto& c : test_cases(run)) {
    std::string notes = esc(c.reason);
    for (const auto& n : c.notes) notes += (notes.empty() ? "" : "<br>") + esc(n);
    o += fmt::format("<tr><td>{}</td><td><span class=\"badge b-{}\">{}</span></td><td>{}</td></tr>",
                     esc(c.name), case_status_name(c.status),
                     c.status == CaseStatus::kFail && c.kind == "bug" ? "REPRODUCED"
                                                                      : case_status_name(c.status),
                     notes);
  }
  o += "</table></div><div><table><tr><th>finding</th><th>detector</th><th>verdict</th>"
       "<th class=\"n\">first seen</th><th>key evidence</th></tr>";
  const json f = s.value("findings", json::array());
  if (f.empty()) o += "<tr><td colspan=\"5\" class=\"muted\">no findings</td></tr>";
  for (const auto& x : f) {
    double t = t_of(x, "first_seen_s");
    o += fmt::format(
        "<tr><td><b>{}</b><br><span class=\"muted\">{}</span></td><td>{}</td><td><span "
        "class=\"badge b-{}\">{}</span></td><td class=\"n\">{}</td><td>{}</td></tr>",
        esc(x.value("id", "?")), esc(x.value("bug", "")), esc(x.value("detector", "?")),
        esc(x.value("verdict", "?")), esc(x.value("verdict", "?")),
        t >= 0 ? fmt::format("{:.1f} s", t) : "–",
        evidence_html(x.value("evidence", json::object())));
  }
  o += "</table></div></div></section>\n";
  return o;
}

// Workload per-interval p99 and stalls, wherever the recorder put them.
void io_series(const RunData& run, PlotPanel& p99, PlotSeries& stalls) {
  int c = 0;
  for (const auto& op : operations(run.summary)) {
    if (op.name.rfind("workload", 0) != 0) continue;
    const json& e = *op.entry;
    if (!e.contains("intervals") || !e["intervals"].is_object()) continue;
    const json& iv = e["intervals"];
    if (!iv.contains("second") || !iv.contains("p99_ns")) continue;
    PlotSeries s{op.name.substr(9) + " p99", kPalette[c++ % 8], {}, false};
    double offset = 0;  // recorder seconds -> run seconds
    if (e.contains("start_ns") && e["start_ns"].is_number())
      offset = run_time_of_mono(run, e["start_ns"].get<int64_t>()).value_or(0);
    bool counts = iv.contains("count") && iv["count"].is_array();
    for (size_t i = 0; i < iv["second"].size() && i < iv["p99_ns"].size(); ++i) {
      // A second without ops has no p99: leave a gap, not a dip to zero.
      if (counts && i < iv["count"].size() && iv["count"][i].get<double>() <= 0) continue;
      s.points.emplace_back(offset + iv["second"][i].get<double>() + 0.5,
                            iv["p99_ns"][i].get<double>() / 1e6);
    }
    p99.series.push_back(std::move(s));
  }
  // Stalls: {"stalls":{"events":[{"op","start_ns","duration_ns"}]}} anywhere
  // under workload.
  std::vector<const json*> todo;
  if (run.summary.contains("workload")) todo.push_back(&run.summary["workload"]);
  while (!todo.empty()) {
    const json* j = todo.back();
    todo.pop_back();
    if (!j->is_object()) continue;
    for (const auto& [k, v] : j->items()) {
      if (k == "stalls" && v.is_object() && v.contains("events") && v["events"].is_array()) {
        for (const auto& ev : v["events"]) {
          if (!ev.contains("start_ns")) continue;
          auto t = run_time_of_mono(run, ev["start_ns"].get<int64_t>());
          if (t) stalls.points.emplace_back(*t, num(ev, "duration_ns") / 1e6);
        }
      } else if (v.is_object()) {
        todo.push_back(&v);
      }
    }
  }
}

std::string timeline(const RunData& run) {
  const auto& s = run.summary;
  TimelineSpec spec;
  spec.t_max = std::max(1.0, num(s, "duration_s", 1));
  json samples = run.series;
  if (samples.empty())
    for (const auto& e : run.events)
      if (e.value("type", "") == "sample") samples.push_back(e);
  std::map<std::string, PlotSeries> rates;
  PlotSeries dying{"dying memcgs (est.)", "#8e44ad", {}, false};
  PlotSeries netns{"netns awaiting free", "#c0392b", {}, false};
  double base = -1;
  if (s.contains("leaks") && s["leaks"].contains("dying_memcgs"))
    base = num(s["leaks"]["dying_memcgs"], "baseline_num_cgroups", -1);
  for (const auto& smp : samples) {
    double t = num(smp, "t");
    double alive = 0;
    for (const auto& [k, v] : smp.items()) {
      if (!v.is_number()) continue;
      auto dot = k.rfind('.');
      if (dot == std::string::npos) continue;
      std::string actor = k.substr(0, dot), what = k.substr(dot + 1);
      if (what == "rate") {
        auto& r = rates[actor];
        r.label = actor + " /s";
        r.points.emplace_back(t, v.get<double>());
      }
      if (what == "alive") alive += v.get<double>();
    }
    if (smp.contains("memcg.num_cgroups")) {
      double n = num(smp, "memcg.num_cgroups");
      dying.points.emplace_back(t, base >= 0 ? std::max(0.0, n - base - alive) : n);
    }
    if (smp.contains("netns.pending")) netns.points.emplace_back(t, num(smp, "netns.pending"));
  }
  if (base < 0) dying.label = "memcg num_cgroups";
  // Sampling stops with the churn; the memcg detector measures the drain
  // wait after it (leaks.dying_memcgs), so draw that stretch from its ends.
  PlotSeries drain{"dying memcgs, drain wait", "#8e44ad", {}, false, true};
  if (!dying.points.empty() && s.contains("leaks") && s["leaks"].contains("dying_memcgs")) {
    const json& d = s["leaks"]["dying_memcgs"];
    double wait = num(d, "drain_wait_s", 0);
    if (d.contains("at_churn_end") && d.contains("after_drain_wait") && wait > 0) {
      double end = std::max(dying.points.back().first, spec.t_max - wait);
      double at_end = num(d, "at_churn_end");
      drain.points = {{end, at_end}};
      // Measured milestones of the drain, where the detector saw them.
      // drain_half_s, drain_<N>pct_s: time until that share had drained.
      for (const auto& [k, v] : d.items()) {
        if (!v.is_number() || k.rfind("drain_", 0) != 0) continue;
        double share = -1;
        if (k == "drain_half_s")
          share = 0.5;
        else if (k.size() > 11 && k.compare(k.size() - 5, 5, "pct_s") == 0)
          share = std::atof(k.substr(6, k.size() - 11).c_str()) / 100;
        if (share > 0 && share < 1)
          drain.points.emplace_back(end + v.get<double>(), at_end * (1 - share));
      }
      drain.points.emplace_back(end + wait, num(d, "after_drain_wait"));
      std::sort(drain.points.begin(), drain.points.end());
      spec.bands.push_back({end, end + wait, "drain wait"});
    }
  }
  PlotPanel churn{"churn rate (objects/s)", {}, false};
  int c = 0;
  for (auto& [k, r] : rates) {
    // An actor that publishes a rate but churned nothing (the I/O workload
    // has a "rate" of 0 objects) would only be a flat line at 0.
    if (std::all_of(r.points.begin(), r.points.end(), [](const auto& p) { return p.second == 0; }))
      continue;
    r.color = kPalette[c++ % 8];
    churn.series.push_back(r);
  }
  if (!churn.series.empty()) spec.panels.push_back(churn);
  if (!dying.points.empty()) {
    PlotPanel mem{"memory cgroups (count)", {dying}, false};
    if (!drain.points.empty()) mem.series.push_back(drain);
    spec.panels.push_back(mem);
  }
  if (!netns.points.empty()) spec.panels.push_back({"network namespaces (count)", {netns}, false});
  PlotPanel io{"I/O latency p99 per second (ms, log) · stalls as dots", {}, true};
  PlotSeries stalls{"stall (duration ms)", "#d62728", {}, true};
  io_series(run, io, stalls);
  if (!stalls.points.empty()) io.series.push_back(stalls);
  if (!io.series.empty()) spec.panels.push_back(io);

  for (const auto& ph : s.value("phases", json::array()))
    spec.bands.push_back({num(ph, "start_s"), num(ph, "end_s"), ph.value("name", "phase")});
  if (s.value("phases", json::array()).empty()) {
    double start = -1;
    for (const auto& e : run.events) {
      if (e.value("type", "") == "phase_start") start = num(e, "t");
      if (e.value("type", "") == "phase_end" && start >= 0)
        spec.bands.push_back({start, num(e, "t"), e.value("phase", "phase")});
    }
  }
  std::sort(spec.bands.begin(), spec.bands.end(),
            [](const PlotBand& a, const PlotBand& b) { return a.t0 < b.t0; });
  for (const auto& sig : s.value("signatures", json::array()))
    if (t_of(sig, "first_seen_s") >= 0)
      spec.markers.push_back({t_of(sig, "first_seen_s"),
                              fmt::format("{} ×{}", sig.value("id", "?"), num(sig, "count")),
                              "#c62828"});
  for (const auto& f : s.value("findings", json::array()))
    if (t_of(f, "first_seen_s") >= 0)
      spec.markers.push_back({t_of(f, "first_seen_s"),
                              fmt::format("{} ({})", f.value("id", "?"), f.value("verdict", "?")),
                              f.value("verdict", "") == "reproduced" ? "#7b1fa2" : "#e6a100"});
  std::set<std::string> seen_err;
  for (const auto& e : run.events) {
    std::string type = e.value("type", "");
    if (type == "churn_error") {
      std::string key = e.value("kind", "") + " " + e.value("op", "") + ":" + e.value("errno", "");
      if (seen_err.insert(key).second) spec.markers.push_back({num(e, "t"), key, "#e07b00"});
    } else if (type == "taint_change") {
      spec.markers.push_back({num(e, "t"), "taint " + e.value("change", ""), "#6a1b9a"});
    } else if (type == "netns_not_freed") {
      spec.markers.push_back({num(e, "t"), "netns not freed", "#c0392b"});
    }
  }
  std::sort(spec.markers.begin(), spec.markers.end(),
            [](const PlotMarker& a, const PlotMarker& b) { return a.t < b.t; });
  return "<section><h2>Timeline</h2>" + render_timeline_svg(spec) + "</section>\n";
}

std::string latency(const RunData& run) {
  auto ops = operations(run.summary);
  if (ops.empty()) return "";
  double lo = 1e18, hi = 1;
  for (const auto& op : ops) {
    const json& lat = (*op.entry)["lat_ns"];
    lo = std::min(lo, std::max(1.0, num(lat, "min", 1)));
    hi = std::max(hi, num(lat, "max", 1));
  }
  std::string o = fmt::format(
      "<section><h2>Operation latency</h2><table><tr><th>operation</th><th class=\"n\">count</th>"
      "<th class=\"n\">ops/s</th><th class=\"n\">p50</th><th class=\"n\">p99</th>"
      "<th class=\"n\">p99.9</th><th class=\"n\">max</th><th>histogram ({} … {}, log)</th></tr>",
      format_ns(lo), format_ns(hi));
  for (const auto& op : ops) {
    const json& e = *op.entry;
    const json& lat = e["lat_ns"];
    auto cell = [&](double p) {
      auto v = percentile(e, p);
      return v ? format_ns(*v) : std::string("–");
    };
    std::vector<std::pair<double, double>> ladder;
    if (lat.contains("percentile") && lat["percentile"].is_object())
      for (const auto& [k, v] : lat["percentile"].items())
        if (v.is_number()) ladder.emplace_back(std::atof(k.c_str()), v.get<double>());
    std::sort(ladder.begin(), ladder.end());
    o += fmt::format(
        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1f}</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
        esc(op.name), num(e, "count"), num(e, "iops"), cell(50), cell(99), cell(99.9),
        format_ns(num(lat, "max")),
        render_histogram_svg(ladder, num(lat, "min", 1), num(lat, "max", 1), lo, hi, 320, 34));
  }
  return o + "</table></section>\n";
}

std::string churn(const RunData& run) {
  const auto& s = run.summary;
  if (!s.contains("churn") || !s["churn"].is_object() || s["churn"].empty()) return "";
  std::string o =
      "<section><h2>Churn</h2><div class=\"grid\"><div><table><tr><th>kind</th>"
      "<th class=\"n\">created</th><th class=\"n\">destroyed</th><th class=\"n\">"
      "failed</th><th class=\"n\">rate/s</th><th class=\"n\">peak alive</th></tr>";
  std::string errs;
  for (const auto& [kind, c] : s["churn"].items()) {
    o += fmt::format(
        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{:.1f}</td><td class=\"n\">{}</td></tr>",
        esc(kind), num(c, "created"), num(c, "destroyed"), num(c, "failed"), num(c, "rate_per_s"),
        c.contains("peak_alive") ? fmt_num(c["peak_alive"]) : "–");
    if (c.contains("errors") && c["errors"].is_object())
      for (const auto& [k, n] : c["errors"].items())
        errs += fmt::format("<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>", esc(kind),
                            esc(k), fmt_num(n));
  }
  o += "</table></div><div><table><tr><th>kind</th><th>operation:errno</th><th class=\"n\">"
       "count</th></tr>";
  o += errs.empty() ? "<tr><td colspan=\"3\" class=\"muted\">no churn errors</td></tr>" : errs;
  return o + "</table></div></div></section>\n";
}

std::string leaks(const RunData& run) {
  const json l = run.summary.value("leaks", json::object());
  std::string o = "<section><h2>Leaks</h2>";
  if (l.empty()) return o + "<p class=\"muted\">no leak measurements</p></section>\n";
  o += "<div class=\"grid\">";
  for (const auto& [k, v] : l.items()) {
    o += fmt::format("<div><table><tr><th colspan=\"2\">{}</th></tr>", esc(k));
    if (v.is_object())
      for (const auto& [kk, vv] : v.items())
        o += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td></tr>", esc(kk),
                         vv.is_null() ? "–" : esc(fmt_num(vv)));
    o += "</table></div>";
  }
  return o + "</div></section>\n";
}

std::string signatures(const RunData& run) {
  const json sigs = run.summary.value("signatures", json::array());
  std::string o = "<section><h2>Kernel signatures</h2>";
  if (sigs.empty())
    return o + "<p class=\"muted\">no kernel log signatures matched</p></section>\n";
  o += "<table><tr><th>signature</th><th>bug</th><th>severity</th><th class=\"n\">count</th>"
       "<th class=\"n\">first / last seen</th><th>sample</th></tr>";
  for (const auto& sig : sigs) {
    std::string extra;
    if (sig.contains("devices"))
      extra = "<div class=\"ev\">devices: " +
              esc(sig["devices"].dump(-1, ' ', false, json::error_handler_t::replace)) + "</div>";
    o += fmt::format(
        "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{:.1f} s / {:.1f} s</td><td>{}<pre>{}</pre></td></tr>",
        esc(sig.value("id", "?")), esc(sig.value("bug", "")), esc(sig.value("severity", "")),
        num(sig, "count"), num(sig, "first_seen_s"), num(sig, "last_seen_s"), extra,
        esc(sig.contains("sample") && sig["sample"].is_string() ? sig["sample"].get<std::string>()
                                                                : ""));
  }
  return o + "</table></section>\n";
}

}  // namespace

std::string render_html(const RunData& run) {
  std::string o =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">";
  o += fmt::format("<title>krepro {} · {} · {}</title><style>{}</style></head><body><main>\n",
                   esc(scenario_name(run.summary)), esc(kernel_release(run.summary)),
                   esc(run.summary.value("verdict", "?")), kCss);
  o += header(run);
  o += verdicts(run);
  o += timeline(run);
  o += latency(run);
  o += churn(run);
  o += leaks(run);
  o += signatures(run);
  o += fmt::format("<footer>krepro report · schema {} · run folder {}</footer>\n",
                   esc(run.summary.value("schema", "?")), esc(run.dir));
  o += "</main></body></html>\n";
  return o;
}

}  // namespace krepro::results
