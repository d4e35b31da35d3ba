#include "harness/app/commands.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "harness/detect/kernel_watch.h"
#include "harness/detect/log_scan.h"
#include "harness/engine/journal.h"
#include "harness/engine/registry.h"
#include "harness/engine/runner.h"
#include "harness/engine/scenario.h"
#include "harness/kernel/host_probe.h"
#include "harness/util/clock.h"
#include "harness/util/fs.h"
#include "results/formats.h"
#include "results/summary.h"

namespace krepro::app {

namespace {

// The krepro vm guest init sets KREPRO_VM_GUEST=1 (harness/vm/initramfs.cpp):
// there the "host" is a throwaway guest kernel, which is what scenarios that
// push kernel-global limits are for.
bool in_krepro_guest() {
  const char* g = std::getenv("KREPRO_VM_GUEST");
  return g && std::string(g) == "1";
}

namespace stdfs = std::filesystem;

std::string exe_dir() {
  std::error_code ec;
  auto p = stdfs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

std::vector<std::string> scenario_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("KREPRO_SCENARIOS")) dirs.push_back(env);
  dirs.push_back(exe_dir() + "/../scenarios");  // build/krepro in a checkout
  dirs.push_back(exe_dir() + "/scenarios");     // next to the binary (VM initramfs)
  dirs.push_back("/usr/share/krepro/scenarios");
  dirs.push_back("scenarios");
  return dirs;
}

int usage_error(const std::string& msg, bool bisect) {
  std::cerr << "krepro: " << msg << "\n";
  return bisect ? 255 : 2;
}

int map_bisect(int code, bool bisect) {
  if (!bisect) return code;
  if (code == 0 || code == 1) return code;
  if (code == 2) return 255;
  return 125;  // skipped, inconclusive, harness failure
}

// Signals: blocked in every thread, taken by one watcher with sigwait.
// First SIGINT/SIGTERM: stop and tear down; second: kill the workers.
class SignalWatcher {
 public:
  explicit SignalWatcher(engine::StopState& st) : st_(st) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    sigaddset(&set_, SIGUSR1);  // used only to wake the watcher at the end
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    t_ = std::thread([this] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set_, &sig) != 0) continue;
        if (sig == SIGUSR1 && done_.load()) return;
        if (sig == SIGUSR1) continue;
        int lvl = st_.level.fetch_add(1) + 1;
        std::cerr << "\nkrepro: " << strsignal(sig)
                  << (lvl == 1 ? ": stopping, tearing down (again to kill workers)\n"
                               : ": killing workers\n");
      }
    });
  }
  ~SignalWatcher() {
    done_.store(true);
    pthread_kill(t_.native_handle(), SIGUSR1);
    t_.join();
  }

 private:
  engine::StopState& st_;
  sigset_t set_;
  std::atomic<bool> done_{false};
  std::thread t_;
};

// A value as a person writes it: durations with units, sizes in bytes.
std::string show(const std::vector<engine::ParamSpec>& specs, const std::string& name,
                 const engine::ParamValue& v) {
  engine::ParamType t = engine::ParamType::kString;
  for (const auto& sp : specs)
    if (sp.name == name) t = sp.type;
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const auto* i = std::get_if<int64_t>(&v)) {
    if (t == engine::ParamType::kDuration) return engine::format_duration(*i);
    if (t == engine::ParamType::kSize) return std::to_string(*i) + "B";
    return std::to_string(*i);
  }
  if (const auto* d = std::get_if<double>(&v)) return fmt::format("{:g}", *d);
  const auto& str = std::get<std::string>(v);
  return str.empty() ? "\"\"" : str;
}

void print_plan(const engine::CompiledScenario& sc) {
  std::cout << fmt::format("scenario {} ({})\n", sc.name, sc.file);
  if (!sc.description.empty()) std::cout << "  " << sc.description << "\n";
  std::cout << fmt::format("  duration cap {}\n", engine::format_duration(sc.duration_ns));
  std::cout << "  options:";
  for (const auto& [k, v] : sc.options.values())
    std::cout << " " << k << "=" << show(engine::scenario_option_specs(), k, v);
  std::cout << "\n";
  for (const auto& ph : sc.phases) {
    std::cout << fmt::format("  phase {}: {}\n", ph.name,
                             ph.duration_ns ? engine::format_duration(ph.duration_ns)
                                            : std::string("until counts are done"));
    for (const auto& a : ph.actors) {
      std::cout << fmt::format("    {} ({}):", a.name, a.type->name);
      for (const auto& [k, v] : a.params.values())
        std::cout << " " << k << "=" << show(a.type->params, k, v);
      std::cout << "\n";
    }
  }
  std::cout << "dry run: nothing was created\n";
}

}  // namespace

std::string resolve_scenario(const std::string& n) {
  if (n.find('/') != std::string::npos || fs::exists(n)) return n;
  for (const auto& d : scenario_dirs()) {
    for (const std::string& cand : {d + "/" + n + ".yaml", d + "/" + n}) {
      if (fs::exists(cand) && !fs::is_dir(cand)) return stdfs::weakly_canonical(cand).string();
    }
  }
  return n;  // parse reports "not found" with this name
}

namespace {
std::string not_found_hint(const std::string& n) {
  std::string dirs;
  for (const auto& d : scenario_dirs()) dirs += (dirs.empty() ? "" : ", ") + d;
  return "no scenario file or shipped scenario named '" + n + "' (looked in " + dirs +
         "; `krepro list` names the shipped ones)";
}
}  // namespace

int cmd_run(const RunArgs& a) {
  engine::Registry reg;
  engine::register_builtin_actors(reg);
  std::string path = resolve_scenario(a.scenario.empty() ? "default" : a.scenario);
  auto raw = engine::parse_scenario_file(path);
  if (!raw) {
    if (raw.error().err() == ENOENT && !fs::exists(path))
      return usage_error(not_found_hint(path), a.bisect);
    return usage_error(raw.error().message(), a.bisect);
  }
  for (const auto& s : a.sets) {
    if (auto r = engine::apply_set(*raw, s); !r) return usage_error(r.error().message(), a.bisect);
  }
  if (!a.duration.empty()) {
    if (auto r = engine::apply_set(*raw, "duration=" + a.duration); !r)
      return usage_error(r.error().message(), a.bisect);
  }
  auto sc = engine::compile_scenario(*raw, reg);
  if (!sc) return usage_error(sc.error().message(), a.bisect);
  for (const auto& f : fs::split(a.formats, ',')) {
    static const char* kKnown[] = {"json", "ktap", "junit", "html", "prom", "kcidb"};
    if (std::find(std::begin(kKnown), std::end(kKnown), f) == std::end(kKnown))
      return usage_error("--format: unknown format '" + f + "' (json,ktap,junit,html,prom,kcidb)",
                         a.bisect);
  }
  if (a.dry_run) {
    print_plan(*sc);
    return 0;
  }
  if (sc->global_limits() && !sc->options.get_bool("allow_host") && !in_krepro_guest()) {
    return usage_error(sc->name +
                           " pushes kernel-global limits (memcg IDs, dying cgroups) and "
                           "is meant for a VM: run it with `krepro vm --kernel IMAGE -- run " +
                           sc->name + "`, or pass --set allow_host=true to run it here anyway",
                       a.bisect);
  }

  engine::StopState stop;
  SignalWatcher signals(stop);
  kernel::HostProbe host = kernel::probe_host();

  engine::RunOptions ro;
  ro.seed = a.seed;
  char id[16];
  std::snprintf(
      id, sizeof id, "%08x",
      static_cast<unsigned>((realtime_ns() / 1000) ^ (static_cast<uint64_t>(::getpid()) << 20)));
  ro.run_id = id;
  ro.out_dir = a.out.empty() ? "results/runs/" + sc->name + "-" + ro.run_id : a.out;
  ro.status_line = ::isatty(2);
  ro.tee_events = a.tee_events;
  if (const char* j = std::getenv("KREPRO_JOURNAL_DIR")) ro.journal_dir = j;

  auto observers = detect::make_builtin_detectors();
  auto outcome = engine::run_scenario(*sc, ro, host, stop, std::move(observers));
  if (auto w = results::write_summary(ro.out_dir, outcome.summary); !w)
    std::cerr << "krepro: " << w.error().message() << "\n";
  // report.html always (DESIGN.md), plus what --format asks for.
  std::vector<std::string> formats = fs::split(a.formats, ',');
  if (std::find(formats.begin(), formats.end(), "html") == formats.end()) formats.push_back("html");
  if (auto w = results::write_formats(ro.out_dir, outcome.summary, formats); !w)
    std::cerr << "krepro: " << w.error().message() << "\n";
  results::print_human_summary(std::cout, outcome.summary, ro.out_dir);
  return map_bisect(outcome.exit_code, a.bisect);
}

int cmd_list() {
  engine::Registry reg;
  engine::register_builtin_actors(reg);
  detect::register_builtin_detectors(reg);
  std::cout << "Scenarios:\n";
  std::set<std::string> seen;
  for (const auto& d : scenario_dirs()) {
    std::error_code ec;
    if (!stdfs::is_directory(d, ec)) continue;
    std::vector<stdfs::path> files;
    for (const auto& e : stdfs::directory_iterator(d, ec))
      if (e.path().extension() == ".yaml") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::string name = f.stem().string();
      if (!seen.insert(name).second) continue;
      auto raw = engine::parse_scenario_file(f.string());
      std::string desc = raw ? raw->description : "(invalid: " + raw.error().message() + ")";
      std::cout << fmt::format("  {:<24} {}\n", name, desc);
    }
  }
  std::cout << "\nActors:\n";
  for (const auto& t : reg.actors()) {
    std::cout << fmt::format("  {:<24} {}\n", t->name, t->help);
    for (const auto& p : t->params) {
      std::string range;
      if (p.max > p.min) range = fmt::format(" [{}..{}]", p.min, p.max);
      std::cout << fmt::format("      {:<20} {:<9} default {:<8} {}{}\n", p.name,
                               engine::param_type_name(p.type), p.default_value, p.help, range);
    }
  }
  std::cout << "\nScenario options (options: or --set NAME=VALUE):\n";
  for (const auto& p : engine::scenario_option_specs())
    std::cout << fmt::format("  {:<26} {:<9} default {:<6} {}\n", p.name,
                             engine::param_type_name(p.type), p.default_value, p.help);
  std::cout << "\nDetectors:\n";
  for (const auto& d : reg.detectors()) std::cout << fmt::format("  {:<24} {}\n", d.name, d.help);
  return 0;
}

int cmd_check(bool json) {
  kernel::HostProbe h = kernel::probe_host();
  engine::Registry reg;
  engine::register_builtin_actors(reg);
  nlohmann::json j = {{"kernel_release", h.kernel_release},
                      {"machine", h.machine},
                      {"root", h.root},
                      {"cgroup_mode", h.cgroup_mode},
                      {"features", nlohmann::json::object()},
                      {"scenarios", nlohmann::json::object()}};
  for (const auto& f : h.features) j["features"][f.name] = {{"ok", f.ok}, {"detail", f.detail}};
  std::set<std::string> seen;
  for (const auto& d : scenario_dirs()) {
    std::error_code ec;
    if (!stdfs::is_directory(d, ec)) continue;
    for (const auto& e : stdfs::directory_iterator(d, ec)) {
      if (e.path().extension() != ".yaml") continue;
      std::string name = e.path().stem().string();
      if (!seen.insert(name).second) continue;
      auto raw = engine::parse_scenario_file(e.path().string());
      if (!raw) continue;
      auto sc = engine::compile_scenario(*raw, reg);
      if (!sc) {
        j["scenarios"][name] = {{"runnable", false}, {"reason", sc.error().message()}};
        continue;
      }
      auto missing = engine::missing_features(*sc, h);
      bool vm_only = sc->global_limits() && !in_krepro_guest();
      std::string reason;
      for (const auto& m : missing) reason += (reason.empty() ? "" : "; ") + m;
      if (vm_only)
        reason = "VM only (pushes kernel-global limits)" + (reason.empty() ? "" : "; " + reason);
      j["scenarios"][name] = {{"runnable", missing.empty() && !vm_only}, {"reason", reason}};
    }
  }
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("kernel {} ({}), cgroups {}, {}\n", h.kernel_release, h.machine,
                           h.cgroup_mode, h.root ? "root" : "not root");
  for (const auto& f : h.features)
    std::cout << fmt::format("  {:<18} {:<4} {}\n", f.name, f.ok ? "yes" : "no", f.detail);
  std::cout << "scenarios:\n";
  for (const auto& [name, v] : j["scenarios"].items())
    std::cout << fmt::format("  {:<24} {:<4} {}\n", name, v["runnable"].get<bool>() ? "yes" : "no",
                             v["reason"].get<std::string>());
  return 0;
}

int cmd_cleanup(bool json) {
  std::string dir = engine::Journal::default_dir();
  if (const char* j = std::getenv("KREPRO_JOURNAL_DIR")) dir = j;
  auto rep = engine::cleanup_dead_runs(dir);
  if (json) {
    nlohmann::json j = {{"runs_cleaned", rep.runs_cleaned},
                        {"runs_live", rep.runs_live},
                        {"cgroups_removed", rep.cgroups_removed},
                        {"scratch_removed", rep.scratch_removed},
                        {"sysctls_restored", rep.sysctls_restored},
                        {"errors", rep.errors},
                        {"skipped", rep.skipped}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format(
        "cleanup: {} dead run(s) cleaned, {} live run(s) left alone; "
        "{} cgroups, {} scratch folders removed, {} sysctls restored\n",
        rep.runs_cleaned.size(), rep.runs_live.size(), rep.cgroups_removed, rep.scratch_removed,
        rep.sysctls_restored);
    for (const auto& e : rep.errors) std::cout << "  error: " << e << "\n";
    for (const auto& s : rep.skipped) std::cout << "  skipped (no krepro- prefix): " << s << "\n";
  }
  return rep.errors.empty() ? 0 : 3;
}

int cmd_scan(const std::string& path, bool json) { return detect::scan_main(path, json); }

int cmd_report(const std::string& dir, const std::string& formats) {
  return results::report_main(
      dir, formats.empty() ? std::vector<std::string>{} : fs::split(formats, ','));
}

int cmd_compare(const std::string& a, const std::string& b, bool json) {
  return results::compare_main({a}, {b}, json, std::cout);
}

}  // namespace krepro::app
