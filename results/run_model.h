// A run folder read back for the result writers: summary.json plus the
// optional events.jsonl and latency/series.json, and the derived views every
// format shares (test cases per bug and detector, latency operations).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness/util/result.h"

namespace krepro::results {

struct RunData {
  std::string dir;
  nlohmann::json summary;
  std::vector<nlohmann::json> events;               // one per events.jsonl line
  nlohmann::json series = nlohmann::json::array();  // latency/series.json
};

// Reads DIR/summary.json (required) and the optional files.
Result<RunData> load_run(const std::string& dir);
// The same from an in-memory summary; events and series still come from DIR.
RunData run_from_summary(const std::string& dir, const nlohmann::json& summary);

enum class CaseStatus { kPass, kFail, kSkip, kError };
const char* case_status_name(CaseStatus s);  // PASS FAIL SKIP ERROR

// One result line: a bug (did it reproduce?) or a detector (did it fire?).
struct TestCase {
  std::string kind;  // "bug" | "detector" | "run"
  std::string name;
  CaseStatus status = CaseStatus::kPass;
  std::string reason;              // skip/error reason or failure headline
  std::vector<std::string> notes;  // key figures, one short line each
  nlohmann::json evidence = nlohmann::json::object();
};

// Bugs first (the three krepro targets plus any bug a finding names), then
// detectors seen in events.jsonl or in findings.
std::vector<TestCase> test_cases(const RunData& run);

// A latency-bearing operation: churn_latency keys and any workload object
// with lat_ns, named by its path ("netns.create", "workload.kv_wal.fdatasync").
struct Operation {
  std::string name;
  const nlohmann::json* entry = nullptr;  // {"count","iops","lat_ns":{...}}
};
std::vector<Operation> operations(const nlohmann::json& summary);

// fio-style percentile key: 99.9 -> "99.900000".
std::string percentile_key(double p);
// lat_ns.percentile[key] of an operation entry, in ns.
std::optional<double> percentile(const nlohmann::json& entry, double p);

// Seconds since run start of a CLOCK_MONOTONIC ns stamp, from run_start's
// mono_ns and t; nullopt when events.jsonl has no run_start.
std::optional<double> run_time_of_mono(const RunData& run, int64_t mono_ns);

std::string run_id_of(const RunData& run);
std::string scenario_name(const nlohmann::json& summary);
std::string kernel_release(const nlohmann::json& summary);

// Number from a JSON value of any numeric type (0 when absent or not numeric).
double num(const nlohmann::json& j, const char* key, double dflt = 0);

// Writes PATH atomically: PATH.tmp then rename.
Result<void> write_atomic(const std::string& path, const std::string& data);

}  // namespace krepro::results
