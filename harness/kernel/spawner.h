// The job spawner: a small helper process that forks churn jobs on
// krepro's behalf.
//
// fork(2) from krepro copies the page tables of a multi-threaded process
// with several MiB resident and many mappings, and every page the parent
// writes afterwards takes a copy-on-write fault (ci/bench/fork_cost:
// 1.4-2.5 ms per job against 0.56-0.8 ms for a small loop). clone(CLONE_VM)
// avoids that but leaves the child on krepro's mm, and page cache is
// charged to the memcg of mm->owner (mm/memcontrol.c
// get_mem_cgroup_from_mm), i.e. krepro's, not the job's cgroup. The
// spawner is `krepro __job-spawner`, a fresh exec of /proc/self/exe: tiny
// and single-threaded, so its fork() is cheap and each child owns its mm.
//
// Protocol (AF_UNIX SOCK_SEQPACKET, one message per request or reply):
//   spawn: payload bytes, a path, and by SCM_RIGHTS the cgroup.procs fds
//          (and a netns fd) of JobPlacement. The spawner forks; the child
//          joins them (detail::place_self), runs the payload, _exits. The
//          reply carries the pid and a pidfd. A child whose placement fails
//          sends its own message (step, errno) before it exits.
//   wait:  the spawner waitpid()s the child and replies with its status.
// The spawner reaps a child only when asked, so until Job::wait the pid is
// a zombie at worst and cannot be recycled.
//
// Lifetime: the spawner has PR_SET_PDEATHSIG(SIGKILL) towards the thread
// that started it (kernel/exit.c forget_original_parent works per thread),
// so start it on the thread that uses it; its children have the same
// towards the spawner. When its socket closes it kills and reaps the
// children it still has and exits.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "harness/kernel/job.h"
#include "harness/util/result.h"

namespace krepro::kernel {

// argv[1] of the spawner process; its socket is on fd kSpawnerFd.
inline constexpr const char* kSpawnerCommand = "__job-spawner";
inline constexpr int kSpawnerFd = 3;
// At most this many cgroup.procs fds per job.
inline constexpr size_t kSpawnerMaxCgroups = 16;

// Runs in the spawned child after placement: the payload bytes given to
// Spawner::spawn and its path; returns the exit code.
using SpawnRunner = int (*)(const void* payload, size_t len, const char* path);

// The spawner process's main loop on socket `sock`: returns when the socket
// closes (after killing and reaping its remaining children).
int spawner_main(int sock, SpawnRunner run);

// Declares that this executable's main() serves kSpawnerCommand (krepro's
// does, and test mains that call spawner_main), so start_self() may exec
// /proc/self/exe. Without it, an exec of /proc/self/exe could start
// anything (a test binary would run its tests).
void declare_self_spawner();
bool self_spawner_declared();

class Spawner {
 public:
  Spawner() = default;
  // Execs `exe kSpawnerCommand` and waits for its hello. Errors: exec
  // failure (errno of execve), no hello (not a spawner), timeout.
  static Result<Spawner> start(const std::string& exe);
  // start("/proc/self/exe"); ENOTSUP unless declare_self_spawner() ran.
  static Result<Spawner> start_self();

  // Closes the channel once no Job holds it; the spawner then exits and
  // takes its children with it.
  ~Spawner();
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;
  Spawner(Spawner&& o) noexcept;
  Spawner& operator=(Spawner&& o) noexcept;

  bool valid() const { return ch_ != nullptr; }
  pid_t pid() const;
  // False once the spawner died or its channel broke; spawn() fails then.
  bool alive() const;

  // Starts a job: a child of the spawner placed as `where` says, running
  // the payload bytes with `path`. Calls are serialised: one Spawner per
  // thread is the intended use (a wait for a long job holds the channel).
  Result<Job> spawn(const JobPlacement& where, const void* payload, size_t len,
                    std::string_view path);

 private:
  std::shared_ptr<detail::SpawnerChannel> ch_;
};

}  // namespace krepro::kernel
