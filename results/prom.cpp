// krepro.prom: Prometheus text exposition format for node_exporter's
// textfile collector (one HELP and TYPE per family, label values escaped
// with \\ \" \n). Written via tmp + rename by write_formats so the collector
// never reads half a file.
#include <fmt/format.h>

#include <ctime>
#include <map>

#include "harness/util/fs.h"
#include "results/formats.h"

namespace krepro::results {

namespace {

std::string label_escape(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\')
      o += "\\\\";
    else if (c == '"')
      o += "\\\"";
    else if (c == '\n')
      o += "\\n";
    else
      o += c;
  }
  return o;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

class PromWriter {
 public:
  void family(const std::string& name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(const std::string& name, const Labels& labels, double v) {
    std::string l;
    for (const auto& [k, val] : labels)
      l += fmt::format("{}{}=\"{}\"", l.empty() ? "" : ",", k, label_escape(val));
    std::string series = l.empty() ? name : name + "{" + l + "}";
    // The format forbids a series twice; the first value wins.
    if (!seen_.emplace(series, true).second) return;
    out_ += fmt::format("{} {}\n", series, v);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
  std::map<std::string, bool> seen_;
};

double parse_utc(const std::string& iso) {
  std::tm tm{};
  if (!strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  return static_cast<double>(timegm(&tm));
}

}  // namespace

std::string render_prom(const RunData& run) {
  const auto& s = run.summary;
  const std::string scen = scenario_name(s);
  PromWriter w;
  w.family("krepro_run_info", "gauge", "Run identity (always 1).");
  w.sample("krepro_run_info",
           {{"run_id", run_id_of(run)}, {"scenario", scen}, {"kernel", kernel_release(s)}}, 1);
  w.family("krepro_run_verdict", "gauge", "1 for the run's verdict, 0 for the others.");
  const std::string verdict = s.value("verdict", "error");
  for (const char* v : {"reproduced", "not_reproduced", "inconclusive", "skipped", "error"})
    w.sample("krepro_run_verdict", {{"scenario", scen}, {"verdict", v}}, verdict == v ? 1 : 0);
  w.family("krepro_run_duration_seconds", "gauge", "Wall time of the run.");
  w.sample("krepro_run_duration_seconds", {{"scenario", scen}}, num(s, "duration_s"));
  if (s.contains("started_at") && s["started_at"].is_string()) {
    w.family("krepro_run_start_time_seconds", "gauge", "Run start, Unix time.");
    w.sample("krepro_run_start_time_seconds", {{"scenario", scen}}, parse_utc(s["started_at"]));
  }

  w.family("krepro_reproduced", "gauge", "1 when the bug reproduced in this run.");
  for (const auto& c : test_cases(run))
    if (c.kind == "bug")
      w.sample("krepro_reproduced", {{"scenario", scen}, {"bug", c.name}},
               c.status == CaseStatus::kFail ? 1 : 0);

  if (s.contains("churn") && s["churn"].is_object() && !s["churn"].empty()) {
    w.family("krepro_churn_created_total", "counter", "Objects created by churn actors.");
    for (const auto& [kind, c] : s["churn"].items())
      w.sample("krepro_churn_created_total", {{"kind", kind}}, num(c, "created"));
    w.family("krepro_churn_destroyed_total", "counter", "Objects destroyed by churn actors.");
    for (const auto& [kind, c] : s["churn"].items())
      w.sample("krepro_churn_destroyed_total", {{"kind", kind}}, num(c, "destroyed"));
    w.family("krepro_churn_failed_total", "counter", "Failed churn steps by operation and errno.");
    for (const auto& [kind, c] : s["churn"].items()) {
      if (!c.contains("errors") || !c["errors"].is_object()) continue;
      for (const auto& [key, n] : c["errors"].items()) {
        // Keys are "op:ERRNO" (e.g. "mkdir:ENOSPC") or a bare errno name.
        auto colon = key.find(':');
        std::string op = colon == std::string::npos ? "" : key.substr(0, colon);
        std::string err = colon == std::string::npos ? key : key.substr(colon + 1);
        w.sample("krepro_churn_failed_total", {{"kind", kind}, {"op", op}, {"errno", err}},
                 n.is_number() ? n.get<double>() : 0);
      }
    }
  }

  auto ops = operations(s);
  if (!ops.empty()) {
    w.family("krepro_latency_seconds", "summary", "Operation latency quantiles.");
    for (const auto& op : ops) {
      for (double q : {50.0, 90.0, 99.0, 99.9, 99.99})
        if (auto v = percentile(*op.entry, q))
          w.sample("krepro_latency_seconds",
                   {{"op", op.name}, {"quantile", fmt::format("{}", q / 100)}}, *v / 1e9);
      const auto& lat = (*op.entry)["lat_ns"];
      double n = num(lat, "N", num(*op.entry, "count"));
      w.sample("krepro_latency_seconds_sum", {{"op", op.name}}, num(lat, "mean") * n / 1e9);
      w.sample("krepro_latency_seconds_count", {{"op", op.name}}, n);
    }
    w.family("krepro_latency_max_seconds", "gauge", "Slowest single operation.");
    for (const auto& op : ops)
      w.sample("krepro_latency_max_seconds", {{"op", op.name}},
               num((*op.entry)["lat_ns"], "max") / 1e9);
  }

  if (s.contains("signatures") && s["signatures"].is_array() && !s["signatures"].empty()) {
    w.family("krepro_signature_count", "gauge", "Kernel log signature matches.");
    for (const auto& sig : s["signatures"])
      w.sample("krepro_signature_count",
               {{"id", sig.value("id", "?")}, {"bug", sig.value("bug", "?")}}, num(sig, "count"));
  }
  const auto leaks = s.value("leaks", nlohmann::json::object());
  if (leaks.contains("dying_memcgs")) {
    w.family("krepro_dying_memcgs_peak", "gauge", "Peak dying memory cgroups during the run.");
    w.sample("krepro_dying_memcgs_peak", {}, num(leaks["dying_memcgs"], "peak"));
    w.family("krepro_dying_memcgs_after_drain", "gauge", "Dying memcgs left after the drain wait.");
    w.sample("krepro_dying_memcgs_after_drain", {}, num(leaks["dying_memcgs"], "after_drain_wait"));
  }
  if (leaks.contains("netns_not_freed")) {
    w.family("krepro_netns_not_freed", "gauge", "Network namespaces not freed at the end.");
    w.sample("krepro_netns_not_freed", {}, num(leaks["netns_not_freed"], "end"));
    w.family("krepro_netns_not_freed_peak", "gauge", "Peak network namespaces awaiting free.");
    w.sample("krepro_netns_not_freed_peak", {}, num(leaks["netns_not_freed"], "peak"));
  }
  return w.take();
}

}  // namespace krepro::results
