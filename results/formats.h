// Result formats beside summary.json, `krepro report` and `krepro compare`.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "harness/util/result.h"
#include "results/run_model.h"

namespace krepro::results {

// Format names accepted by --format.
const std::vector<std::string>& known_formats();  // json ktap junit html prom kcidb

// Writes each requested format into RUN_DIR (results.ktap, junit.xml,
// report.html, krepro.prom, kcidb.json). "json" is summary.json, which
// write_summary already wrote; it is accepted and skipped. Reads
// events.jsonl and latency/series.json from RUN_DIR when present.
Result<void> write_formats(const std::string& run_dir, const nlohmann::json& summary,
                           const std::vector<std::string>& formats);

// Renderers, one per format (pure: string out).
std::string render_ktap(const RunData& run);
std::string render_junit(const RunData& run);
std::string render_prom(const RunData& run);
nlohmann::json render_kcidb(const RunData& run);
std::string render_html(const RunData& run);

// `krepro report RUN_DIR [--format ...]`: re-renders every format already in
// the folder plus those requested (report.html always). 0 ok, 2 when the
// folder has no readable summary.json, 3 when writing fails.
int report_main(const std::string& run_dir, const std::vector<std::string>& formats = {},
                std::ostream* err = nullptr);

// `krepro compare A B [--json]`: each side is run folders or folders of run
// folders. 0 when B is not worse than A, 1 when it is, 2 on bad input.
int compare_main(const std::vector<std::string>& side_a, const std::vector<std::string>& side_b,
                 bool json, std::ostream& out);

}  // namespace krepro::results
