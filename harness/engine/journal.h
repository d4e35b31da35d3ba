// The run journal: what a run made, written before it makes it, so that
// `krepro cleanup` can remove a dead run's objects and nothing else.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "harness/util/result.h"

namespace krepro::engine {

struct JournalData {
  std::string run_id;
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // /proc/PID/stat field 22: tells a reused pid apart
  std::string out_dir;
  std::vector<std::string> cgroup_dirs;        // krepro-<run-id> trees
  std::vector<std::string> scratch_dirs;       // krepro-<run-id> folders of job files
  std::map<std::string, std::string> sysctls;  // path -> original value
  std::vector<std::string> tracefs_instances;  // instance directories
  std::vector<std::string> blkio_rules;        // "FILE MAJ:MIN" rules to reset to 0
  std::vector<std::string> mounts;             // krepro-* mount points, innermost last
  std::vector<std::string> loop_devices;       // /dev/loopN bound to krepro-* files
  std::vector<std::string> files;              // krepro-* files (loop images)
};

class Journal {
 public:
  static std::string default_dir() { return "/run/krepro"; }
  // Creates DIR/krepro-<run-id>.json for this process.
  static Result<Journal> create(const std::string& dir, const std::string& run_id,
                                const std::string& out_dir);
  Journal() = default;
  Journal(Journal&&) = default;
  Journal& operator=(Journal&&) = default;

  // Each adds an entry and rewrites the file atomically (tmp + rename)
  // before the caller creates the object.
  Result<void> add_cgroup_dir(const std::string& dir);
  Result<void> add_scratch_dir(const std::string& dir);
  Result<void> add_sysctl(const std::string& path, const std::string& original);
  Result<void> add_tracefs_instance(const std::string& dir);
  Result<void> add_blkio_rule(const std::string& rule);
  Result<void> add_mount(const std::string& dir);
  Result<void> add_loop_device(const std::string& dev);
  Result<void> add_file(const std::string& path);
  // The run ended cleanly: the journal goes.
  void remove();
  const JournalData& data() const { return data_; }
  const std::string& path() const { return path_; }

 private:
  Result<void> save();
  std::string path_;
  JournalData data_;
};

// Start time of a pid in clock ticks since boot, 0 when it is gone.
uint64_t process_start_ticks(pid_t pid, const std::string& proc_root = "/proc");

struct JournalEntry {
  std::string path;
  JournalData data;
  bool live = false;  // its process still runs
};
Result<std::vector<JournalEntry>> read_journals(const std::string& dir);

struct CleanupReport {
  std::vector<std::string> runs_cleaned;
  std::vector<std::string> runs_live;  // left untouched
  size_t cgroups_removed = 0;
  size_t scratch_removed = 0;
  size_t sysctls_restored = 0;
  size_t mounts_removed = 0;
  size_t loops_detached = 0;
  std::vector<std::string> errors;
  std::vector<std::string> skipped;  // journaled paths without the krepro- prefix
};
// Removes what dead runs journaled. Only paths whose last component starts
// with "krepro-" are touched.
CleanupReport cleanup_dead_runs(const std::string& dir);
// Removes one run's objects (used by a run's own teardown after SIGKILL of
// workers, and by cleanup).
void cleanup_journaled(const JournalData& d, CleanupReport& rep);

}  // namespace krepro::engine
