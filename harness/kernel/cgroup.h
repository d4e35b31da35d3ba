// cgroup v1 and v2: hierarchy discovery and a move-only Cgroup directory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/util/result.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {

enum class CgroupVersion { kV1, kV2 };

// One mounted hierarchy, from /proc/self/mountinfo.
struct CgroupMount {
  CgroupVersion version = CgroupVersion::kV1;
  std::vector<std::string> controllers;  // v1: "memory", "blkio", ...; v2: from cgroup.controllers
  std::string mount_point;               // e.g. /sys/fs/cgroup/memory
  std::string root;                      // mountinfo field 4: hierarchy path the mount shows
};

// Every controller name the kernel has (include/linux/cgroup_subsys.h; the
// v1 names plus cgroup2's "io"), to tell a typo (a scenario error) from a
// controller this host does not mount (a skip).
bool is_known_controller(std::string_view name);
// Controllers cgroup2 has (cpuacct, blkio, devices, freezer, net_cls and
// net_prio are v1 only; v2 has "io" for blkio).
bool is_v2_controller(std::string_view name);
// "memory, cpu,pids" -> {memory, cpu, pids}: commas or blanks separate,
// duplicates dropped, order kept.
std::vector<std::string> split_controller_list(std::string_view text);

// One v1 hierarchy and the controllers asked for that it carries.
// Co-mounted controllers (cpu,cpuacct) share one hierarchy, so a job's
// cgroup is made once there.
struct V1Hierarchy {
  CgroupMount mount;
  std::vector<std::string> named;  // in the order asked
  // "cpu" or, for co-mounted ones named together, "cpu,cpuacct".
  std::string key() const;
  bool has(std::string_view controller) const;
};

// Where this process's cgroups are. Paths are injectable: tests point
// proc_self at a fake /proc/self and fs_prefix at a fake tree.
class CgroupLayout {
 public:
  static Result<CgroupLayout> discover(const std::string& proc_self = "/proc/self",
                                       const std::string& fs_prefix = "");

  // The v1 hierarchy carrying a controller (nullptr when none is mounted).
  const CgroupMount* v1(const std::string& controller) const;
  // The cgroup2 (unified) hierarchy, nullptr when none.
  const CgroupMount* v2() const { return v2_ ? &*v2_ : nullptr; }
  const std::vector<CgroupMount>& v1_mounts() const { return v1_; }

  // Absolute directory of the cgroup this process is in, in that hierarchy.
  Result<std::string> self_dir_v1(const std::string& controller) const;
  Result<std::string> self_dir_v2() const;
  // True when the process sits at the root of that hierarchy (krepro then
  // refuses to create there unless --cgroup-parent says so).
  bool self_at_root_v1(const std::string& controller) const;

  // Groups controllers by v1 hierarchy, in the order first named; ENOENT
  // naming the first controller no hierarchy carries.
  Result<std::vector<V1Hierarchy>> v1_hierarchies(
      const std::vector<std::string>& controllers) const;

  // The directory krepro's run cgroup (krepro-<run-id>) goes under, per
  // hierarchy, from the cgroup_parent option. cgroup_parent is a list of
  // absolute paths separated by commas; each is either
  //  - a directory inside one mounted hierarchy (/sys/fs/cgroup/pids/ci):
  //    the parent in that hierarchy only, or
  //  - a cgroup path outside every mount ("/" or "/ci", as in
  //    /proc/self/cgroup): that path in every hierarchy no entry of the
  //    first kind names (at most one such entry).
  // A hierarchy neither names gets the cgroup this process runs in there,
  // and EPERM when that is the hierarchy root (DESIGN.md: never at a root
  // unless cgroup_parent says so). EINVAL for a malformed list.
  Result<std::string> run_parent_v1(const std::string& controller,
                                    std::string_view cgroup_parent) const;
  Result<std::string> run_parent_v2(std::string_view cgroup_parent) const;
  // Only the syntax and hierarchy checks of the above (before anything is
  // created): relative or ".." entries, two entries for one hierarchy, two
  // cgroup paths.
  Result<void> check_cgroup_parent(std::string_view cgroup_parent) const;

 private:
  struct ParentSpec {
    std::map<std::string, std::string> by_mount;  // mount point -> directory
    std::optional<std::string> everywhere;        // cgroup path in every hierarchy
  };
  Result<ParentSpec> parse_parent(std::string_view cgroup_parent) const;
  Result<std::string> run_parent(const CgroupMount& m, const std::string& self_dir, bool at_root,
                                 const std::string& what, std::string_view cgroup_parent) const;

  std::vector<CgroupMount> v1_;
  std::optional<CgroupMount> v2_;
  std::map<std::string, std::string> self_v1_;  // controller -> path in hierarchy
  std::string self_v2_;
  bool have_self_v2_ = false;
};

// What enabling kmem accounting the way runc did (write 1 then -1 to
// memory.kmem.limit_in_bytes before any task joins) found.
struct KmemState {
  bool file_present = false;  // memory.kmem.limit_in_bytes exists
  bool write_ok = false;      // the writes succeeded
  bool enforced = false;      // the limit read back as written (see KERNEL-NOTES: 6.x ignores it)
  int err = 0;                // errno of a failed write
};

// A cgroup directory krepro created. Move-only; the destructor removes it
// (best effort). remove() reports rmdir's errno (EBUSY is evidence, not an
// error to hide).
class Cgroup {
 public:
  Cgroup() = default;
  // mkdir parent/name. parent must exist.
  static Result<Cgroup> create(const std::string& parent, const std::string& name,
                               CgroupVersion version);
  // Adopts an existing directory (cleanup of a dead run).
  static Cgroup adopt(std::string path, CgroupVersion version);
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  Cgroup(Cgroup&& o) noexcept;
  Cgroup& operator=(Cgroup&& o) noexcept;

  const std::string& path() const { return path_; }
  CgroupVersion version() const { return version_; }
  bool valid() const { return !path_.empty(); }

  Result<void> write(const std::string& file, std::string_view value) const;
  Result<std::string> read(const std::string& file) const;

  // runc's EnableKernelMemoryAccounting (libcontainer/cgroups/fs/kmem.go):
  // kmem is only accounted once a limit was set, and a limit can only be set
  // before tasks or children exist, so it writes 1 and then -1. Enforcement
  // is detected by reading back after the first write.
  KmemState enable_kmem_like_runc() const;
  // v2 memory.max / memory.high ("max" for unlimited).
  Result<void> set_memory_max(std::string_view v) const { return write("memory.max", v); }
  Result<void> set_memory_high(std::string_view v) const { return write("memory.high", v); }

  // v1 cpuset: a cgroup without cpus and mems refuses tasks with ENOSPC
  // (kernel/cgroup/cpuset.c cpuset_can_attach_check), and a new one starts
  // empty unless its parent has cgroup.clone_children, so the values are
  // written explicitly, the way runc does (libcontainer/cgroups/fs/cpuset.go
  // ensureParent copies them from the parent).
  Result<void> set_cpuset(std::string_view cpus, std::string_view mems) const;
  // Copies cpuset.cpus and cpuset.mems from another (parent) directory.
  Result<void> copy_cpuset_from(const std::string& dir) const;

  // Opens cgroup.procs for writing (what JobPlacement takes).
  Result<UniqueFd> open_procs() const;
  // Moves a task in (cgroup.procs).
  Result<void> add_pid(pid_t pid) const;
  Result<std::vector<pid_t>> pids() const;
  // memory.stat (v1 or v2) or cgroup.stat: "key value" lines.
  Result<std::map<std::string, uint64_t>> read_stat(const std::string& file) const;

  // rmdir. On failure the object still holds the path.
  Result<void> remove();
  // Forgets the directory without removing it.
  std::string release();

 private:
  Cgroup(std::string path, CgroupVersion v) : path_(std::move(path)), version_(v) {}
  std::string path_;
  CgroupVersion version_ = CgroupVersion::kV1;
};

// Parses "key value\n" lines (memory.stat, cgroup.stat, /proc/vmstat).
std::map<std::string, uint64_t> parse_flat_keyed(std::string_view text);

// /proc/cgroups: controller -> num_cgroups (includes dying memcgs: the
// kernel counts a css until it is freed, kernel/cgroup/cgroup-v1.c
// proc_cgroupstats_show).
Result<std::map<std::string, uint64_t>> read_proc_cgroups(
    const std::string& path = "/proc/cgroups");

// Removes a cgroup tree bottom-up (children first). Each directory's tasks
// are killed with SIGKILL first when kill_tasks is set: only ever called on
// trees krepro created. Returns the number removed; errors are collected.
struct RemoveTreeResult {
  size_t removed = 0;
  std::vector<Error> errors;
};
RemoveTreeResult remove_cgroup_tree(const std::string& dir, bool kill_tasks);

}  // namespace krepro::kernel
