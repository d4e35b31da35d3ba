// Actors: the things a phase runs concurrently (churners, workloads), and
// the run context they share.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness/engine/params.h"
#include "harness/kernel/cgroup.h"
#include "harness/util/histogram.h"
#include "harness/util/result.h"

namespace krepro::kernel {
class NetNamespace;
}

namespace krepro::engine {

class EventLog;
class Journal;
class Hub;

// 0 running, 1 stop requested (first SIGINT/SIGTERM, deadline), 2 kill
// workers now (second signal).
struct StopState {
  std::atomic<int> level{0};
  bool stopping() const { return level.load(std::memory_order_relaxed) > 0; }
  bool hard() const { return level.load(std::memory_order_relaxed) > 1; }
};

// Counters that the status line and the time series read while actors run.
struct Progress {
  std::atomic<uint64_t> created{0};
  std::atomic<uint64_t> destroyed{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<int64_t> alive{0};
  std::atomic<int64_t> pending{0};  // dropped, not yet confirmed freed
  std::atomic<int64_t> peak_alive{0};

  void add_alive() {
    int64_t now = alive.fetch_add(1, std::memory_order_relaxed) + 1;
    int64_t peak = peak_alive.load(std::memory_order_relaxed);
    while (now > peak && !peak_alive.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  // The last kRecent create-cycle latencies (µs), written with relaxed
  // stores so the status line can show a live p99 without locking the
  // workers' histograms (which stay the measurement of record).
  static constexpr size_t kRecent = 512;
  std::array<std::atomic<uint32_t>, kRecent> recent_us{};
  std::atomic<uint64_t> recent_n{0};
  void note_latency(int64_t ns) {
    uint64_t i = recent_n.fetch_add(1, std::memory_order_relaxed);
    recent_us[i % kRecent].store(static_cast<uint32_t>(std::min<int64_t>(ns / 1000, UINT32_MAX)),
                                 std::memory_order_relaxed);
  }
  // p99 of the recent window in ms; -1 when nothing was recorded.
  double recent_p99_ms() const;
};

struct ChurnCounts {
  uint64_t created = 0;
  uint64_t destroyed = 0;
  std::map<std::string, uint64_t> errors;  // "op:ERRNO" -> count
};

// What actors hand in at the end of a phase; the runner turns it into
// summary.json. Filled single-threaded after workers joined.
struct RunStats {
  std::map<std::string, ChurnCounts> churn;  // "cgroups", "netns", "veth"
  std::map<std::string, Histogram> latency;  // "cgroups.mkdir", "netns.teardown", ...
  nlohmann::json workload = nlohmann::json::object();
  nlohmann::json leaks = nlohmann::json::object();
  std::vector<nlohmann::json> findings;
  // I/O ops over stall_threshold: {"actor","stream","op","start_ns"
  // (CLOCK_MONOTONIC),"duration_ns","file"}; filled before observers finish.
  std::vector<nlohmann::json> stalls;
  std::vector<std::string> features_used;
  std::map<std::string, int64_t> peak_alive;  // churn kind -> most alive at once

  void add_error(const std::string& kind, const std::string& op, int err);
  void merge_latency(const std::string& key, const Histogram& h);
  void use_feature(const std::string& f);
};

struct RunContext {
  std::string run_id;                // 8 hex digits
  std::string prefix;                // "krepro-<run-id>"
  std::string out_dir;               // the run folder
  std::string scratch_dir;           // job and workload files
  std::string scratch_dev;           // "maj:min" of the scratch filesystem when krepro made it
  std::string scratch_throttle_dev;  // the device a blkio rule may slow (its backing loop)
  uint64_t seed = 0;
  int64_t t0_ns = 0;  // CLOCK_MONOTONIC at run start
  const Params* options = nullptr;
  EventLog* events = nullptr;
  Journal* journal = nullptr;
  StopState* stop = nullptr;
  kernel::CgroupLayout layout;
  kernel::CgroupVersion cg_version = kernel::CgroupVersion::kV1;
  // The run's own cgroup (krepro-<run-id>) per hierarchy, created on first
  // use (journaled before mkdir) under the cgroup krepro runs in for that
  // controller, or where cgroup_parent says (CgroupLayout::run_parent_v1).
  // run_cgroup(v): the memory hierarchy (v1) or the cgroup2 one with
  // +memory in its subtree.
  Result<std::string> run_cgroup(kernel::CgroupVersion v);
  // v1: the run cgroup in the hierarchy carrying `controller` (co-mounted
  // controllers share one; memory's is run_cgroups[kV1]). A cpuset one gets
  // cpuset.cpus/mems copied from its parent so tasks can join below it.
  Result<std::string> run_cgroup_v1(const std::string& controller);
  // cgroup2: the run cgroup with each controller enabled in its
  // cgroup.subtree_control (memory best effort, as before; any other
  // controller that cannot be enabled is an error).
  Result<std::string> run_cgroup_v2(const std::vector<std::string>& enable);
  // The run's hub namespace: plays the node's root namespace (bridge,
  // host-side veth ends) so nothing is put into the host's network.
  Result<Hub*> hub();
  // The current phase ends at this time (the runner moves it earlier when
  // a phase's bounded actors are all done).
  std::atomic<int64_t> phase_deadline_ns{0};
  bool phase_running() const;
  std::atomic<uint64_t> seq{0};
  std::mutex mu;
  std::map<int, kernel::Cgroup> run_cgroups;  // by version (v1: the memory hierarchy)
  // v1 run cgroups of hierarchies without memory, by mount point.
  std::map<std::string, kernel::Cgroup> run_cgroups_v1;
  std::vector<std::string> v2_enabled;  // controllers written to the v2 run cgroup's subtree
  std::unique_ptr<Hub> hub_;
  ~RunContext();
};

// What an actor's parameters ask of this host, checked for every actor of
// every phase before anything is created: a usage error (exit 2: a name
// that cannot mean anything) or a skip (exit 4: the host lacks it).
struct Precheck {
  enum class Kind { kOk, kUsage, kSkip };
  Kind kind = Kind::kOk;
  std::string reason;
  static Precheck usage(std::string r) { return {Kind::kUsage, std::move(r)}; }
  static Precheck skip(std::string r) { return {Kind::kSkip, std::move(r)}; }
};

class Actor {
 public:
  virtual ~Actor() = default;
  const std::string& name() const { return name_; }
  // Creates long-lived objects before the phase starts. An error here is a
  // harness failure (or a skip when the host lacks a feature).
  virtual Result<void> prepare(RunContext& ctx) { return {}; }
  // Reads ctx.layout, ctx.cg_version and ctx.options only; creates nothing.
  virtual Precheck precheck(const RunContext& ctx) const { return {}; }
  // Runs until its count is reached, the phase deadline passes or a stop is
  // requested; tears down what it created before returning.
  virtual void run(RunContext& ctx, int64_t deadline_ns) = 0;
  // Hands in counters, histograms and findings.
  virtual void contribute(RunStats& stats) = 0;
  // True when the actor has a count and reached it (a phase without a
  // duration ends when all such actors are done).
  virtual bool bounded() const { return false; }
  const Progress& progress() const { return *progress_; }
  // The progress kind for the status line ("cgroups", "netns", "io").
  virtual std::string kind() const = 0;

 protected:
  explicit Actor(std::string name) : name_(std::move(name)) {}
  std::string name_;
  // Shared so that callbacks which can outlive the actor (a namespace freed
  // after its phase ended) still have somewhere to count.
  std::shared_ptr<Progress> progress_ = std::make_shared<Progress>();
};

}  // namespace krepro::engine
