// kcidb.json: a KernelCI KCIDB I/O report, schema v4.0 (kcidb-io
// kcidb_io/schema/v04_00.py): version{major,minor}, checkouts -> builds ->
// tests, every id "<origin>:<local id>", test status FAIL|ERROR|PASS|DONE|
// SKIP, test path dot-separated [.a-zA-Z0-9_-]. Only v4.0 fields are used
// (the schema sets additionalProperties false); krepro extras go in misc.
#include <fmt/format.h>

#include <cctype>

#include "results/formats.h"

namespace krepro::results {

namespace {
constexpr const char* kOrigin = "krepro";

// KCIDB paths allow only [.a-zA-Z0-9_-]; anything else becomes '_'.
std::string path_part(std::string_view s) {
  std::string o;
  for (char c : s)
    o += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') ? c : '_';
  return o.empty() ? "_" : o;
}
}  // namespace

nlohmann::json render_kcidb(const RunData& run) {
  using nlohmann::json;
  const auto& s = run.summary;
  const std::string id = fmt::format("{}:{}", kOrigin, run_id_of(run));
  const std::string kernel = kernel_release(s);
  const std::string start = s.value("started_at", "");
  json misc_env = {
      {"kernel_release", kernel}, {"scenario", scenario_name(s)}, {"run_id", run_id_of(run)}};
  if (s.contains("host") && s["host"].is_object()) {
    for (const char* k : {"cgroup_mode", "machine", "features_used"})
      if (s["host"].contains(k)) misc_env[k] = s["host"][k];
  }
  json checkout = {{"id", id},
                   {"origin", kOrigin},
                   {"comment", "kernel " + kernel},
                   {"misc", {{"kernel_release", kernel}}}};
  if (!start.empty()) checkout["start_time"] = start;
  json build = {{"id", id},          {"checkout_id", id},
                {"origin", kOrigin}, {"comment", "kernel " + kernel},
                {"valid", true},     {"misc", {{"kernel_release", kernel}}}};
  if (s.contains("host") && s["host"].contains("machine"))
    build["architecture"] = s["host"]["machine"];
  json tests = json::array();
  const std::string scen = path_part(scenario_name(s));
  for (const auto& c : test_cases(run)) {
    std::string status = case_status_name(c.status);
    json t = {{"id", fmt::format("{}:{}", id, c.name)},
              {"build_id", id},
              {"origin", kOrigin},
              {"path", fmt::format("krepro.{}.{}", scen, path_part(c.name))},
              {"status", status},
              {"waived", false},
              {"duration", num(s, "duration_s")},
              {"environment", {{"comment", "kernel " + kernel}, {"misc", misc_env}}},
              {"misc", {{"kind", c.kind}, {"notes", c.notes}, {"evidence", c.evidence}}}};
    if (!start.empty()) t["start_time"] = start;
    if (!c.reason.empty()) t["comment"] = c.reason;
    tests.push_back(std::move(t));
  }
  return {{"version", {{"major", 4}, {"minor", 0}}},
          {"checkouts", json::array({checkout})},
          {"builds", json::array({build})},
          {"tests", tests}};
}

}  // namespace krepro::results
