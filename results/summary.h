// summary.json (schema krepro.summary/1) and the human summary printed at
// the end of a run.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "harness/util/result.h"

namespace krepro::results {

// Writes DIR/summary.json atomically (tmp + rename), so a reader never sees
// half a file.
Result<void> write_summary(const std::string& dir, const nlohmann::json& summary);
// Checks the fields DESIGN.md promises; returns the first missing one.
std::optional<std::string> check_summary_shape(const nlohmann::json& s);
void print_human_summary(std::ostream& os, const nlohmann::json& s, const std::string& dir);

}  // namespace krepro::results
