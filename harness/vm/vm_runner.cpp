#include "harness/vm/vm_runner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "harness/util/clock.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"
#include "harness/vm/console.h"
#include "harness/vm/guest_stream.h"
#include "harness/vm/initramfs.h"
#include "harness/vm/modules.h"
#include "results/summary.h"

namespace krepro::vm {

namespace stdfs = std::filesystem;
using nlohmann::json;

int exit_status(const std::string& v, bool bisect) {
  if (v == "not_reproduced") return 0;
  if (v == "reproduced") return 1;
  if (bisect) return 125;
  if (v == "skipped") return 4;
  return 3;  // inconclusive, error
}

double parse_duration_s(const std::string& s) {
  if (s.empty()) return -1;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return -1;
  std::string unit(end);
  if (unit.empty() || unit == "s") return v;
  if (unit == "ms") return v / 1e3;
  if (unit == "m" || unit == "min") return v * 60;
  if (unit == "h") return v * 3600;
  return -1;
}

namespace {

// Before /init runs the console can stay silent for many seconds under a
// loaded TCG host (the kernel decompresses itself and the initramfs without
// printing), so the no-progress limit is at least this long until then.
constexpr double kBootGraceS = 90;
// After KREPRO-DONE the guest syncs and powers off; past this the host
// ends it.
constexpr int64_t kDoneGraceNs = 10'000'000'000;

// The guest's result archive holds regular files and folders only; a link
// in it (a guest that writes what it likes) could make later writes into
// the run folder land elsewhere on the host.
void remove_links(const std::string& dir) {
  std::error_code ec;
  std::vector<stdfs::path> bad;
  for (auto it = stdfs::recursive_directory_iterator(dir, ec);
       !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    auto st = it->symlink_status(ec);
    if (!ec && !stdfs::is_regular_file(st) && !stdfs::is_directory(st)) bad.push_back(it->path());
  }
  for (const auto& p : bad) stdfs::remove(p, ec);
}

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

std::string self_exe() {
  std::error_code ec;
  auto p = stdfs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

// Reads what a qemu chardev file gained since the last call.
class FileTail {
 public:
  explicit FileTail(std::string path) : path_(std::move(path)) {}
  std::string read_new() {
    if (!fd_) fd_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    std::string out;
    if (!fd_) return out;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd_.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

std::string scenario_of(const std::vector<std::string>& args) {
  if (args.size() >= 2 && args[0] == "run")
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i].rfind("--", 0) == 0) {
        // Options taking a value skip it; flags do not.
        if (args[i] != "--dry-run" && args[i] != "--bisect" &&
            args[i].find('=') == std::string::npos)
          ++i;
        continue;
      }
      return args[i];
    }
  return args.empty() || args[0] != "run" ? "" : "default";
}

// Whether the scenario drives block I/O, which needs the scratch disk.
bool scenario_does_io(const std::string& scenarios_dir, const std::string& name) {
  std::vector<std::string> cands = {name, scenarios_dir + "/" + name + ".yaml",
                                    scenarios_dir + "/" + name};
  for (const auto& c : cands) {
    if (c.empty() || !fs::exists(c) || fs::is_dir(c)) continue;
    auto text = fs::read_file(c);
    if (!text) return false;
    static const std::regex kIo(R"(type:\s*["']?(io|tikv|wal|fio)[-a-z]*)");
    return std::regex_search(*text, kIo);
  }
  return false;
}

// SIGINT/SIGTERM while a guest runs: end the guest, write what there is.
volatile sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  // qemu must not outlive krepro vm, whatever kills it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int nul = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (nul >= 0) ::dup2(nul, 0);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  ::execvp(a[0], a.data());
  std::fprintf(stderr, "exec %s: %s\n", a[0], std::strerror(errno));
  ::_exit(127);
}

json signatures_json(const std::vector<detect::SignatureSummary>& sums) {
  json a = json::array();
  for (const auto& s : sums)
    a.push_back({{"id", s.id},
                 {"bug", s.bug},
                 {"count", s.count},
                 {"first_seen_s", std::isfinite(s.first_s) ? json(s.first_s) : json(nullptr)},
                 {"sample", s.sample},
                 {"source", "guest console"}});
  return a;
}

}  // namespace

int run_vm(const VmConfig& c) {
  auto log = [&](const std::string& m) {
    if (!c.quiet) std::cerr << "krepro vm: " << m << "\n";
  };
  auto usage = [&](const std::string& m) {
    std::cerr << "krepro vm: " << m << "\n";
    return c.bisect ? 255 : 2;
  };
  if (c.kernel.empty() || !fs::exists(c.kernel))
    return usage("--kernel: no such file '" + c.kernel + "'");
  if (c.guest_args.empty()) return usage("nothing to run: give `-- run SCENARIO [options]`");
  auto accel = choose_accel(c.accel, c.probe);
  if (!accel) return usage(accel.error().message());

  std::string cache = c.cache_dir.empty() ? default_cache_dir() : c.cache_dir;
  std::string binary = c.krepro_binary.empty() ? self_exe() : c.krepro_binary;
  std::string scen_dir = c.scenarios_dir;
  if (scen_dir.empty()) {
    for (const auto& d : {stdfs::path(binary).parent_path() / "../scenarios",
                          stdfs::path(binary).parent_path() / "scenarios",
                          stdfs::path("/usr/share/krepro/scenarios")})
      if (fs::is_dir(d.string())) {
        scen_dir = stdfs::weakly_canonical(d).string();
        break;
      }
  }
  std::string scenario = scenario_of(c.guest_args);
  bool disk =
      c.scratch_disk_mib > 0 || (c.scratch_disk_mib < 0 && scenario_does_io(scen_dir, scenario));

  ImageSpec spec;
  spec.krepro_binary = binary;
  spec.scenarios_dir = scen_dir;
  spec.cache_dir = cache;
  spec.scratch_disk = disk;
  spec.extra_files = c.extra_files;
  spec.modules = {"veth", "bridge"};
  // ext4 asks the crypto API for crc32c (fs/ext4/super.c ext4_fill_super);
  // without modprobe in the guest it must already be loaded.
  if (disk)
    spec.modules.insert(spec.modules.end(), {"virtio_pci", "virtio_blk", "crc32c_generic", "ext4",
                                             "null_blk", "dm_delay", "loop"});
  for (const auto& m : c.extra_modules) {
    auto req = parse_module_request(m);
    if (!req) return usage("--module '" + m + "': " + req.error().message());
    if (req->is_file()) {
      if (!fs::exists(req->name_or_path))
        return usage("--module: no such file " + req->name_or_path);
      req->name_or_path = stdfs::absolute(req->name_or_path).string();
      spec.module_files.push_back(*req);
    } else {
      spec.modules.push_back(req->name_or_path);
      if (!req->params.empty()) spec.module_params[module_name(req->name_or_path)] = req->params;
    }
  }
  if (c.disk_delay_ms > 0) {
    if (!disk) return usage("--disk-delay: this run has no scratch disk (give --disk MiB)");
    std::string dmsetup;
    for (const char* p : {"/usr/sbin/dmsetup", "/sbin/dmsetup"})
      if (fs::exists(p)) dmsetup = p;
    if (dmsetup.empty())
      return usage("--disk-delay needs dmsetup on the host (apt-get install dmsetup)");
    spec.tools.push_back(dmsetup);
    spec.disk_delay_ms = c.disk_delay_ms;
    spec.modules.push_back("dm_delay");
  }
  if (!c.modules.empty()) {
    if (fs::is_dir(c.modules)) {
      spec.modules_dir = c.modules;
    } else {
      auto d = modules_from_deb(c.modules, cache);
      if (!d) return usage("--modules " + c.modules + ": " + d.error().message());
      spec.modules_dir = *d;
    }
  }

  // Every usage check is done: only now is anything made.
  std::string out = c.out;
  if (out.empty()) {
    std::string name = stdfs::path(scenario.empty() ? "vm" : scenario).stem().string();
    out = fmt::format("results/runs/vm-{}-{}", name, std::time(nullptr));
  }
  if (auto r = fs::make_dirs(out); !r) return usage("--out " + out + ": " + r.error().message());

  const int64_t t_start = mono_ns();
  auto since = [&](int64_t t) { return static_cast<double>(t - t_start) / 1e9; };
  auto img = build_image(spec);
  if (!img) {
    std::cerr << "krepro vm: initramfs: " << img.error().message() << "\n";
    return c.bisect ? 125 : 3;
  }
  log(fmt::format("initramfs {} ({}, {} modules) in {:.1f} s", img->path,
                  img->from_cache ? "cached" : "built", img->modules.size(), since(mono_ns())));
  if (!img->missing_modules.empty()) {
    std::string m;
    for (const auto& n : img->missing_modules) m += " " + n;
    log("modules not in the tree (absent):" + m);
  }

  // Per-run initrd: the cached image with the argument archive appended.
  std::string initrd = out + "/.initrd";
  {
    auto base = fs::read_file(img->path, size_t{1} << 30);
    if (!base) return c.bisect ? 125 : 3;
    std::string all = *base + args_archive(c.guest_args);
    if (auto r = fs::write_file(initrd, all, true); !r) return c.bisect ? 125 : 3;
  }
  std::string scratch = out + "/.scratch.img";
  if (disk) {
    int mib = c.scratch_disk_mib > 0 ? c.scratch_disk_mib : 2048;
    UniqueFd f(::open(scratch.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!f || ::ftruncate(f.get(), int64_t{mib} << 20) != 0) return c.bisect ? 125 : 3;
    // busybox mke2fs cannot make ext4 (shared KERNEL-NOTES): format on the
    // host, where it is a plain file.
    (void)run_capture("mkfs.ext4 -q -F " + shell_quote(scratch) + " >/dev/null 2>&1");
  }

  std::string console_raw = out + "/.console.raw", events_raw = out + "/.events.raw";
  ::unlink(console_raw.c_str());
  ::unlink(events_raw.c_str());
  // panic=-1: reboot at once on a panic, which -no-reboot turns into a
  // qemu exit (kernel/panic.c panic, panic_timeout < 0).
  std::string append = "console=ttyS0 panic=-1 " + c.append;
  std::vector<std::string> argv = {c.qemu,
                                   "-accel",
                                   accel->accel,
                                   "-m",
                                   std::to_string(c.memory_mib),
                                   "-smp",
                                   std::to_string(c.cpus),
                                   "-nographic",
                                   "-no-reboot",
                                   "-nic",
                                   "none",
                                   "-monitor",
                                   "none",
                                   "-serial",
                                   "file:" + console_raw,
                                   "-serial",
                                   "file:" + events_raw,
                                   "-kernel",
                                   c.kernel,
                                   "-initrd",
                                   initrd,
                                   "-append",
                                   append};
  if (disk) {
    argv.insert(argv.end(), {"-drive", "file=" + scratch + ",format=raw,if=virtio,cache=unsafe"});
  }
  log(fmt::format("booting {} (accel {}: {})", c.kernel, accel->accel, accel->reason));
  std::string started_at = now_iso();
  g_interrupted = 0;
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = on_interrupt;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  pid_t qemu = spawn(argv, out + "/qemu.log");
  if (qemu < 0) return c.bisect ? 125 : 3;

  FileTail con_tail(console_raw), ev_tail(events_raw);
  LineSplitter con_split, ev_split;
  ConsoleWatch watch;
  GuestStream g;
  std::ofstream console_log(out + "/console.log", std::ios::trunc);
  std::ofstream events_log(out + "/events.jsonl", std::ios::trunc);
  int64_t last_progress = mono_ns(), t_first_console = 0, t_init = 0, t_panic = 0, t_done = 0;
  std::string stop_reason;  // why the host ended the guest
  bool qemu_exited = false;
  int qemu_status = 0;

  auto pump = [&]() {
    bool progress = false;
    std::string cb = con_tail.read_new();
    if (!cb.empty()) {
      progress = true;
      if (!t_first_console) t_first_console = mono_ns();
      for (auto& l : con_split.feed(cb)) {
        console_log << l << "\n";
        watch.feed_line(l);
        if (watch.panicked() && !t_panic) t_panic = mono_ns();
      }
      console_log.flush();
    }
    std::string eb = ev_tail.read_new();
    if (!eb.empty()) {
      progress = true;
      for (auto& l : ev_split.feed(eb)) {
        size_t failures = g.setup_failures().size();
        if (g.feed_line(l) == GuestStream::Line::kEvent) events_log << l << "\n";
        if (g.init_started() && !t_init) t_init = mono_ns();
        if (g.done() && !t_done) t_done = mono_ns();
        if (g.setup_failures().size() > failures)
          log("guest set-up failed: " + g.setup_failures().back());
      }
      events_log.flush();
    }
    if (progress) last_progress = mono_ns();
  };

  while (true) {
    pump();
    int st = 0;
    if (::waitpid(qemu, &st, WNOHANG) == qemu) {
      qemu_exited = true;
      qemu_status = st;
      pump();
      break;
    }
    int64_t now = mono_ns();
    if (g_interrupted) {
      stop_reason = "interrupted";
    } else if (t_panic && now - t_panic > 2'000'000'000) {  // let the panic text arrive
      stop_reason = "panic";
    } else if (t_done && now - t_done > kDoneGraceNs) {
      // The guest sent everything and said so, but did not power off (a
      // kernel without ACPI halts on poweroff instead): its work is done.
      stop_reason = "done";
    } else if (static_cast<double>(now - last_progress) / 1e9 >
               (g.init_started() ? c.watchdog_s : std::max(c.watchdog_s, kBootGraceS))) {
      stop_reason = "watchdog";
    } else if (since(now) > c.timeout_s) {
      stop_reason = "timeout";
    }
    if (!stop_reason.empty()) {
      ::kill(qemu, SIGKILL);
      ::waitpid(qemu, &qemu_status, 0);
      pump();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (auto rest = con_split.flush(); !rest.empty()) {
    console_log << rest << "\n";
    watch.feed_line(rest);
  }
  watch.finish();
  console_log.close();
  events_log.close();
  const double total_s = since(mono_ns());
  ::unlink(initrd.c_str());
  ::unlink(scratch.c_str());
  ::unlink(console_raw.c_str());
  if (!g.guest_kernel().empty())
    (void)fs::write_file(out + "/guest_kernel", g.guest_kernel() + "\n", true);

  json vmj = {{"kernel", c.kernel},
              {"accel", accel->accel},
              {"accel_reason", accel->reason},
              {"memory_mib", c.memory_mib},
              {"cpus", c.cpus},
              {"append", append},
              {"initramfs", img->path},
              {"initramfs_cached", img->from_cache},
              {"modules", img->modules},
              {"guest_kernel", g.guest_kernel()},
              {"guest_exit", g.guest_exit()},
              {"events_streamed", g.events()},
              {"console_lines", watch.lines()},
              {"total_s", total_s}};
  if (t_first_console && t_init)
    vmj["boot_s"] = static_cast<double>(t_init - t_first_console) / 1e9;
  if (t_first_console) vmj["first_console_s"] = since(t_first_console);
  json console_sigs = signatures_json(watch.signatures());
  vmj["console_signatures"] = console_sigs;

  // The guest's own results, when it finished.
  bool have_guest = false;
  if (g.result_complete()) {
    std::string tgz;
    if (base64_decode(g.result_base64(), &tgz) && !tgz.empty()) {
      std::string tar = out + "/.guest-results.tar.gz";
      if (fs::write_file(tar, tgz, true) &&
          run_capture("tar --no-same-owner -xzf " + shell_quote(tar) + " -C " + shell_quote(out) +
                      " 2>&1")) {
        remove_links(out);
        have_guest = fs::exists(out + "/summary.json");
      }
      ::unlink(tar.c_str());
    }
  }
  ::unlink(events_raw.c_str());

  json s;
  if (have_guest) {
    auto text = fs::read_file(out + "/summary.json");
    try {
      s = json::parse(text ? *text : std::string("{}"));
    } catch (const json::exception&) {
      have_guest = false;
    }
  }
  if (have_guest) {
    // A kernel report on the console that the guest missed still counts.
    if (watch.shows_reproduction() && s.value("verdict", "") != "reproduced") {
      s["verdict"] = "reproduced";
      s["reason"] = "guest console shows a target bug signature";
    }
    if (watch.panicked()) {
      s["verdict"] = "error";
      s["reason"] = "guest kernel panic";
      vmj["panic_text"] = watch.panic_text();
    }
  } else {
    std::string verdict = "inconclusive", reason;
    if (watch.panicked()) {
      verdict = "error";
      reason = "guest kernel panic";
      vmj["panic_text"] = watch.panic_text();
    } else if (stop_reason == "watchdog") {
      reason = fmt::format("guest hung: no progress for {:.0f} s", c.watchdog_s);
    } else if (stop_reason == "interrupted") {
      reason = "interrupted (SIGINT/SIGTERM): guest stopped before it finished";
    } else if (stop_reason == "timeout") {
      reason = fmt::format("guest timed out after {:.0f} s", c.timeout_s);
    } else if (g.guest_exit() == 2) {
      verdict = "error";
      reason = "guest krepro: usage or scenario error (exit 2)";
    } else if (g.guest_exit() >= 0) {
      verdict = "error";
      reason = fmt::format("guest krepro exited {} without results", g.guest_exit());
      for (const auto& sig : console_sigs)
        if (sig.value("id", "") == "global-oom")
          reason += "; the guest ran out of memory (OOM killer: " + sig.value("sample", "") + ")";
    } else {
      verdict = "error";
      reason = fmt::format("qemu exited (status {}) before the guest finished; see qemu.log",
                           WIFEXITED(qemu_status) ? WEXITSTATUS(qemu_status) : -1);
    }
    if (verdict != "error" && watch.shows_reproduction()) {
      verdict = "reproduced";
      reason += "; guest console shows a target bug signature";
    }
    s = {{"schema", "krepro.summary/1"},
         {"scenario", {{"name", stdfs::path(scenario).stem().string()}}},
         {"host",
          {{"kernel_release", g.guest_kernel().empty() ? "unknown" : g.guest_kernel()},
           {"cgroup_mode", "guest"},
           {"features_used", json::array()}}},
         {"started_at", started_at},
         {"duration_s", total_s},
         {"verdict", verdict},
         {"reason", reason},
         {"findings", json::array()},
         {"workload", json::object()},
         {"churn", json::object()},
         {"leaks", json::object()},
         {"signatures", console_sigs}};
    vmj["console_tail"] = watch.tail();
  }
  if (g.result_overflow()) {
    vmj["result_overflow"] = true;
    s["reason"] = s.value("reason", "") +
                  fmt::format("; the guest's result archive was over {} MiB and was dropped",
                              GuestStream::kMaxResultBase64 >> 20);
  }
  if (!spec.module_files.empty() || !g.unloaded().empty()) {
    json fx = json::array();
    for (const auto& m : spec.module_files) {
      std::string n = module_name(m.name_or_path);
      json e = {{"module", n}, {"path", m.name_or_path}, {"params", m.params}};
      if (g.unloaded().count(n)) e["rmmod_status"] = g.unloaded().at(n);
      fx.push_back(e);
    }
    vmj["module_files"] = fx;
  }
  if (c.disk_delay_ms > 0) vmj["disk_delay_ms"] = c.disk_delay_ms;
  if (!g.setup_failures().empty()) {
    // The guest did not run what was asked for (a fixture that did not
    // load): its verdict says nothing about the kernel.
    vmj["setup_failures"] = g.setup_failures();
    s["verdict"] = "error";
    s["reason"] = "guest set-up failed: " + fmt::format("{}", fmt::join(g.setup_failures(), ", "));
  }
  vmj["stopped_by"] = stop_reason.empty() ? (qemu_exited ? "guest" : "host") : stop_reason;
  s["vm"] = vmj;
  if (auto r = results::write_summary(out, s); !r)
    std::cerr << "krepro vm: summary.json: " << r.error().message() << "\n";
  if (!c.quiet) results::print_human_summary(std::cout, s, out);
  log(fmt::format("boot {} s, total {:.1f} s, {} events streamed, stopped by {}",
                  vmj.contains("boot_s") ? fmt::format("{:.1f}", vmj["boot_s"].get<double>()) : "?",
                  total_s, g.events(), vmj["stopped_by"].get<std::string>()));
  if (g.guest_exit() == 2) return c.bisect ? 255 : 2;  // usage or scenario error in the guest
  return exit_status(s.value("verdict", "error"), c.bisect);
}

}  // namespace krepro::vm
