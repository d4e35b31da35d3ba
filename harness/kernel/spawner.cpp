#include "harness/kernel/spawner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

extern char** environ;

namespace krepro::kernel {

namespace {

constexpr uint32_t kMagic = 0x4b52534e;  // "KRSN"
constexpr size_t kMaxMsg = 8192;
constexpr size_t kMaxFds = kSpawnerMaxCgroups + 1;
constexpr int kHelloTimeoutMs = 10'000;

enum Op : uint32_t {
  // requests
  kOpSpawn = 1,
  kOpWait = 2,
  // replies
  kOpHello = 10,
  kOpStarted = 11,      // pid (+ pidfd by SCM_RIGHTS)
  kOpExited = 12,       // pid, code
  kOpPlaceFailed = 13,  // from the child itself: pid, code = cgroup index, err, what
  kOpError = 14,        // the request failed: err, what
};

struct Request {
  uint32_t magic;
  uint32_t op;
  int32_t pid;           // kOpWait
  uint32_t n_cgroups;    // fds [0, n_cgroups) are cgroup.procs files
  uint32_t has_netns;    // fd n_cgroups is a netns
  uint32_t payload_len;  // bytes after this header
  uint32_t path_len;     // then the path, without its NUL
};

struct Reply {
  uint32_t magic;
  uint32_t op;
  int32_t pid;
  int32_t code;
  int32_t err;
  char what[236];
};

Reply make_reply(uint32_t op, pid_t pid, int code, int err, const char* what) {
  Reply r;
  std::memset(&r, 0, sizeof r);
  r.magic = kMagic;
  r.op = op;
  r.pid = pid;
  r.code = code;
  r.err = err;
  if (what) std::snprintf(r.what, sizeof r.what, "%s", what);
  return r;
}

// sendmsg of one message with up to kMaxFds fds; -1 + errno on failure.
ssize_t send_msg(int sock, const void* buf, size_t len, const int* fds, size_t nfds) {
  iovec iov{const_cast<void*>(buf), len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (nfds > 0) {
    std::memset(ctl, 0, sizeof ctl);
    m.msg_control = ctl;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &m, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

// recvmsg of one message; received fds (CLOEXEC) into fds/*nfds. Sets
// *truncated when the message or its fds did not fit.
ssize_t recv_msg(int sock, void* buf, size_t cap, int* fds, size_t* nfds, bool* truncated) {
  iovec iov{buf, cap};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  *nfds = 0;
  *truncated = false;
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*nfds < kMaxFds)
        fds[(*nfds)++] = fd;
      else
        ::close(fd);
    }
  }
  if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) *truncated = true;
  return n;
}

int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::atomic<bool> g_self_declared{false};

// ---- the spawner process ----

void reply(int sock, uint32_t op, pid_t pid, int code, int err, const char* what, int fd = -1) {
  Reply r = make_reply(op, pid, code, err, what);
  (void)send_msg(sock, &r, sizeof r, &fd, fd >= 0 ? 1 : 0);
}

// The spawned child: place, report a failed placement, run the payload.
[[noreturn]] void child_main(int sock, pid_t spawner, const int* fds, const Request& rq,
                             const char* payload, const char* path, SpawnRunner run) {
  detail::PlaceFailure why;
  int netns = rq.has_netns ? fds[rq.n_cgroups] : -1;
  if (!detail::place_self(fds, rq.n_cgroups, netns, spawner, &why)) {
    char what[200];
    if (why.index >= 0)
      std::snprintf(what, sizeof what, "%s (fd %d of %u)", why.step, why.index, rq.n_cgroups);
    else
      std::snprintf(what, sizeof what, "%s", why.step);
    reply(sock, kOpPlaceFailed, ::getpid(), why.index, why.err, what);
    ::_exit(Job::kPlacementFailed);
  }
  // The payload needs no channel; a long job must not keep it open.
  ::close(sock);
  ::_exit(run(payload, rq.payload_len, path));
}

}  // namespace

int spawner_main(int sock, SpawnRunner run) {
  // Inherited dispositions must not auto-reap or kill us: the owner asks
  // for each status (SIGCHLD ignored would make waitpid fail with ECHILD).
  ::signal(SIGCHLD, SIG_DFL);
  pid_t me = ::getpid();
  reply(sock, kOpHello, me, 0, 0, "krepro job spawner");
  std::vector<pid_t> kids;  // forked, not yet reaped
  alignas(Request) static char buf[kMaxMsg];
  for (;;) {
    int fds[kMaxFds];
    size_t nfds = 0;
    bool trunc = false;
    ssize_t n = recv_msg(sock, buf, sizeof buf, fds, &nfds, &trunc);
    if (n <= 0) break;  // the owner closed its end (or died)
    auto close_fds = [&] {
      for (size_t i = 0; i < nfds; ++i) ::close(fds[i]);
    };
    Request rq;
    if (trunc || static_cast<size_t>(n) < sizeof rq) {
      close_fds();
      reply(sock, kOpError, 0, 0, EMSGSIZE, "malformed request (size or fds)");
      continue;
    }
    std::memcpy(&rq, buf, sizeof rq);
    if (rq.magic != kMagic) {
      close_fds();
      reply(sock, kOpError, 0, 0, EPROTO, "bad magic in request");
      continue;
    }
    if (rq.op == kOpWait) {
      close_fds();
      int st = 0;
      pid_t r;
      do {
        r = ::waitpid(rq.pid, &st, 0);
      } while (r < 0 && errno == EINTR);
      if (r != rq.pid) {
        reply(sock, kOpError, rq.pid, 0, errno, "waitpid");
        continue;
      }
      for (auto& k : kids)
        if (k == rq.pid) {
          k = kids.back();
          kids.pop_back();
          break;
        }
      reply(sock, kOpExited, rq.pid, status_code(st), 0, nullptr);
      continue;
    }
    if (rq.op != kOpSpawn) {
      close_fds();
      reply(sock, kOpError, 0, 0, EPROTO, "unknown request");
      continue;
    }
    size_t want = sizeof rq + size_t{rq.payload_len} + size_t{rq.path_len};
    if (rq.n_cgroups > kSpawnerMaxCgroups || rq.has_netns > 1 ||
        nfds != rq.n_cgroups + rq.has_netns || static_cast<size_t>(n) != want ||
        want >= sizeof buf) {
      close_fds();
      reply(sock, kOpError, 0, 0, EINVAL, "spawn request: fd count or lengths do not match");
      continue;
    }
    const char* payload = buf + sizeof rq;
    char* path = buf + sizeof rq + rq.payload_len;
    path[rq.path_len] = '\0';  // want < sizeof buf: room for it
    pid_t pid = ::fork();
    if (pid == 0) child_main(sock, me, fds, rq, payload, path, run);
    int fork_err = errno;
    close_fds();
    if (pid < 0) {
      reply(sock, kOpError, 0, 0, fork_err, "fork");
      continue;
    }
    kids.push_back(pid);
    // A pidfd lets the owner signal the child without a pid race
    // (kernel/pid.c pidfd_open); a kernel without it gets the pid only.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    reply(sock, kOpStarted, pid, 0, 0, nullptr, pidfd);
    if (pidfd >= 0) ::close(pidfd);
  }
  // Nobody will ask for these any more.
  for (pid_t k : kids) ::kill(k, SIGKILL);
  for (pid_t k : kids) {
    int st;
    while (::waitpid(k, &st, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(sock);
  return 0;
}

void declare_self_spawner() { g_self_declared.store(true); }
bool self_spawner_declared() { return g_self_declared.load(); }

// ---- the owner's side ----

namespace detail {

class SpawnerChannel {
 public:
  SpawnerChannel(UniqueFd sock, pid_t pid) : sock_(std::move(sock)), pid_(pid) {}
  ~SpawnerChannel() {
    // EOF makes the spawner kill and reap its children and exit.
    sock_.reset();
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  SpawnerChannel(const SpawnerChannel&) = delete;
  SpawnerChannel& operator=(const SpawnerChannel&) = delete;

  pid_t pid() const { return pid_; }
  bool alive() const { return !dead_.load(); }

  struct Started {
    pid_t pid;
    UniqueFd pidfd;
  };
  Result<Started> spawn(const JobPlacement& where, const void* payload, size_t len,
                        std::string_view path) {
    if (where.cgroup_procs_fds.size() > kSpawnerMaxCgroups)
      return make_error(E2BIG, "job spawner: more than " + std::to_string(kSpawnerMaxCgroups) +
                                   " cgroups for one job");
    Request rq{};
    rq.magic = kMagic;
    rq.op = kOpSpawn;
    rq.n_cgroups = static_cast<uint32_t>(where.cgroup_procs_fds.size());
    rq.has_netns = where.netns_fd >= 0 ? 1 : 0;
    rq.payload_len = static_cast<uint32_t>(len);
    rq.path_len = static_cast<uint32_t>(path.size());
    size_t total = sizeof rq + len + path.size();
    if (total >= kMaxMsg)
      return make_error(ENAMETOOLONG, "job spawner: payload and path exceed " +
                                          std::to_string(kMaxMsg) + " bytes");
    char buf[kMaxMsg];
    std::memcpy(buf, &rq, sizeof rq);
    if (len) std::memcpy(buf + sizeof rq, payload, len);
    if (!path.empty()) std::memcpy(buf + sizeof rq + len, path.data(), path.size());
    int fds[kMaxFds];
    size_t nfds = 0;
    for (int fd : where.cgroup_procs_fds) fds[nfds++] = fd;
    if (where.netns_fd >= 0) fds[nfds++] = where.netns_fd;

    std::lock_guard<std::mutex> lock(mu_);
    KREPRO_TRY(usable());
    if (send_msg(sock_.get(), buf, total, fds, nfds) < 0) {
      int e = errno;
      // EBADF/EINVAL: one of our fds is bad, nothing was sent; the
      // channel itself is fine.
      if (e != EBADF && e != EINVAL) broken(e, "send");
      return make_error(e, "job spawner " + std::to_string(pid_) + ": send spawn request");
    }
    UniqueFd pidfd;
    auto r = next_reply(&pidfd);
    KREPRO_TRY_CTX(r, "job spawner " + std::to_string(pid_) + ": spawn");
    if (r->op == kOpError)
      return make_error(r->err, "job spawner " + std::to_string(pid_) + ": " + r->what);
    if (r->op != kOpStarted) return protocol_error(r->op);
    return Started{r->pid, std::move(pidfd)};
  }

  void kill(pid_t pid, int pidfd) {
    // pidfd_send_signal (kernel/signal.c) never hits a recycled pid. The
    // bare pid is safe only while the spawner lives: it has not reaped the
    // child, so the pid is still that child's, zombie or not.
    if (pidfd >= 0)
      ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    else if (alive())
      ::kill(pid, SIGKILL);
  }

  Result<int> wait(pid_t pid, std::optional<Error>* placement_error) {
    std::lock_guard<std::mutex> lock(mu_);
    auto take_placement = [&] {
      auto it = placement_.find(pid);
      if (it == placement_.end()) return;
      *placement_error = std::move(it->second);
      placement_.erase(it);
    };
    auto done = usable();
    if (!done) {
      take_placement();
      return Unexpected(Error(done.error()).wrap("wait job " + std::to_string(pid)));
    }
    Request rq{};
    rq.magic = kMagic;
    rq.op = kOpWait;
    rq.pid = pid;
    if (send_msg(sock_.get(), &rq, sizeof rq, nullptr, 0) < 0) {
      int e = errno;
      broken(e, "send");
      take_placement();
      return make_error(e, "job spawner " + std::to_string(pid_) + ": send wait request");
    }
    auto r = next_reply(nullptr);
    take_placement();
    KREPRO_TRY_CTX(r, "job spawner " + std::to_string(pid_) + ": wait job " + std::to_string(pid));
    if (r->op == kOpError)
      return make_error(r->err, "job spawner " + std::to_string(pid_) + ": wait job " +
                                    std::to_string(pid) + ": " + r->what);
    if (r->op != kOpExited || r->pid != pid) return protocol_error(r->op);
    return r->code;
  }

 private:
  Result<void> usable() const {
    if (dead_.load()) return Unexpected(dead_error_);
    return {};
  }
  void broken(int err, const std::string& what) {
    if (dead_.exchange(true)) return;
    dead_error_ = Error(err, "job spawner " + std::to_string(pid_) + ": " + what);
  }
  Unexpected protocol_error(uint32_t op) {
    broken(EPROTO, "unexpected reply " + std::to_string(op));
    return Unexpected(dead_error_);
  }

  // The reply to the request just sent. Placement failures that children
  // report meanwhile are kept for their wait().
  Result<Reply> next_reply(UniqueFd* fd_out) {
    for (;;) {
      Reply r;
      int fds[kMaxFds];
      size_t nfds = 0;
      bool trunc = false;
      ssize_t n = recv_msg(sock_.get(), &r, sizeof r, fds, &nfds, &trunc);
      if (n <= 0) {
        broken(n == 0 ? EPIPE : errno, n == 0 ? "exited" : "recv");
        for (size_t i = 0; i < nfds; ++i) ::close(fds[i]);
        return Unexpected(dead_error_);
      }
      UniqueFd first(nfds > 0 ? fds[0] : -1);
      for (size_t i = 1; i < nfds; ++i) ::close(fds[i]);
      if (trunc || static_cast<size_t>(n) != sizeof r || r.magic != kMagic) {
        broken(EPROTO, "malformed reply");
        return Unexpected(dead_error_);
      }
      r.what[sizeof r.what - 1] = '\0';
      if (r.op == kOpPlaceFailed) {
        placement_[r.pid] =
            Error(r.err, "job " + std::to_string(r.pid) + ": placement: " + std::string(r.what));
        continue;
      }
      if (fd_out) *fd_out = std::move(first);
      return r;
    }
  }

  UniqueFd sock_;
  pid_t pid_;
  std::mutex mu_;
  std::atomic<bool> dead_{false};
  Error dead_error_;
  std::map<pid_t, Error> placement_;
};

Result<int> spawned_wait(SpawnerChannel& ch, pid_t pid, std::optional<Error>* placement_error) {
  return ch.wait(pid, placement_error);
}

void spawned_kill(SpawnerChannel& ch, pid_t pid, int pidfd) { ch.kill(pid, pidfd); }

}  // namespace detail

Result<Spawner> Spawner::start(const std::string& exe) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return errno_error("job spawner: socketpair");
  UniqueFd mine(sv[0]), theirs(sv[1]);
  // Everything the child touches is ready before fork: between fork and
  // exec a child of a multi-threaded process may only make syscalls.
  const char* argv[] = {exe.c_str(), kSpawnerCommand, nullptr};
  std::string what = "execve " + exe;
  Reply exec_failed = make_reply(kOpError, 0, 0, 0, what.c_str());
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("job spawner: fork");
  if (pid == 0) {
    // Die with the thread that started us; the flag survives execve of a
    // binary that is not set-id (kernel/exec.c begin_new_exec).
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
    int fd = theirs.get();
    if (fd == kSpawnerFd) {
      ::fcntl(fd, F_SETFD, 0);
    } else if (::dup2(fd, kSpawnerFd) != kSpawnerFd) {
      ::_exit(127);
    }
    ::execve(exe.c_str(), const_cast<char* const*>(argv), environ);
    exec_failed.err = errno;
    (void)::send(kSpawnerFd, &exec_failed, sizeof exec_failed, MSG_NOSIGNAL);
    ::_exit(127);
  }
  theirs.reset();
  auto fail = [&](Error e) -> Result<Spawner> {
    ::kill(pid, SIGKILL);
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return Unexpected(e.wrap("start job spawner " + exe));
  };
  pollfd p{mine.get(), POLLIN, 0};
  int pr;
  do {
    pr = ::poll(&p, 1, kHelloTimeoutMs);
  } while (pr < 0 && errno == EINTR);
  if (pr == 0) return fail(Error(ETIMEDOUT, "no hello"));
  if (pr < 0) return fail(Error::from_errno("poll"));
  Reply r;
  int fds[kMaxFds];
  size_t nfds = 0;
  bool trunc = false;
  ssize_t n = recv_msg(mine.get(), &r, sizeof r, fds, &nfds, &trunc);
  for (size_t i = 0; i < nfds; ++i) ::close(fds[i]);
  if (n < 0) return fail(Error::from_errno("recv hello"));
  if (n == 0) return fail(Error(EPROTO, "exited without a hello (not a job spawner?)"));
  if (trunc || static_cast<size_t>(n) != sizeof r || r.magic != kMagic)
    return fail(Error(EPROTO, "malformed hello (not a job spawner?)"));
  r.what[sizeof r.what - 1] = '\0';
  if (r.op == kOpError) return fail(Error(r.err, r.what));
  if (r.op != kOpHello || r.pid != pid) return fail(Error(EPROTO, "unexpected hello"));
  Spawner s;
  s.ch_ = std::make_shared<detail::SpawnerChannel>(std::move(mine), pid);
  return s;
}

Result<Spawner> Spawner::start_self() {
  if (!self_spawner_declared())
    return make_error(ENOTSUP, std::string("this executable does not serve ") + kSpawnerCommand);
  return start("/proc/self/exe");
}

Spawner::~Spawner() = default;
Spawner::Spawner(Spawner&& o) noexcept = default;
Spawner& Spawner::operator=(Spawner&& o) noexcept = default;

pid_t Spawner::pid() const { return ch_ ? ch_->pid() : -1; }
bool Spawner::alive() const { return ch_ && ch_->alive(); }

Result<Job> Spawner::spawn(const JobPlacement& where, const void* payload, size_t len,
                           std::string_view path) {
  if (!ch_) return make_error(EBADF, "job spawner: not started");
  auto s = ch_->spawn(where, payload, len, path);
  KREPRO_TRY(s);
  return Job(s->pid, ch_, std::move(s->pidfd));
}

}  // namespace krepro::kernel
