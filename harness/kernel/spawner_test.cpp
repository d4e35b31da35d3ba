// The job spawner. This binary's main serves __job-spawner with a small
// test runner, so Spawner::start("/proc/self/exe") runs the same exec path
// krepro takes. Built twice: unit (no root) and, with KREPRO_KERNEL_TESTS,
// kernel (real cgroups in every named hierarchy, a network namespace).
#include "harness/kernel/spawner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "harness/kernel/cgroup.h"
#include "harness/kernel/cgroup_test_util.h"
#include "harness/kernel/netns.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {
namespace {

// What a test job does (the spawner's payload bytes).
struct TestPayload {
  enum Op : int { kExit, kPause, kCountCgroupLines, kSameNetns } op = kExit;
  int arg = 0;  // kExit: code; kCountCgroupLines: lines wanted
};

// kCountCgroupLines: path is a suffix; exit 0 when /proc/self/cgroup has
// exactly arg lines ending in it, else 10 + the count. kSameNetns: exit 0
// when /proc/self/ns/net links to path.
int run_test_payload(const void* bytes, size_t len, const char* path) {
  if (len != sizeof(TestPayload)) return 99;
  TestPayload p;
  std::memcpy(&p, bytes, sizeof p);
  switch (p.op) {
    case TestPayload::kExit:
      return p.arg;
    case TestPayload::kPause:
      ::pause();
      return 0;
    case TestPayload::kCountCgroupLines: {
      char buf[8192];
      int fd = ::open("/proc/self/cgroup", O_RDONLY);
      ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf - 1) : -1;
      if (n <= 0) return 2;
      buf[n] = 0;
      std::string_view v(buf);
      std::string want = std::string(path) + "\n";
      int found = 0;
      for (size_t at = v.find(want); at != std::string_view::npos; at = v.find(want, at + 1))
        ++found;
      return found == p.arg ? 0 : 10 + found;
    }
    case TestPayload::kSameNetns: {
      char buf[128];
      ssize_t n = ::readlink("/proc/self/ns/net", buf, sizeof buf - 1);
      if (n <= 0) return 2;
      buf[n] = 0;
      return std::string_view(buf) == path ? 0 : 3;
    }
  }
  return 98;
}

Result<Job> spawn(Spawner& s, const JobPlacement& where, TestPayload p,
                  const std::string& path = "") {
  return s.spawn(where, &p, sizeof p, path);
}

Spawner start_or_die() {
  auto s = Spawner::start("/proc/self/exe");
  KREPRO_CHECK_MSG(s.has_value(), s.error().message());
  return std::move(*s);
}

bool gone_within(int pidfd, int ms) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

TEST(Spawner, ExitCodeAndSignalComeBack) {
  Spawner s = start_or_die();
  ASSERT_GT(s.pid(), 0);
  EXPECT_NE(s.pid(), ::getpid());
  auto j = spawn(s, {}, {TestPayload::kExit, 7});
  ASSERT_TRUE(j) << j.error().message();
  EXPECT_TRUE(j->spawned());
  EXPECT_GT(j->pid(), 0);
  EXPECT_NE(j->pid(), s.pid());
  auto code = j->wait();
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(*code, 7);
  EXPECT_EQ(j->pid(), -1);

  auto p = spawn(s, {}, {TestPayload::kPause, 0});
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_EQ(::kill(p->pid(), SIGTERM), 0);
  code = p->wait();
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(*code, 128 + SIGTERM);
}

// The spawner, not the test process, is the job's parent; the job is not
// a child of ours (waitpid here fails).
TEST(Spawner, JobIsTheSpawnersChild) {
  Spawner s = start_or_die();
  auto j = spawn(s, {}, {TestPayload::kPause, 0});
  ASSERT_TRUE(j);
  auto stat = fs::read_file("/proc/" + std::to_string(j->pid()) + "/stat");
  ASSERT_TRUE(stat);
  // Field 4 (ppid) after the ") " that ends the comm field.
  std::string rest = stat->substr(stat->rfind(") ") + 2);
  int ppid = std::stoi(rest.substr(rest.find(' ') + 1));
  EXPECT_EQ(ppid, s.pid());
  int st;
  EXPECT_EQ(::waitpid(j->pid(), &st, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

// A closed fd number in the placement is an error of the spawn call
// (sendmsg refuses it) and leaves the spawner usable.
TEST(Spawner, BadFdIsAnErrorAndTheSpawnerStaysUsable) {
  Spawner s = start_or_die();
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::close(fd);
  JobPlacement where;
  where.cgroup_procs_fds.push_back(fd);
  auto j = spawn(s, where, {TestPayload::kExit, 0});
  ASSERT_FALSE(j);
  EXPECT_EQ(j.error().err(), EBADF) << j.error().message();
  EXPECT_NE(j.error().message().find("spawn request"), std::string::npos) << j.error().message();
  EXPECT_TRUE(s.alive());
  auto ok = spawn(s, {}, {TestPayload::kExit, 3});
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(*ok->wait(), 3);
}

// An fd that is open but not writable: the child's placement fails, its
// exit code says so as before, and the error says which step and errno.
TEST(Spawner, FailedPlacementReportsStepAndErrno) {
  Spawner s = start_or_die();
  UniqueFd ro(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  UniqueFd wo(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  JobPlacement where;
  where.cgroup_procs_fds = {wo.get(), ro.get()};
  auto j = spawn(s, where, {TestPayload::kExit, 0});
  ASSERT_TRUE(j) << j.error().message();
  auto code = j->wait();
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(*code, Job::kPlacementFailed);
  ASSERT_TRUE(j->placement_error().has_value());
  EXPECT_EQ(j->placement_error()->err(), EBADF);
  EXPECT_NE(j->placement_error()->message().find("cgroup.procs (fd 1 of 2)"), std::string::npos)
      << j->placement_error()->message();
  // A successful job after it has no placement error.
  auto ok = spawn(s, {}, {TestPayload::kExit, 0});
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok->wait(), 0);
  EXPECT_FALSE(ok->placement_error().has_value());
}

TEST(Spawner, TooManyCgroupsAndOverlongPathAreErrors) {
  Spawner s = start_or_die();
  UniqueFd wo(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  JobPlacement where;
  where.cgroup_procs_fds.assign(kSpawnerMaxCgroups + 1, wo.get());
  auto j = spawn(s, where, {TestPayload::kExit, 0});
  ASSERT_FALSE(j);
  EXPECT_EQ(j.error().err(), E2BIG);
  auto k = spawn(s, {}, {TestPayload::kExit, 0}, std::string(20000, 'x'));
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().err(), ENAMETOOLONG);
  EXPECT_TRUE(s.alive());
}

TEST(Spawner, StartErrorsComeBackWithErrno) {
  auto missing = Spawner::start("/nonexistent/krepro");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().err(), ENOENT) << missing.error().message();
  EXPECT_NE(missing.error().message().find("execve /nonexistent/krepro"), std::string::npos)
      << missing.error().message();
  // Runs, but is not a spawner: no hello.
  auto other = Spawner::start("/bin/true");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().err(), EPROTO) << other.error().message();
}

// start_self only for an executable that said it serves __job-spawner.
TEST(Spawner, StartSelfNeedsTheDeclaration) {
  if (!self_spawner_declared()) {
    auto s = Spawner::start_self();
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().err(), ENOTSUP);
    declare_self_spawner();
  }
  auto s = Spawner::start_self();
  ASSERT_TRUE(s) << s.error().message();
  auto j = spawn(*s, {}, {TestPayload::kExit, 5});
  ASSERT_TRUE(j);
  EXPECT_EQ(*j->wait(), 5);
}

// Destroying a running spawned Job kills it (through its pidfd) and reaps
// it; the spawner goes on.
TEST(Spawner, DestroyingAJobKillsIt) {
  Spawner s = start_or_die();
  UniqueFd watch;
  {
    auto j = spawn(s, {}, {TestPayload::kPause, 0});
    ASSERT_TRUE(j);
    watch.reset(pidfd_open(j->pid()));
    ASSERT_TRUE(watch.valid());
    EXPECT_FALSE(gone_within(watch.get(), 50));
    // Moved twice: the channel and pidfd travel with it.
    Job moved = std::move(*j);
    Job again;
    again = std::move(moved);
    EXPECT_TRUE(again.spawned());
    EXPECT_FALSE(moved.spawned());
  }
  EXPECT_TRUE(gone_within(watch.get(), 5000));
  auto ok = spawn(s, {}, {TestPayload::kExit, 0});
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok->wait(), 0);
}

// The spawner lives only while its channel does: destroying the last
// holder makes it exit.
TEST(Spawner, ClosingTheChannelEndsTheSpawner) {
  UniqueFd watch;
  {
    Spawner s = start_or_die();
    watch.reset(pidfd_open(s.pid()));
    ASSERT_TRUE(watch.valid());
  }
  // ~SpawnerChannel reaped it already.
  EXPECT_TRUE(gone_within(watch.get(), 0));
}

// The syscall a task sleeps in (/proc/PID/syscall), -1 if unknown.
long sleeping_in(pid_t pid) {
  auto s = fs::read_file("/proc/" + std::to_string(pid) + "/syscall");
  if (!s || s->empty() || !std::isdigit(static_cast<unsigned char>((*s)[0]))) return -1;
  return std::stol(*s);
}

// SIGKILL of the owner: the spawner (PR_SET_PDEATHSIG) and its job (the
// same, towards the spawner) die too. The spawner is kept busy in
// waitpid() for the job, so it cannot notice its socket closing and leave
// on its own: only the death signal ends it. This process is a subreaper,
// so the orphans come back here and are reaped: no process is left.
TEST(Spawner, KillingTheOwnerKillsSpawnerAndJobs) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int pipefd[2];
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  pid_t owner = ::fork();
  ASSERT_GE(owner, 0);
  if (owner == 0) {
    // The owner: starts a spawner and a job that never ends, reports their
    // pids, waits to be killed.
    ::close(pipefd[0]);
    auto s = Spawner::start("/proc/self/exe");
    if (!s) ::_exit(2);
    auto j = spawn(*s, {}, {TestPayload::kPause, 0});
    if (!j) ::_exit(3);
    pid_t pids[2] = {s->pid(), j->pid()};
    std::thread waiter([&] { (void)j->wait(); });
    if (::write(pipefd[1], pids, sizeof pids) != sizeof pids) ::_exit(4);
    for (;;) ::pause();
  }
  ::close(pipefd[1]);
  pid_t pids[2] = {-1, -1};
  ASSERT_EQ(::read(pipefd[0], pids, sizeof pids), static_cast<ssize_t>(sizeof pids));
  ::close(pipefd[0]);
  UniqueFd spawner(pidfd_open(pids[0])), job(pidfd_open(pids[1]));
  ASSERT_TRUE(spawner.valid());
  ASSERT_TRUE(job.valid());
  EXPECT_FALSE(gone_within(job.get(), 50)) << "the job should run until its owner dies";
#if defined(SYS_wait4)
  bool in_wait = false;
  for (int i = 0; i < 500 && !in_wait; ++i) {
    in_wait = sleeping_in(pids[0]) == SYS_wait4;
    if (!in_wait) ::usleep(10'000);
  }
  EXPECT_TRUE(in_wait) << "spawner " << pids[0] << " never waited for the job";
#endif
  ASSERT_EQ(::kill(owner, SIGKILL), 0);
  int st;
  ASSERT_EQ(::waitpid(owner, &st, 0), owner);
  bool spawner_gone = gone_within(spawner.get(), 5000);
  bool job_gone = gone_within(job.get(), 5000);
  EXPECT_TRUE(spawner_gone) << "spawner " << pids[0] << " outlived its owner";
  EXPECT_TRUE(job_gone) << "job " << pids[1] << " outlived its spawner";
  // A failed test must not leave them running: they are our children now.
  if (!spawner_gone) ::syscall(SYS_pidfd_send_signal, spawner.get(), SIGKILL, nullptr, 0);
  if (!job_gone) ::syscall(SYS_pidfd_send_signal, job.get(), SIGKILL, nullptr, 0);
  // Reap the orphans (reparented to us); nothing may still be running.
  for (pid_t p : {pids[0], pids[1]}) {
    pid_t r;
    do {
      r = ::waitpid(p, &st, 0);
    } while (r < 0 && errno == EINTR);
    ASSERT_EQ(r, p) << "pid " << p << " was not reparented here";
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "pid " << p << " status " << st;
    EXPECT_NE(::kill(p, 0), 0) << "pid " << p << " still exists";
  }
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

#if defined(KREPRO_KERNEL_TESTS)

using test_util::make_pod_tree;
using test_util::PodTree;

Result<void> remove_retrying(Cgroup& cg) {
  Result<void> r = make_error(EBUSY, "not tried");
  for (int i = 0; i < 200 && !r; ++i) {
    r = cg.remove();
    if (!r) ::usleep(5000);
  }
  return r;
}

// A pod's cgroups: a spawned job joins memory, cpu, pids and blkio before
// its payload runs. The control: the same job given one fd fewer is in
// one hierarchy fewer, so the count is what the placement did.
TEST(SpawnerKernel, JobJoinsEveryHierarchyItIsGiven) {
  auto l = CgroupLayout::discover();
  if (::geteuid() != 0 || !l) GTEST_SKIP() << "needs root";
  std::vector<std::string> want = {"memory", "cpu", "pids", "blkio"};
  for (const auto& c : want)
    if (!l->v1(c)) GTEST_SKIP() << "needs a v1 " << c << " hierarchy";
  auto hs = l->v1_hierarchies(want);
  ASSERT_TRUE(hs) << hs.error().message();
  std::string top = "krepro-spawn-multi-" + std::to_string(::getpid());
  PodTree pod;
  auto made = make_pod_tree(*l, *hs, top, pod);
  ASSERT_TRUE(made) << made.error().message();
  auto& [guard, tops, jobs, fds, where] = pod;
  int n = static_cast<int>(hs->size());
  ASSERT_GE(n, 2);
  std::string suffix = "/" + top + "/" + top + "-job";
  Spawner s = start_or_die();
  auto all = spawn(s, where, {TestPayload::kCountCgroupLines, n}, suffix);
  ASSERT_TRUE(all) << all.error().message();
  auto code = all->wait();
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(*code, 0) << "10+N: the job was in N of " << n << " hierarchies";

  JobPlacement fewer = where;
  fewer.cgroup_procs_fds.pop_back();
  auto some = spawn(s, fewer, {TestPayload::kCountCgroupLines, n}, suffix);
  ASSERT_TRUE(some) << some.error().message();
  EXPECT_EQ(*some->wait(), 10 + n - 1);

  fds.clear();
  for (auto& j : jobs) EXPECT_TRUE(remove_retrying(j));
  for (auto& t : tops) EXPECT_TRUE(t.remove());
  for (const auto& d : guard.dirs) EXPECT_FALSE(fs::exists(d)) << d;
}

// The netns fd travels too: the job runs in that namespace.
TEST(SpawnerKernel, JobEntersTheNetnsItIsGiven) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto ns = NetNamespace::create();
  if (!ns) GTEST_SKIP() << "cannot create a netns: " << ns.error().message();
  char link[128];
  ssize_t n =
      ::readlink(("/proc/self/fd/" + std::to_string(ns->fd())).c_str(), link, sizeof link - 1);
  ASSERT_GT(n, 0);
  link[n] = 0;
  Spawner s = start_or_die();
  JobPlacement where;
  where.netns_fd = ns->fd();
  auto in = spawn(s, where, {TestPayload::kSameNetns, 0}, link);
  ASSERT_TRUE(in) << in.error().message();
  EXPECT_EQ(*in->wait(), 0);
  // Without the fd it stays in ours: the check can fail.
  auto out = spawn(s, {}, {TestPayload::kSameNetns, 0}, link);
  ASSERT_TRUE(out);
  EXPECT_EQ(*out->wait(), 3);
}

#endif  // KREPRO_KERNEL_TESTS

}  // namespace
}  // namespace krepro::kernel

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == krepro::kernel::kSpawnerCommand)
    return krepro::kernel::spawner_main(krepro::kernel::kSpawnerFd,
                                        krepro::kernel::run_test_payload);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
