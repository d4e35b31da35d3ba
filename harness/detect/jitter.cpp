#include "harness/detect/jitter.h"

#include <cmath>
#include <map>

namespace krepro::detect {

using nlohmann::json;

namespace {

double pct(const json& op, const char* key) {
  if (!op.contains("lat_ns") || !op["lat_ns"].contains("percentile")) return 0;
  const auto& p = op["lat_ns"]["percentile"];
  return p.contains(key) ? p[key].get<double>() : 0;
}

// A p99 from a few dozen samples is the maximum of a handful: one vCPU
// wake-up on this kind of host doubles it. Phases are compared only where
// both have enough samples for the 99th percentile to sit below the largest
// few, and only a shift of tens of milliseconds counts (writeback jitter is
// tens of milliseconds to seconds; swings under 20 ms are the host's noise).
constexpr int kMinShiftSamples = 100;
constexpr double kMinShiftNs = 20e6;
constexpr double kShiftRatio = 2.0;

bool near_5s_multiple(double ms) {
  if (ms < 4500) return false;
  double k = std::round(ms / 5000.0);
  return std::fabs(ms - k * 5000.0) <= 0.1 * k * 5000.0;
}

// Sync-type ops are where writeback jitter shows (fdatasync, fsync, flush).
bool sync_op(const std::string& key) {
  auto dot = key.rfind('.');
  std::string op = dot == std::string::npos ? key : key.substr(dot + 1);
  return op == "fdatasync" || op == "fsync" || op == "flush";
}

}  // namespace

json jitter_finding(const json& phases, const std::vector<json>& stalls, const json& attribution,
                    const json& signatures, int64_t t0_ns) {
  // Workload per phase: the merged view of every actor's workload keys.
  std::vector<std::pair<std::string, json>> wl;
  for (const auto& ph : phases) {
    json merged = json::object();
    for (auto& [a, aj] : ph["actors"].items())
      if (aj.contains("workload"))
        for (auto& [k, v] : aj["workload"].items())
          if (v.is_object() && v.contains("lat_ns")) merged[k] = v;
    if (!merged.empty()) wl.emplace_back(ph["name"].get<std::string>(), merged);
  }
  std::map<std::string, int> stalls_by_phase;
  json listed = json::array();
  int near5 = 0;
  for (const auto& st : stalls) {
    std::string ph = st.value("phase", "");
    ++stalls_by_phase[ph];
    double ms = st.value("duration_ns", int64_t{0}) / 1e6;
    if (near_5s_multiple(ms)) ++near5;
    if (listed.size() < 50)
      listed.push_back({{"phase", ph},
                        {"t_s", (st.value("start_ns", int64_t{0}) - t0_ns) / 1e9},
                        {"ms", ms},
                        {"stream", st.value("stream", "")},
                        {"op", st.value("op", "")}});
  }
  if (wl.empty() && stalls.empty()) return nullptr;

  json shifts = json::array();
  bool big_shift = false;
  if (wl.size() >= 2) {
    const auto& [base_name, base] = wl.front();
    for (size_t i = 1; i < wl.size(); ++i) {
      const auto& [name, w] = wl[i];
      for (auto& [k, v] : w.items()) {
        if (!sync_op(k) || !base.contains(k)) continue;
        double b50 = pct(base[k], "50.000000"), b99 = pct(base[k], "99.000000");
        double p50 = pct(v, "50.000000"), p99 = pct(v, "99.000000");
        if (b50 <= 0 || b99 <= 0) continue;
        double r99 = p99 / b99;
        bool enough = v.value("count", 0) >= kMinShiftSamples &&
                      base[k].value("count", 0) >= kMinShiftSamples;
        bool counts = enough && r99 >= kShiftRatio && p99 - b99 >= kMinShiftNs;
        big_shift |= counts;
        shifts.push_back({{"op", k},
                          {"baseline_phase", base_name},
                          {"phase", name},
                          {"p50_ratio", p50 / b50},
                          {"p99_ratio", r99},
                          {"baseline_p99_ms", b99 / 1e6},
                          {"p99_ms", p99 / 1e6},
                          {"samples", v.value("count", 0)},
                          {"counts", counts}});
      }
    }
  }
  // Kernel layers the io-trace observer found for the stalls.
  json by_layer = json::object();
  if (attribution.is_object() && attribution.contains("by_layer"))
    by_layer = attribution["by_layer"];
  else if (attribution.is_array())
    for (const auto& a : attribution)
      by_layer[a.value("layer", "unknown")] = by_layer.value(a.value("layer", "unknown"), 0) + 1;
  bool slub = false;
  for (const auto& s : signatures)
    if (s.value("id", "") == "slub-alloc-failure") slub = true;
  bool allocator_layer =
      by_layer.contains("mempool/allocator") && by_layer["mempool/allocator"].get<int>() > 0;

  if (stalls.empty() && !big_shift) return nullptr;
  // Kernel evidence below the page cache (slab failures, mempool waits) is
  // the bug; a latency shift or stalls without it are only suspect (the
  // device may simply be slow: an injected throttle shows as "device").
  std::string verdict =
      (slub || allocator_layer) && (!stalls.empty() || big_shift) ? "reproduced" : "suspect";
  return {{"id", "writeback-jitter"},
          {"bug", "kmem-writeback-jitter"},
          {"detector", "jitter"},
          {"verdict", verdict},
          {"first_seen_s", listed.empty() ? json(nullptr) : listed.front()["t_s"]},
          {"evidence",
           {{"stalls", stalls.size()},
            {"stalls_by_phase", stalls_by_phase},
            {"near_5s_multiples", near5},
            {"stall_list", listed},
            {"latency_shifts", shifts},
            {"stall_layers", by_layer},
            {"slub_alloc_failures", slub}}}};
}

namespace {

class JitterDetector final : public engine::RunObserver {
 public:
  std::string name() const override { return "jitter"; }
  void finish(engine::RunContext& ctx, engine::RunStats& stats, json& summary) override {
    json f = jitter_finding(
        summary["phases"], stats.stalls,
        summary.contains("stall_attribution") ? summary["stall_attribution"] : json(),
        summary["signatures"], ctx.t0_ns);
    if (!f.is_null()) stats.findings.push_back(std::move(f));
  }
};

}  // namespace

std::unique_ptr<engine::RunObserver> make_jitter_detector() {
  return std::make_unique<JitterDetector>();
}

}  // namespace krepro::detect
