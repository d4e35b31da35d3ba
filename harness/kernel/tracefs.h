// A tracefs instance of krepro's own: its own ring buffer, clock and event
// set, so that tracing never disturbs the top-level buffer or other users'
// instances (kernel/trace/trace.c instance_mkdir / instance_rmdir).
//
// Lifetime: create() finds a mounted tracefs (or mounts one at a krepro-owned
// folder, never over /sys/kernel/tracing), mkdirs instances/<name>, sets the
// clock and buffer size, and opens nothing else. enable_event() and
// add_kprobe_pair() switch on what the caller asks for; start_reader() reads
// trace_pipe on a thread. The destructor undoes all of it in reverse:
// reader stopped (an open trace_pipe keeps the instance busy:
// __remove_instance returns EBUSY while tr->ref is held), tracing_on 0,
// events disabled, our kprobes removed, instance rmdir'ed, private mount
// unmounted.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harness/util/result.h"

namespace krepro::kernel {

struct TracefsOptions {
  // Where mounted filesystems are listed (tests: a fake file).
  std::string mounts_path = "/proc/self/mounts";
  // Use this tracefs root directly and skip the mount search (tests: a fake
  // tree of plain files).
  std::string root;
  // When no tracefs is mounted: mount one here (created, and removed at the
  // end). Its last component must start with "krepro-". Empty: fail instead.
  std::string private_mount_dir;
  // Per-CPU ring buffer of the instance.
  int buffer_size_kb = 4096;
  // Wanted trace_clock; "mono" is CLOCK_MONOTONIC (kernel/trace/trace.c
  // trace_clocks[]: ktime_get_mono_fast_ns), so timestamps compare with
  // the run timeline directly.
  std::string clock = "mono";
  // Called with the instance directory before it is created (the run
  // journals it there, so that cleanup finds it after a crash). An error
  // aborts create().
  std::function<Result<void>(const std::string& instance_dir)> before_mkdir;
  // Tests on a fake tree: called after mkdir to populate the instance the
  // way the kernel would.
  std::function<void(const std::string& instance_dir)> after_mkdir;
};

// First tracefs mount point in /proc/self/mounts text.
std::optional<std::string> find_tracefs_mount(std::string_view mounts_text);

// Picks a clock from trace_clock text ("[local] global mono ..."): want if
// listed, else "global", else "local"; note says why when it is not want.
std::string choose_trace_clock(std::string_view clocks_text, const std::string& want,
                               std::string* note);

// kprobe event names from an instance name: "krepro-1a2b3c4d" →
// "krepro_1a2b3c4d_<n>" (entry) and "..._ret" (return). Cleanup can derive
// a dead run's probes the same way.
std::string kprobe_event_prefix(const std::string& instance_name);

class TracefsInstance {
 public:
  using LineCallback = std::function<void(std::string_view line)>;

  static Result<TracefsInstance> create(const std::string& name, const TracefsOptions& o);

  TracefsInstance(TracefsInstance&&) noexcept;
  // Tears down what this held before taking the other's instance.
  TracefsInstance& operator=(TracefsInstance&&) noexcept;
  TracefsInstance(const TracefsInstance&) = delete;
  TracefsInstance& operator=(const TracefsInstance&) = delete;
  ~TracefsInstance();

  // Enables SYSTEM:EVENT in this instance; ENOENT when the kernel lacks it.
  Result<void> enable_event(const std::string& system, const std::string& event);
  // Adds "p:NAME FUNC" and "r:NAME_ret FUNC" to the top-level kprobe_events
  // (appending: other users' probes stay) and enables both here. Returns the
  // entry event name. ENOENT when the kernel has no kprobe_events.
  Result<std::string> add_kprobe_pair(const std::string& func);
  Result<void> set_tracing_on(bool on);

  // Reads trace_pipe on a thread and calls cb once per complete line (no
  // trailing newline). EBUSY when already started. The thread runs at
  // this nice value (see tracefs.cpp: the kernel formats the text on the
  // reader's time, which should not compete with the workload).
  Result<void> start_reader(LineCallback cb, int nice = 10);
  // Reads what is left in the buffer, then stops the thread. Safe to call
  // more than once.
  void stop_reader();

  // Tears everything down now (the destructor does the same). Returns the
  // problems met, e.g. "rmdir ...: EBUSY" (never throws).
  std::vector<std::string> close();

  const std::string& name() const;
  const std::string& root() const;  // tracefs root in use
  const std::string& dir() const;   // root/instances/name
  const std::string& clock() const;
  const std::string& clock_note() const;  // why clock() is not the wanted one
  bool private_mount() const;
  const std::vector<std::string>& enabled_events() const;  // "system:event"
  uint64_t lines_read() const;
  // Events the ring buffer overwrote before they were read: the sum of
  // "overrun:" in per_cpu/cpuN/stats (kernel/trace/trace.c tracing_stats_read).
  uint64_t overruns() const;
  uint64_t bytes_read() const;

  struct State;

 private:
  explicit TracefsInstance(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

}  // namespace krepro::kernel
