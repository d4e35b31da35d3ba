#include "harness/engine/journal.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "harness/kernel/cgroup.h"
#include "harness/kernel/loopdev.h"
#include "harness/util/fs.h"

namespace krepro::engine {

namespace {

nlohmann::json to_json(const JournalData& d) {
  return {{"run_id", d.run_id},
          {"pid", d.pid},
          {"start_ticks", d.start_ticks},
          {"out_dir", d.out_dir},
          {"cgroup_dirs", d.cgroup_dirs},
          {"scratch_dirs", d.scratch_dirs},
          {"sysctls", d.sysctls},
          {"tracefs_instances", d.tracefs_instances},
          {"blkio_rules", d.blkio_rules},
          {"mounts", d.mounts},
          {"loop_devices", d.loop_devices},
          {"files", d.files}};
}

JournalData from_json(const nlohmann::json& j) {
  JournalData d;
  d.run_id = j.value("run_id", "");
  d.pid = j.value("pid", 0);
  d.start_ticks = j.value("start_ticks", uint64_t{0});
  d.out_dir = j.value("out_dir", "");
  d.cgroup_dirs = j.value("cgroup_dirs", std::vector<std::string>{});
  d.scratch_dirs = j.value("scratch_dirs", std::vector<std::string>{});
  d.sysctls = j.value("sysctls", std::map<std::string, std::string>{});
  d.tracefs_instances = j.value("tracefs_instances", std::vector<std::string>{});
  d.blkio_rules = j.value("blkio_rules", std::vector<std::string>{});
  d.mounts = j.value("mounts", std::vector<std::string>{});
  d.loop_devices = j.value("loop_devices", std::vector<std::string>{});
  d.files = j.value("files", std::vector<std::string>{});
  return d;
}

bool prefixed(const std::string& path) {
  auto base = std::filesystem::path(path).filename().string();
  return base.rfind("krepro-", 0) == 0;
}

}  // namespace

uint64_t process_start_ticks(pid_t pid, const std::string& proc_root) {
  auto stat = fs::read_file(proc_root + "/" + std::to_string(pid) + "/stat", 4096);
  if (!stat) return 0;
  // comm may hold spaces and parentheses: fields resume after the last ')'.
  auto rp = stat->rfind(')');
  if (rp == std::string::npos) return 0;
  auto fields = fs::split(std::string_view(*stat).substr(rp + 2), ' ');
  // Field 22 overall is index 19 after pid and comm.
  if (fields.size() < 20) return 0;
  return std::strtoull(fields[19].c_str(), nullptr, 10);
}

Result<Journal> Journal::create(const std::string& dir, const std::string& run_id,
                                const std::string& out_dir) {
  KREPRO_TRY_CTX(fs::make_dirs(dir), "journal");
  Journal j;
  j.path_ = fs::join(dir, "krepro-" + run_id + ".json");
  j.data_.run_id = run_id;
  j.data_.pid = ::getpid();
  j.data_.start_ticks = process_start_ticks(j.data_.pid);
  j.data_.out_dir = out_dir;
  KREPRO_TRY(j.save());
  return j;
}

Result<void> Journal::save() {
  std::string tmp = path_ + ".tmp";
  KREPRO_TRY_CTX(fs::write_file(tmp, to_json(data_).dump(2) + "\n", true), "journal");
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return errno_error("rename " + tmp);
  return {};
}

Result<void> Journal::add_cgroup_dir(const std::string& d) {
  data_.cgroup_dirs.push_back(d);
  return save();
}
Result<void> Journal::add_scratch_dir(const std::string& d) {
  data_.scratch_dirs.push_back(d);
  return save();
}
Result<void> Journal::add_sysctl(const std::string& p, const std::string& orig) {
  if (!data_.sysctls.count(p)) data_.sysctls[p] = orig;
  return save();
}
Result<void> Journal::add_tracefs_instance(const std::string& d) {
  data_.tracefs_instances.push_back(d);
  return save();
}
Result<void> Journal::add_blkio_rule(const std::string& r) {
  data_.blkio_rules.push_back(r);
  return save();
}
Result<void> Journal::add_mount(const std::string& d) {
  data_.mounts.push_back(d);
  return save();
}
Result<void> Journal::add_loop_device(const std::string& d) {
  data_.loop_devices.push_back(d);
  return save();
}
Result<void> Journal::add_file(const std::string& f) {
  data_.files.push_back(f);
  return save();
}

void Journal::remove() {
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

Result<std::vector<JournalEntry>> read_journals(const std::string& dir) {
  std::vector<JournalEntry> out;
  auto names = fs::list_dir(dir);
  if (!names) {
    if (names.error().err() == ENOENT) return out;
    return Unexpected(names.error());
  }
  for (const auto& n : *names) {
    if (n.rfind("krepro-", 0) != 0 || n.size() < 6 || n.substr(n.size() - 5) != ".json") continue;
    JournalEntry e;
    e.path = fs::join(dir, n);
    auto text = fs::read_file(e.path);
    if (!text) continue;
    try {
      e.data = from_json(nlohmann::json::parse(*text));
    } catch (const nlohmann::json::exception&) {
      continue;  // torn write of a crashed run: nothing trustworthy to act on
    }
    uint64_t ticks = e.data.pid > 0 ? process_start_ticks(e.data.pid) : 0;
    e.live = ticks != 0 && ticks == e.data.start_ticks;
    out.push_back(std::move(e));
  }
  return out;
}

void cleanup_journaled(const JournalData& d, CleanupReport& rep) {
  for (const auto& [path, orig] : d.sysctls) {
    if (path.rfind("/proc/sys/", 0) != 0) continue;
    if (fs::write_file(path, orig))
      ++rep.sysctls_restored;
    else
      rep.errors.push_back("restore " + path);
  }
  for (const auto& rule : d.blkio_rules) {
    // "FILE MAJ:MIN": reset the throttle to 0 (no limit).
    auto sp = rule.find(' ');
    if (sp == std::string::npos) continue;
    (void)fs::write_file(rule.substr(0, sp), rule.substr(sp + 1) + " 0");
  }
  for (const auto& inst : d.tracefs_instances) {
    if (!prefixed(inst)) {
      rep.skipped.push_back(inst);
      continue;
    }
    ::rmdir(inst.c_str());
  }
  // Deepest first: a run's cgroup dirs never nest in each other, but be safe.
  for (auto it = d.cgroup_dirs.rbegin(); it != d.cgroup_dirs.rend(); ++it) {
    if (!prefixed(*it)) {
      rep.skipped.push_back(*it);
      continue;
    }
    auto r = kernel::remove_cgroup_tree(*it, /*kill_tasks=*/true);
    rep.cgroups_removed += r.removed;
    for (const auto& e : r.errors) rep.errors.push_back(e.message());
  }
  // Mounts innermost first (the scratch filesystem sits on a loop device
  // whose image lives on another krepro mount).
  for (auto it = d.mounts.rbegin(); it != d.mounts.rend(); ++it) {
    if (it->find("/krepro-") == std::string::npos) {
      rep.skipped.push_back(*it);
      continue;
    }
    if (::umount2(it->c_str(), MNT_DETACH) == 0)
      ++rep.mounts_removed;
    else if (errno != EINVAL && errno != ENOENT)
      rep.errors.push_back("umount " + *it + ": " + std::strerror(errno));
    ::rmdir(it->c_str());
  }
  for (auto it = d.loop_devices.rbegin(); it != d.loop_devices.rend(); ++it) {
    // Only a loop device still bound to a krepro- file is ours.
    std::string backing = kernel::loop_backing_file(*it);
    if (backing.empty()) continue;
    if (!prefixed(backing)) {
      rep.skipped.push_back(*it + " (" + backing + ")");
      continue;
    }
    if (kernel::loop_detach_path(*it))
      ++rep.loops_detached;
    else
      rep.errors.push_back("detach " + *it);
  }
  for (const auto& f : d.files) {
    if (!prefixed(f)) {
      rep.skipped.push_back(f);
      continue;
    }
    ::unlink(f.c_str());
  }
  for (const auto& s : d.scratch_dirs) {
    if (!prefixed(s)) {
      rep.skipped.push_back(s);
      continue;
    }
    std::error_code ec;
    if (std::filesystem::exists(s, ec)) {
      std::filesystem::remove_all(s, ec);
      if (ec)
        rep.errors.push_back("remove " + s + ": " + ec.message());
      else
        ++rep.scratch_removed;
    }
  }
}

CleanupReport cleanup_dead_runs(const std::string& dir) {
  CleanupReport rep;
  auto js = read_journals(dir);
  if (!js) {
    rep.errors.push_back(js.error().message());
    return rep;
  }
  for (const auto& e : *js) {
    if (e.live) {
      rep.runs_live.push_back(e.data.run_id);
      continue;
    }
    size_t errs = rep.errors.size();
    cleanup_journaled(e.data, rep);
    rep.runs_cleaned.push_back(e.data.run_id);
    if (rep.errors.size() == errs) ::unlink(e.path.c_str());
  }
  return rep;
}

}  // namespace krepro::engine
