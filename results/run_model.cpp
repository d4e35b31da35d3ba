#include "results/run_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "harness/util/fs.h"

namespace krepro::results {

using nlohmann::json;

namespace {

json parse_or_null(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

void load_side_files(RunData& r) {
  if (auto ev = fs::read_file(r.dir + "/events.jsonl", 256 << 20)) {
    // A killed run may leave a torn last line; keep every whole line.
    for (const auto& line : fs::split(*ev, '\n')) {
      json j = parse_or_null(line);
      if (j.is_object()) r.events.push_back(std::move(j));
    }
  }
  if (auto se = fs::read_file(r.dir + "/latency/series.json", 256 << 20)) {
    json j = parse_or_null(*se);
    if (j.is_array()) r.series = std::move(j);
  }
}

void collect_ops(const json& j, const std::string& prefix, std::vector<Operation>& out) {
  if (!j.is_object()) return;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_object()) continue;
    // The recorder nests operations under "ops"; that level adds no meaning.
    std::string name = k == "ops" ? prefix : (prefix.empty() ? k : prefix + "." + k);
    if (v.contains("lat_ns") && v["lat_ns"].is_object())
      out.push_back({name, &v});
    else
      collect_ops(v, name, out);
  }
}

bool has_churn(const json& s, const char* kind) {
  return s.contains("churn") && s["churn"].is_object() && s["churn"].contains(kind);
}

std::string finding_note(const json& f) {
  std::string s = fmt::format("{} {} by {}", f.value("id", "?"), f.value("verdict", "?"),
                              f.value("detector", "?"));
  if (f.contains("first_seen_s") && f["first_seen_s"].is_number())
    s += fmt::format(" at {:.1f} s", f["first_seen_s"].get<double>());
  return s;
}

}  // namespace

Result<RunData> load_run(const std::string& dir) {
  auto text = fs::read_file(dir + "/summary.json", 64 << 20);
  if (!text) return make_error(ENOENT, "no summary.json in " + dir);
  json s = parse_or_null(*text);
  if (!s.is_object()) return make_error(EINVAL, dir + "/summary.json: not a JSON object");
  return run_from_summary(dir, s);
}

RunData run_from_summary(const std::string& dir, const json& summary) {
  RunData r;
  r.dir = dir;
  r.summary = summary;
  load_side_files(r);
  return r;
}

const char* case_status_name(CaseStatus s) {
  switch (s) {
    case CaseStatus::kPass:
      return "PASS";
    case CaseStatus::kFail:
      return "FAIL";
    case CaseStatus::kSkip:
      return "SKIP";
    case CaseStatus::kError:
      return "ERROR";
  }
  return "?";
}

std::vector<TestCase> test_cases(const RunData& run) {
  const json& s = run.summary;
  const std::string verdict = s.value("verdict", "error");
  const std::string reason = s.contains("reason") && s["reason"].is_string()
                                 ? s["reason"].get<std::string>()
                                 : std::string();
  const json findings =
      s.contains("findings") && s["findings"].is_array() ? s["findings"] : json::array();
  std::vector<TestCase> out;

  // The bugs krepro targets, with what a scenario must churn to exercise them.
  struct Known {
    const char* bug;
    const char* needs;
    bool exercised;
  };
  std::vector<Known> known = {
      {"netdev-refcount-leak", "netns churn", has_churn(s, "netns") || has_churn(s, "veth")},
      // The jitter is seen in the write workload's latency: churn alone
      // does not exercise it.
      {"kmem-writeback-jitter", "memcg churn beside a write workload",
       has_churn(s, "cgroups") && s.contains("workload") && s["workload"].is_object() &&
           !s["workload"].empty()},
      {"memcg-id-leak", "memcg churn", has_churn(s, "cgroups")},
  };
  std::vector<std::string> bugs;
  for (const auto& k : known) bugs.push_back(k.bug);
  for (const auto& f : findings) {
    std::string b = f.value("bug", "");
    if (!b.empty() && std::find(bugs.begin(), bugs.end(), b) == bugs.end()) bugs.push_back(b);
  }

  for (const auto& bug : bugs) {
    TestCase c;
    c.kind = "bug";
    c.name = bug == "generic" ? "kernel-health" : bug;
    bool reproduced = false, any = false;
    json ev = json::array();
    for (const auto& f : findings) {
      if (f.value("bug", "") != bug) continue;
      any = true;
      reproduced |= f.value("verdict", "") == "reproduced";
      c.notes.push_back(finding_note(f));
      ev.push_back(f);
    }
    c.evidence = ev;
    auto k = std::find_if(known.begin(), known.end(), [&](const Known& x) { return x.bug == bug; });
    bool exercised = k == known.end() || k->exercised;
    if (reproduced) {
      c.status = CaseStatus::kFail;
      c.reason = "reproduced";
    } else if (verdict == "skipped") {
      c.status = CaseStatus::kSkip;
      c.reason = reason.empty() ? "host lacks a needed feature" : reason;
    } else if (verdict == "error") {
      c.status = CaseStatus::kSkip;
      c.reason = "harness error: " + (reason.empty() ? std::string("unknown") : reason);
    } else if (!exercised && !any) {
      c.status = CaseStatus::kSkip;
      c.reason = fmt::format("not exercised (no {} in this scenario)", k->needs);
    } else {
      c.status = CaseStatus::kPass;
      if (any) c.reason = "suspect only";
    }
    out.push_back(std::move(c));
  }

  // Detectors: started ones from the event log, unavailable ones skipped,
  // plus any detector a finding names.
  std::map<std::string, std::string> unavailable;
  std::vector<std::string> dets;
  auto add_det = [&](const std::string& d) {
    if (!d.empty() && std::find(dets.begin(), dets.end(), d) == dets.end()) dets.push_back(d);
  };
  for (const auto& e : run.events) {
    std::string type = e.value("type", "");
    if (type == "detector_start") add_det(e.value("detector", ""));
    if (type == "observer_unavailable") {
      add_det(e.value("observer", ""));
      unavailable[e.value("observer", "")] = e.value("reason", "unavailable");
    }
  }
  for (const auto& f : findings) add_det(f.value("detector", ""));
  for (const auto& d : dets) {
    TestCase c;
    c.kind = "detector";
    c.name = "detector." + d;
    size_t n = 0;
    bool reproduced = false;
    for (const auto& f : findings) {
      if (f.value("detector", "") != d) continue;
      ++n;
      reproduced |= f.value("verdict", "") == "reproduced";
    }
    c.notes.push_back(fmt::format("{} finding(s)", n));
    if (reproduced) {
      c.status = CaseStatus::kFail;
      c.reason = "reported a reproduction";
    } else if (unavailable.count(d)) {
      c.status = CaseStatus::kSkip;
      c.reason = unavailable[d];
    } else if (verdict == "skipped") {
      c.status = CaseStatus::kSkip;
      c.reason = reason;
    }
    out.push_back(std::move(c));
  }

  if (verdict == "error") {
    TestCase c;
    c.kind = "run";
    c.name = "harness";
    c.status = CaseStatus::kError;
    c.reason = reason.empty() ? "harness failure" : reason;
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<Operation> operations(const json& summary) {
  std::vector<Operation> out;
  if (summary.contains("churn_latency")) collect_ops(summary["churn_latency"], "", out);
  if (summary.contains("workload")) collect_ops(summary["workload"], "workload", out);
  return out;
}

std::string percentile_key(double p) { return fmt::format("{:.6f}", p); }

std::optional<double> percentile(const json& entry, double p) {
  if (!entry.is_object() || !entry.contains("lat_ns")) return std::nullopt;
  const json& lat = entry["lat_ns"];
  if (!lat.contains("percentile") || !lat["percentile"].is_object()) return std::nullopt;
  auto it = lat["percentile"].find(percentile_key(p));
  if (it == lat["percentile"].end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::optional<double> run_time_of_mono(const RunData& run, int64_t mono_ns) {
  for (const auto& e : run.events) {
    if (e.value("type", "") != "run_start" || !e.contains("mono_ns")) continue;
    double t0 = e["mono_ns"].get<double>() - num(e, "t") * 1e9;
    return (static_cast<double>(mono_ns) - t0) / 1e9;
  }
  return std::nullopt;
}

std::string run_id_of(const RunData& run) {
  if (run.summary.contains("run_id") && run.summary["run_id"].is_string())
    return run.summary["run_id"];
  for (const auto& e : run.events)
    if (e.value("type", "") == "run_start") return e.value("run_id", "unknown");
  return "unknown";
}

std::string scenario_name(const json& s) {
  if (!s.contains("scenario")) return "unknown";
  if (s["scenario"].is_string()) return s["scenario"];
  return s["scenario"].value("name", "unknown");
}

std::string kernel_release(const json& s) {
  if (!s.contains("host") || !s["host"].is_object()) return "unknown";
  return s["host"].value("kernel_release", "unknown");
}

double num(const json& j, const char* key, double dflt) {
  if (!j.is_object()) return dflt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return dflt;
  return it->get<double>();
}

Result<void> write_atomic(const std::string& path, const std::string& data) {
  std::string tmp = path + ".tmp";
  KREPRO_TRY(fs::write_file(tmp, data, true));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("rename " + tmp);
  return {};
}

}  // namespace krepro::results
