// Job processes: a pod's container lifecycle in miniature. A short-lived
// child is placed into cgroups and a network namespace before it runs its
// payload, and dies with its parent.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/util/result.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {

struct JobPlacement {
  // cgroup.procs files to join, opened by the caller (Cgroup::open_procs),
  // one per hierarchy for v1 (memory, cpu, pids, ...: a pod's cgroups), in
  // order; the child writes "0" into each (kernel/cgroup/cgroup-v1.c
  // __cgroup1_procs_write accepts 0 as "the writer itself") before its
  // payload runs, and exits with Job::kPlacementFailed if any write fails.
  std::vector<int> cgroup_procs_fds;
  int netns_fd = -1;  // setns(CLONE_NEWNET) target, -1 to stay
};

namespace detail {

// Which placement step failed in a job child, and why.
struct PlaceFailure {
  int err = 0;
  const char* step = "";  // static text: "prctl", "parent gone", "cgroup.procs", "setns"
  int index = -1;         // the cgroup.procs fd's position, for "cgroup.procs"
};

// What a job child does before its payload: die with `parent`, join each
// cgroup.procs fd, enter netns_fd. Raw syscalls only (it runs between fork
// and payload in children of multi-threaded processes too).
bool place_self(const int* cgroup_procs_fds, size_t n_cgroups, int netns_fd, pid_t parent,
                PlaceFailure* why);

class SpawnerChannel;  // harness/kernel/spawner.cpp
// Asks the spawner to reap `pid` (its child); fills *placement_error when
// the child reported a failed placement.
Result<int> spawned_wait(SpawnerChannel& ch, pid_t pid, std::optional<Error>* placement_error);
// SIGKILL to the spawner's child `pid` (through pidfd when there is one).
void spawned_kill(SpawnerChannel& ch, pid_t pid, int pidfd);

}  // namespace detail

// A running job. Move-only; the destructor kills (SIGKILL) and reaps a job
// that is still running, so no child outlives its owner.
class Job {
 public:
  Job() = default;
  // Builtin payload: fork(2), place, run fn in the child, _exit with its
  // return value. Boost.Process only launches executables (fork+exec); a
  // builtin payload needs no exec, which triples the churn rate, so this
  // path is written by hand. fn must be async-signal-safe in spirit: the
  // parent is multi-threaded, so the child uses raw syscalls only.
  static Result<Job> fork_payload(const JobPlacement& where, const std::function<int()>& fn);
  // The same with clone(CLONE_VM | CLONE_VFORK), as posix_spawn does: the
  // child borrows the parent's memory instead of copying its page tables,
  // and the calling thread sleeps until the child exits. fork() costs the
  // parent ~30-40 copy-on-write faults per job afterwards
  // (ci/bench/fork_cost: 1.4-2.5 ms against 0.56-0.8 ms per job here), which
  // is most of a churn cycle. For short payloads only: the caller is
  // blocked for the payload's whole life, and fn must touch nothing but its
  // own stack and read-only data.
  static Result<Job> vfork_payload(const JobPlacement& where, const std::function<int()>& fn);
  // External command through Boost.Process, placed the same way in the
  // child before exec (on_exec_setup).
  static Result<Job> exec_command(const JobPlacement& where, const std::vector<std::string>& argv);
  // The same with the child's stdin and stdout on pipes; the caller owns
  // the returned ends (write end of stdin, read end of stdout).
  static Result<Job> exec_piped(const JobPlacement& where, const std::vector<std::string>& argv,
                                UniqueFd* stdin_w, UniqueFd* stdout_r);

  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  Job(Job&& o) noexcept;
  Job& operator=(Job&& o) noexcept;

  pid_t pid() const { return pid_; }
  // Waits for exit; returns the exit status (128+signal when killed).
  // Placement failures in the child exit with kPlacementFailed.
  Result<int> wait();
  void kill_and_reap();
  // True for a job a Spawner (spawner.h) started: a child of the spawner,
  // signalled through its pidfd and reaped by the spawner.
  bool spawned() const { return via_ != nullptr; }
  // Why a spawned job exited with kPlacementFailed (step and errno, as its
  // child reported them); set by wait(). Jobs forked here only have the
  // exit code.
  const std::optional<Error>& placement_error() const { return placement_error_; }

  static constexpr int kPlacementFailed = 121;

 private:
  friend class Spawner;
  explicit Job(pid_t pid) : pid_(pid) {}
  Job(pid_t pid, std::shared_ptr<detail::SpawnerChannel> via, UniqueFd pidfd);
  pid_t pid_ = -1;
  std::shared_ptr<detail::SpawnerChannel> via_;  // null: our own child
  UniqueFd pidfd_;                               // spawned jobs: kill without pid reuse
  std::optional<Error> placement_error_;
};

}  // namespace krepro::kernel
