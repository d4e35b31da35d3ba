#include "harness/kernel/job.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process/child.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/io.hpp>
#include <boost/process/pipe.hpp>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <utility>

namespace krepro::kernel {

namespace {

bool place_self(const JobPlacement& where, pid_t parent) {
  detail::PlaceFailure why;
  return detail::place_self(where.cgroup_procs_fds.data(), where.cgroup_procs_fds.size(),
                            where.netns_fd, parent, &why);
}

int status_to_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

namespace detail {

// Runs in the child between fork and payload/exec: only syscalls.
bool place_self(const int* cgroup_procs_fds, size_t n_cgroups, int netns_fd, pid_t parent,
                PlaceFailure* why) {
  // Die with the parent (kernel/exit.c forget_original_parent sends
  // pdeath_signal); a parent that died before prctl is caught by getppid.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    *why = {errno, "prctl(PR_SET_PDEATHSIG)", -1};
    return false;
  }
  if (::getppid() != parent) {
    *why = {ESRCH, "parent gone", -1};
    return false;
  }
  for (size_t i = 0; i < n_cgroups; ++i) {
    if (::pwrite(cgroup_procs_fds[i], "0", 1, 0) != 1) {
      *why = {errno, "write 0 to cgroup.procs", static_cast<int>(i)};
      return false;
    }
  }
  if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) {
    *why = {errno, "setns(CLONE_NEWNET)", -1};
    return false;
  }
  return true;
}

}  // namespace detail

Result<Job> Job::fork_payload(const JobPlacement& where, const std::function<int()>& fn) {
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    if (!place_self(where, parent)) ::_exit(kPlacementFailed);
    ::_exit(fn());
  }
  return Job(pid);
}

namespace {

struct VforkArgs {
  const JobPlacement* where;
  const std::function<int()>* fn;
  pid_t parent;
};

int vfork_child(void* p) {
  auto* a = static_cast<VforkArgs*>(p);
  if (!place_self(*a->where, a->parent)) ::_exit(Job::kPlacementFailed);
  ::_exit((*a->fn)());
}

}  // namespace

Result<Job> Job::vfork_payload(const JobPlacement& where, const std::function<int()>& fn) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps per-thread stack bookkeeping that a child borrowing this
  // thread's memory on another stack would corrupt: sanitizer builds fork.
  return fork_payload(where, fn);
#endif
  // The child runs on this stack while this thread is suspended, so one
  // stack per thread is enough.
  constexpr size_t kStack = 256 << 10;
  thread_local std::unique_ptr<char[]> stack(new char[kStack]);
  VforkArgs args{&where, &fn, ::getpid()};
  char* top = stack.get() + kStack;
  top -= reinterpret_cast<uintptr_t>(top) % 64;
  pid_t pid = ::clone(vfork_child, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  if (pid < 0) return errno_error("clone(CLONE_VM|CLONE_VFORK)");
  return Job(pid);
}

Result<Job> Job::exec_command(const JobPlacement& where, const std::vector<std::string>& argv) {
  if (argv.empty()) return make_error(EINVAL, "exec job: empty command");
  namespace bp = boost::process;
  pid_t parent = ::getpid();
  std::error_code ec;
  bp::child c(
      argv.front(), std::vector<std::string>(argv.begin() + 1, argv.end()), bp::std_in.close(),
      bp::extend::on_exec_setup =
          [&where, parent](auto&) {
            if (!place_self(where, parent)) ::_exit(kPlacementFailed);
          },
      ec);
  if (ec) return make_error(ec.value(), "exec " + argv.front());
  pid_t pid = c.id();
  // The Job owns reaping; boost's child must not kill or wait it.
  c.detach();
  return Job(pid);
}

Result<Job> Job::exec_piped(const JobPlacement& where, const std::vector<std::string>& argv,
                            UniqueFd* stdin_w, UniqueFd* stdout_r) {
  if (argv.empty()) return make_error(EINVAL, "exec job: empty command");
  namespace bp = boost::process;
  pid_t parent = ::getpid();
  std::error_code ec;
  bp::pipe in, out;
  bp::child c(
      argv.front(), std::vector<std::string>(argv.begin() + 1, argv.end()),
      bp::std_in<in, bp::std_out> out,
      bp::extend::on_exec_setup =
          [&where, parent](auto&) {
            if (!place_self(where, parent)) ::_exit(kPlacementFailed);
          },
      ec);
  if (ec) return make_error(ec.value(), "exec " + argv.front());
  // Keep our ends (dup'ed with CLOEXEC); bp::pipe closes its own.
  stdin_w->reset(::fcntl(in.native_sink(), F_DUPFD_CLOEXEC, 0));
  stdout_r->reset(::fcntl(out.native_source(), F_DUPFD_CLOEXEC, 0));
  pid_t pid = c.id();
  c.detach();
  return Job(pid);
}

Job::Job(pid_t pid, std::shared_ptr<detail::SpawnerChannel> via, UniqueFd pidfd)
    : pid_(pid), via_(std::move(via)), pidfd_(std::move(pidfd)) {}

Job::~Job() { kill_and_reap(); }

Job::Job(Job&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      via_(std::move(o.via_)),
      pidfd_(std::move(o.pidfd_)),
      placement_error_(std::move(o.placement_error_)) {
  o.via_.reset();
  o.placement_error_.reset();
}

Job& Job::operator=(Job&& o) noexcept {
  if (this != &o) {
    kill_and_reap();
    pid_ = std::exchange(o.pid_, -1);
    via_ = std::move(o.via_);
    o.via_.reset();
    pidfd_ = std::move(o.pidfd_);
    placement_error_ = std::move(o.placement_error_);
    o.placement_error_.reset();
  }
  return *this;
}

Result<int> Job::wait() {
  if (pid_ < 0) return make_error(ECHILD, "wait: no job");
  if (via_) {
    // The spawner's child: only the spawner can reap it. It stays a
    // zombie until then, so the pid (and pidfd) cannot name another task.
    auto code = detail::spawned_wait(*via_, pid_, &placement_error_);
    pid_ = -1;
    via_.reset();
    pidfd_.reset();
    return code;
  }
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid_, &status, 0);
    if (r == pid_) break;
    if (r < 0 && errno == EINTR) continue;
    int e = errno;
    pid_ = -1;
    return make_error(e, "waitpid");
  }
  pid_ = -1;
  return status_to_code(status);
}

void Job::kill_and_reap() {
  if (pid_ < 0) return;
  if (via_) {
    detail::spawned_kill(*via_, pid_, pidfd_.get());
    (void)detail::spawned_wait(*via_, pid_, &placement_error_);
    pid_ = -1;
    via_.reset();
    pidfd_.reset();
    return;
  }
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace krepro::kernel
