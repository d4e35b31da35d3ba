// krepro: reproduce and stress-test kernel bugs that hit Kubernetes nodes.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "harness/app/commands.h"
#include "harness/app/vm_cmd.h"
#include "harness/engine/io_worker.h"
#include "harness/kernel/spawner.h"
#include "workloads/payload_spawner.h"

int main(int argc, char** argv) {
  using namespace krepro::app;
  // The tikv-write actor's worker process (harness/engine/io_worker.h).
  if (argc == 2 && std::string(argv[1]) == krepro::engine::kIoWorkerCommand)
    return krepro::engine::io_worker_main();
  // The churners' job spawner (harness/kernel/spawner.h).
  if (argc == 2 && std::string(argv[1]) == krepro::kernel::kSpawnerCommand)
    return krepro::workloads::payload_spawner_main();
  krepro::kernel::declare_self_spawner();
  CLI::App app{"krepro: reproduce and stress-test kernel bugs that hit Kubernetes nodes"};
  app.require_subcommand(1);

  RunArgs ra;
  auto* run = app.add_subcommand("run", "run a scenario (default: the default scenario)");
  run->add_option("scenario", ra.scenario, "scenario file or shipped name");
  run->add_option("--set", ra.sets, "override key=value (ACTOR.param, PHASE.duration, option)")
      ->allow_extra_args(false);
  run->add_option("--duration", ra.duration, "cap the whole run (e.g. 90s)");
  run->add_option("--out", ra.out, "run folder (default results/runs/<scenario>-<run-id>)");
  run->add_option("--format", ra.formats, "json,ktap,junit,html,prom,kcidb");
  run->add_option("--seed", ra.seed, "random seed");
  run->add_flag("--dry-run", ra.dry_run, "print the resolved plan, create nothing");
  run->add_option("--tee-events", ra.tee_events, "also write each event line to PATH")
      ->group("");  // hidden: used inside krepro vm guests
  run->add_flag("--bisect", ra.bisect,
                "exit 0 good / 1 bad / 125 skip / 255 usage, for git bisect run");

  auto* list = app.add_subcommand("list", "scenarios, actors, detectors, with one-line help");
  bool check_json = false, cleanup_json = false, scan_json = false;
  auto* check = app.add_subcommand("check", "what this host supports, and which scenarios can run");
  check->add_flag("--json", check_json, "machine-readable");
  auto* cleanup = app.add_subcommand("cleanup", "remove what dead krepro runs left behind");
  cleanup->add_flag("--json", cleanup_json, "machine-readable");
  std::string scan_path;
  auto* scan = app.add_subcommand("scan", "classify kernel log text (dmesg, journal, console)");
  scan->add_option("file", scan_path, "log file, or - for stdin")->required();
  scan->add_flag("--json", scan_json, "machine-readable");

  std::string report_dir, report_formats, cmp_a, cmp_b;
  bool cmp_json = false;
  auto* report = app.add_subcommand("report", "re-render reports from a run's JSON");
  report->add_option("run_dir", report_dir, "run folder")->required();
  report->add_option("--format", report_formats,
                     "json,ktap,junit,html,prom,kcidb (default: those present)");
  auto* compare =
      app.add_subcommand("compare", "patch validation: run(s) A vs run(s) B, with statistics");
  compare->add_option("run_a", cmp_a, "run folder, or a folder of run folders")->required();
  compare->add_option("run_b", cmp_b, "run folder, or a folder of run folders")->required();
  compare->add_flag("--json", cmp_json, "machine-readable");

  VmArgs va;
  auto* vm = add_vm_subcommand(app, va);

  // `vm ... -- GUEST COMMAND`: everything after the first "--" belongs to
  // the guest. CLI11 2.1 lets "--" end a repeatable option's values
  // (--module x -- run ...) instead of starting the positionals, so the
  // guest command is split off before parsing.
  std::vector<std::string> guest_tail;
  if (argc > 1 && std::string(argv[1]) == "vm") {
    for (int i = 2; i < argc; ++i)
      if (std::string(argv[i]) == "--") {
        guest_tail.assign(argv + i + 1, argv + argc);
        argc = i;
        break;
      }
  }
  try {
    app.parse(argc, argv);
    if (*vm && !guest_tail.empty()) va.guest_args = guest_tail;
  } catch (const CLI::ParseError& e) {
    bool bisect = false;
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) == "--bisect") bisect = true;
    int rc = app.exit(e);
    if (rc == 0) return 0;
    return bisect ? 255 : 2;
  }
  if (*run) return cmd_run(ra);
  if (*list) return cmd_list();
  if (*check) return cmd_check(check_json);
  if (*cleanup) return cmd_cleanup(cleanup_json);
  if (*scan) return cmd_scan(scan_path, scan_json);
  if (*report) return cmd_report(report_dir, report_formats);
  if (*vm) return vm_main(va);
  if (*compare) return cmd_compare(cmp_a, cmp_b, cmp_json);
  return 2;
}
