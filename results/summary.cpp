#include "results/summary.h"

#include <fmt/format.h>

#include <cstdio>

#include "harness/util/fs.h"

namespace krepro::results {

Result<void> write_summary(const std::string& dir, const nlohmann::json& s) {
  std::string tmp = dir + "/summary.json.tmp";
  KREPRO_TRY(fs::write_file(
      tmp, s.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", true));
  if (std::rename(tmp.c_str(), (dir + "/summary.json").c_str()) != 0)
    return errno_error("rename " + tmp);
  return {};
}

std::optional<std::string> check_summary_shape(const nlohmann::json& s) {
  for (const char* k : {"schema", "scenario", "host", "started_at", "duration_s", "verdict",
                        "findings", "workload", "churn", "leaks", "signatures"}) {
    if (!s.contains(k)) return std::string(k);
  }
  if (s["schema"] != "krepro.summary/1") return std::string("schema");
  for (const char* k : {"kernel_release", "cgroup_mode", "features_used"})
    if (!s["host"].contains(k)) return std::string("host.") + k;
  static const char* kVerdicts[] = {"reproduced", "not_reproduced", "inconclusive", "skipped",
                                    "error"};
  bool ok = false;
  for (const char* v : kVerdicts) ok |= s["verdict"] == v;
  if (!ok) return std::string("verdict");
  return std::nullopt;
}

namespace {
std::string ms(const nlohmann::json& lat, const char* pct) {
  if (!lat.contains("lat_ns") || !lat["lat_ns"].contains("percentile")) return "-";
  const auto& p = lat["lat_ns"]["percentile"];
  if (!p.contains(pct)) return "-";
  return fmt::format("{:.2f}", p[pct].get<double>() / 1e6);
}
// A number of a leak entry, or "-" when absent or null.
std::string num_or_dash(const nlohmann::json& o, const char* k, const char* f = "{:.0f}") {
  if (!o.contains(k) || !o[k].is_number()) return "-";
  return fmt::format(fmt::runtime(f), o[k].get<double>());
}

void print_leaks(std::ostream& os, const nlohmann::json& l) {
  if (!l.is_object()) return;
  for (const auto& [k, v] : l.items()) {
    if (k == "dying_memcgs" && v.is_object()) {
      os << fmt::format(
          "  leaks    dying memcgs: peak {}, at churn end {}, after {} s drain wait {} (half "
          "drained after {} s)\n",
          num_or_dash(v, "peak"), num_or_dash(v, "at_churn_end"),
          num_or_dash(v, "drain_wait_s", "{:.1f}"), num_or_dash(v, "after_drain_wait"),
          num_or_dash(v, "drain_half_s", "{:.1f}"));
    } else if (k == "netns_not_freed" && v.is_object()) {
      if (!v.contains("watched")) continue;  // the run dropped no namespace
      os << fmt::format(
          "  leaks    netns: {} dropped, {} freed, {} not freed at the end (most pending at once "
          "{}, stale {})\n",
          num_or_dash(v, "watched"), num_or_dash(v, "freed"), num_or_dash(v, "end"),
          num_or_dash(v, "peak"), num_or_dash(v, "peak_stale"));
    } else if (k == "net_namespace_objects" && v.is_object()) {
      os << fmt::format("  leaks    net_namespace slab objects: {} at start, peak {}\n",
                        num_or_dash(v, "start"), num_or_dash(v, "peak"));
    } else {
      os << fmt::format("  leaks    {}: {}\n", k, v.dump());
    }
  }
}

}  // namespace

void print_human_summary(std::ostream& os, const nlohmann::json& s, const std::string& dir) {
  os << fmt::format("krepro: {} on {} — verdict: {} ({:.1f} s)\n", s["scenario"].value("name", "?"),
                    s["host"].value("kernel_release", "?"), s.value("verdict", "?"),
                    s.value("duration_s", 0.0));
  if (s.contains("reason")) os << "  reason: " << s["reason"].get<std::string>() << "\n";
  for (const auto& [kind, c] : s["churn"].items()) {
    os << fmt::format("  {:<8} created {:>7}  destroyed {:>7}  failed {:>5}  ({:.0f}/s)\n", kind,
                      c.value("created", 0), c.value("destroyed", 0), c.value("failed", 0),
                      c.value("rate_per_s", 0.0));
    for (const auto& [e, n] : c["errors"].items())
      os << fmt::format("           {} x{}\n", e, n.get<uint64_t>());
  }
  if (s.contains("churn_latency") && !s["churn_latency"].empty()) {
    os << "  churn step latency (ms)      p50      p99    p99.9      max\n";
    for (const auto& [k, v] : s["churn_latency"].items()) {
      double mx = v.contains("lat_ns") ? v["lat_ns"].value("max", 0.0) / 1e6 : 0;
      os << fmt::format("    {:<24} {:>8} {:>8} {:>8} {:>8.2f}\n", k, ms(v, "50.000000"),
                        ms(v, "99.000000"), ms(v, "99.900000"), mx);
    }
  }
  auto io_rows = [&](const nlohmann::json& w, const std::string& prefix) {
    for (const auto& [k, v] : w.items()) {
      if (!v.is_object() || !v.contains("lat_ns")) continue;
      os << fmt::format("  io {:<28} {:>8} ops  p50 {} ms  p99 {} ms\n", prefix + k,
                        v.value("count", 0), ms(v, "50.000000"), ms(v, "99.000000"));
    }
    if (w.contains("stalls") && w["stalls"].is_object())
      os << fmt::format("  io {:<28} {:>8}\n", prefix + "stalls", w["stalls"].value("count", 0));
  };
  io_rows(s["workload"], "");
  for (const auto& [k, v] : s["workload"].items())
    if (v.is_object() && !v.contains("lat_ns") && k != "stalls") io_rows(v, k + "/");
  print_leaks(os, s["leaks"]);
  for (const auto& sig : s["signatures"])
    os << fmt::format("  signature {} x{}: {}\n", sig.value("id", "?"), sig.value("count", 0),
                      sig.value("sample", ""));
  for (const auto& f : s["findings"])
    os << fmt::format("  finding {} [{}] by {}\n", f.value("id", "?"), f.value("verdict", "?"),
                      f.value("detector", "?"));
  if (!dir.empty()) os << "  results: " << dir << "/summary.json\n";
}

}  // namespace krepro::results
