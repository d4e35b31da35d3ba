// Pieces both churners share: pacing, per-worker stats, the job payload
// parameters.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness/engine/actor.h"
#include "harness/engine/params.h"
#include "harness/kernel/job.h"
#include "harness/kernel/spawner.h"
#include "harness/util/clock.h"
#include "harness/util/errno_name.h"
#include "harness/util/histogram.h"
#include "workloads/payload.h"

namespace krepro::engine {

// Per-worker, lock-free recording; merged after join.
struct WorkerStats {
  std::map<std::string, Histogram> lat;    // op -> histogram
  std::map<std::string, uint64_t> errors;  // "op:ERRNO" -> count
  uint64_t created = 0, destroyed = 0;

  Histogram& h(const std::string& op) { return lat[op]; }
  void error(const std::string& op, int err) { ++errors[op + ":" + errno_name(err)]; }
};

// Paces cycles at a rate (0: as fast as possible) shared by n workers.
class Pacer {
 public:
  Pacer(double rate_per_s, int workers, int64_t start_ns)
      : interval_ns_(rate_per_s > 0 ? static_cast<int64_t>(1e9 * workers / rate_per_s) : 0),
        next_ns_(start_ns) {}
  // Sleeps until the next slot (never past deadline).
  void wait(int64_t deadline_ns) {
    if (interval_ns_ == 0) return;
    int64_t now = mono_ns();
    if (next_ns_ > now) {
      int64_t until = std::min(next_ns_, deadline_ns);
      if (until > now) std::this_thread::sleep_for(std::chrono::nanoseconds(until - now));
    }
    next_ns_ = std::max(next_ns_ + interval_ns_, mono_ns() - interval_ns_);
  }

 private:
  int64_t interval_ns_;
  int64_t next_ns_;
};

// The job parameters both churners take, and their translation.
std::vector<ParamSpec> payload_param_specs(const std::string& default_kind);
workloads::PayloadSpec payload_from_params(const Params& p);

// Payloads that finish at once and touch only their stack: started with
// Job::vfork_payload (no page-table copy). Held or multi-process payloads
// (hold, pmtu) need an mm of their own (JobLauncher: the job spawner, else
// fork), and so does `write`: a CLONE_VM child's page
// cache is charged to the memcg of its mm's owner, krepro itself
// (mm/memcontrol.c get_mem_cgroup_from_mm), not to the job's cgroup, and
// the memcg bugs are about that page cache. Slab objects (files, sockets)
// are charged to the task's own memcg, so those may use vfork.
inline bool short_payload(const workloads::PayloadSpec& s) {
  return s.hold_ms == 0 && s.kind != workloads::PayloadKind::kPmtu &&
         s.kind != workloads::PayloadKind::kWrite;
}

// Starts one worker's churn jobs, one way per payload:
// - short payloads (short_payload): Job::vfork_payload, no page-table copy;
// - the others must own their mm (their page cache belongs to the job's
//   memcg): this worker's job spawner (harness/kernel/spawner.h), a small
//   `krepro __job-spawner` process whose fork() is cheap where krepro's is
//   not (ci/bench/fork_cost);
// - Job::fork_payload when the spawner cannot start (an executable that
//   does not serve __job-spawner, e.g. a test binary) or has died.
// Lives on the worker thread: the spawner dies with the thread that
// started it (PR_SET_PDEATHSIG).
class JobLauncher {
 public:
  enum class Via { kVfork, kSpawner, kFork };
  explicit JobLauncher(const workloads::PayloadSpec& spec) : spec_(spec) {}
  // Starts the spawner now if the payload will need it, so that the first
  // job's start latency does not include it.
  void prepare();
  Result<kernel::Job> start(const kernel::JobPlacement& where, const std::string& path);
  Via last_via() const { return last_; }
  // Why this worker stopped using (or never used) the spawner; returned
  // once, for the timeline.
  std::optional<Error> take_fallback_reason() { return std::exchange(fallback_, std::nullopt); }

 private:
  const workloads::PayloadSpec& spec_;
  bool tried_ = false;
  std::optional<kernel::Spawner> spawner_;
  std::optional<Error> fallback_;
  Via last_ = Via::kFork;
};

// Common count/alive/rate/workers parameters.
std::vector<ParamSpec> churn_param_specs(int64_t default_alive);

// What both churners share: the count/alive/workers bookkeeping, worker
// threads with their own stats, and churn errors counted by errno with the
// first ones (then one in 1000) on the timeline.
class ChurnActor : public Actor {
 public:
  ChurnActor(std::string name, const Params& p, std::string kind);
  std::string kind() const override { return kind_; }
  bool bounded() const override { return count_ > 0; }
  // Runs worker(ctx, w) on `workers` threads.
  void run(RunContext& ctx, int64_t deadline_ns) override;

 protected:
  virtual void worker(RunContext& ctx, int w) = 0;
  // Claims one more cycle; false once `count` cycles were issued.
  bool want_more();
  // This worker's share of `alive`.
  int64_t alive_target(int w) const;
  void note_error(RunContext& ctx, WorkerStats& st, const std::string& op, const Error& e);
  uint64_t next_seq() { return seq_.fetch_add(1); }

  Params p_;
  uint64_t count_ = 0;
  int64_t alive_ = 0;
  int workers_ = 1;
  std::vector<WorkerStats> stats_;

 private:
  std::string kind_;
  std::atomic<uint64_t> issued_{0}, seq_{0};
};

}  // namespace krepro::engine
