// Subcommands of the krepro CLI.
#pragma once

#include <string>
#include <vector>

namespace krepro::app {

struct RunArgs {
  std::string scenario;  // path or shipped name; empty: default
  std::vector<std::string> sets;
  std::string duration;
  std::string out;
  std::string formats = "json";
  uint64_t seed = 0;
  bool dry_run = false;
  bool bisect = false;
  std::string tee_events;  // hidden: echo events to a serial port (krepro vm guests)
};

int cmd_run(const RunArgs& a);
int cmd_list();
int cmd_check(bool json);
int cmd_cleanup(bool json);
int cmd_scan(const std::string& path, bool json);
int cmd_report(const std::string& dir, const std::string& formats);
int cmd_compare(const std::string& a, const std::string& b, bool json);

// Resolves a scenario name: a path that exists, else NAME(.yaml) in the
// shipped scenario folders.
std::string resolve_scenario(const std::string& name_or_path);

}  // namespace krepro::app
