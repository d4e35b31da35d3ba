// Kernel tier: real cgroups under the cgroup this test runs in.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "harness/kernel/cgroup.h"
#include "harness/kernel/cgroup_test_util.h"
#include "harness/kernel/job.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {
namespace {

std::string self_memcg_or_skip() {
  if (::geteuid() != 0) return {};
  auto l = CgroupLayout::discover();
  if (!l || !l->v1("memory")) return {};
  auto d = l->self_dir_v1("memory");
  return d ? *d : std::string();
}

TEST(CgroupKernel, CreateKmemJobAndRemove) {
  std::string parent = self_memcg_or_skip();
  if (parent.empty()) GTEST_SKIP() << "needs root and a cgroup v1 memory hierarchy";
  std::string name = "krepro-test-" + std::to_string(::getpid());
  auto cg = Cgroup::create(parent, name, CgroupVersion::kV1);
  ASSERT_TRUE(cg) << cg.error().message();
  KmemState st = cg->enable_kmem_like_runc();
  if (st.file_present) {
    EXPECT_TRUE(st.write_ok) << "errno " << st.err;
  }

  UniqueFd procs(::open((cg->path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(procs.valid());
  JobPlacement where;
  where.cgroup_procs_fds.push_back(procs.get());
  // The child reports whether it sees itself in the cgroup.
  std::string want = "/" + name;
  auto job = Job::fork_payload(where, [&] {
    char buf[4096];
    int fd = ::open("/proc/self/cgroup", O_RDONLY);
    ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf - 1) : -1;
    if (n <= 0) return 2;
    buf[n] = 0;
    return std::string_view(buf).find(want + "\n") != std::string_view::npos ? 0 : 3;
  });
  ASSERT_TRUE(job);
  auto code = job->wait();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);

  // A task inside makes rmdir fail with EBUSY (kernel/cgroup/cgroup.c
  // cgroup_destroy_locked); that errno is reported, not hidden.
  auto sleeper = Job::fork_payload(where, [] {
    ::pause();
    return 0;
  });
  ASSERT_TRUE(sleeper);
  for (int i = 0; i < 100; ++i) {
    auto p = cg->pids();
    if (p && !p->empty()) break;
    ::usleep(10000);
  }
  auto busy = cg->remove();
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().err(), EBUSY);
  sleeper->kill_and_reap();
  // The css of a killed task is released asynchronously.
  Result<void> r = make_error(EBUSY, "not tried");
  for (int i = 0; i < 200 && !r; ++i) {
    r = cg->remove();
    if (!r) ::usleep(5000);
  }
  EXPECT_TRUE(r) << r.error().message();
  EXPECT_FALSE(fs::exists(parent + "/" + name));
}

TEST(CgroupKernel, RemoveTreeKillsOwnTasks) {
  std::string parent = self_memcg_or_skip();
  if (parent.empty()) GTEST_SKIP() << "needs root and a cgroup v1 memory hierarchy";
  std::string top = "krepro-tree-" + std::to_string(::getpid());
  auto a = Cgroup::create(parent, top, CgroupVersion::kV1);
  ASSERT_TRUE(a);
  auto b = Cgroup::create(a->path(), top + "-child", CgroupVersion::kV1);
  ASSERT_TRUE(b);
  UniqueFd procs(::open((b->path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  JobPlacement where;
  where.cgroup_procs_fds.push_back(procs.get());
  auto sleeper = Job::fork_payload(where, [] {
    ::pause();
    return 0;
  });
  ASSERT_TRUE(sleeper);
  ::usleep(20000);
  std::string a_path = a->release();
  b->release();
  auto res = remove_cgroup_tree(a_path, true);
  EXPECT_EQ(res.removed, 2u);
  EXPECT_TRUE(res.errors.empty()) << res.errors.front().message();
  EXPECT_FALSE(fs::exists(a_path));
  auto code = sleeper->wait();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 128 + SIGKILL);
}

TEST(JobKernel, ExecCommandPlacedInCgroup) {
  std::string parent = self_memcg_or_skip();
  if (parent.empty()) GTEST_SKIP() << "needs root and a cgroup v1 memory hierarchy";
  std::string name = "krepro-exec-" + std::to_string(::getpid());
  auto cg = Cgroup::create(parent, name, CgroupVersion::kV1);
  ASSERT_TRUE(cg);
  UniqueFd procs(::open((cg->path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  JobPlacement where;
  where.cgroup_procs_fds.push_back(procs.get());
  auto job =
      Job::exec_command(where, {"/bin/sh", "-c", "grep -q '/" + name + "$' /proc/self/cgroup"});
  ASSERT_TRUE(job) << job.error().message();
  auto code = job->wait();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
}

TEST(JobKernel, MoveAssignmentKillsPreviousJob) {
  JobPlacement none;
  auto a = Job::fork_payload(none, [] {
    ::pause();
    return 0;
  });
  auto b = Job::fork_payload(none, [] { return 7; });
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  pid_t old = a->pid();
  *a = std::move(*b);
  // The old child was killed and reaped: its pid is gone.
  EXPECT_EQ(::kill(old, 0), -1);
  auto code = a->wait();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 7);
}

}  // namespace
}  // namespace krepro::kernel

namespace krepro::kernel {
namespace {

// The vfork path: placed in the cgroup before the payload runs, exit code
// carried back, and the payload's file is there once the call returns (the
// caller slept until the child exited).
TEST(JobKernel, VforkPayloadPlacedRunsAndExits) {
  std::string parent = self_memcg_or_skip();
  if (parent.empty()) GTEST_SKIP() << "needs root and a cgroup v1 memory hierarchy";
  std::string name = "krepro-vfork-" + std::to_string(::getpid());
  auto cg = Cgroup::create(parent, name, CgroupVersion::kV1);
  ASSERT_TRUE(cg);
  UniqueFd procs(::open((cg->path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  JobPlacement where;
  where.cgroup_procs_fds.push_back(procs.get());
  std::string want = "/" + name + "\n";
  std::string file = "/tmp/" + name + ".out";
  const char* fpath = file.c_str();
  auto job = Job::vfork_payload(where, [&want, fpath] {
    char buf[4096];
    int fd = ::open("/proc/self/cgroup", O_RDONLY);
    ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf - 1) : -1;
    if (n <= 0) return 2;
    buf[n] = 0;
    if (std::string_view(buf).find(want) == std::string_view::npos) return 3;
    int out = ::open(fpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0 || ::write(out, "ok", 2) != 2) return 4;
    ::close(out);
    return 5;
  });
  ASSERT_TRUE(job) << job.error().message();
#if !defined(__SANITIZE_ADDRESS__)
  // Already written when the call returns: the caller slept until the child
  // exited (sanitizer builds take the fork path, see Job::vfork_payload).
  EXPECT_EQ(fs::read_file(file).value_or(""), "ok");
#endif
  auto code = job->wait();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 5);
  EXPECT_EQ(fs::read_file(file).value_or(""), "ok");
  ::unlink(fpath);
}

}  // namespace
}  // namespace krepro::kernel

namespace krepro::kernel {
namespace {

using test_util::make_pod_tree;
using test_util::PodTree;
using test_util::test_parent;
using test_util::TreeGuard;

// A pod's cgroups: one job joins memory, cpu, pids and blkio before its
// payload runs, and sees itself in each.
TEST(CgroupKernelMulti, JobJoinsEveryNamedHierarchy) {
  auto l = CgroupLayout::discover();
  if (::geteuid() != 0 || !l) GTEST_SKIP() << "needs root";
  std::vector<std::string> want = {"memory", "cpu", "pids", "blkio"};
  for (const auto& c : want)
    if (!l->v1(c)) GTEST_SKIP() << "needs a v1 " << c << " hierarchy";
  auto hs = l->v1_hierarchies(want);
  ASSERT_TRUE(hs) << hs.error().message();
  std::string top = "krepro-multi-" + std::to_string(::getpid());
  PodTree pod;
  auto made = make_pod_tree(*l, *hs, top, pod);
  ASSERT_TRUE(made) << made.error().message();
  auto& [guard, tops, jobs, fds, where] = pod;
  // Each /proc/self/cgroup line of a named hierarchy ends in the job's dir.
  std::string suffix = "/" + top + "/" + top + "-job\n";
  int needed = static_cast<int>(hs->size());
  auto job = Job::fork_payload(where, [&] {
    char buf[8192];
    int fd = ::open("/proc/self/cgroup", O_RDONLY);
    ssize_t n = fd >= 0 ? ::read(fd, buf, sizeof buf - 1) : -1;
    if (n <= 0) return 2;
    buf[n] = 0;
    std::string_view v(buf);
    int found = 0;
    for (size_t p = v.find(suffix); p != std::string_view::npos; p = v.find(suffix, p + 1)) ++found;
    return found == needed ? 0 : 10 + found;
  });
  ASSERT_TRUE(job) << job.error().message();
  auto code = job->wait();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << "10+N: the job was in N of " << needed << " hierarchies";
  fds.clear();
  for (auto& j : jobs) {
    Result<void> r = make_error(EBUSY, "not tried");
    for (int i = 0; i < 200 && !r; ++i) {
      r = j.remove();
      if (!r) ::usleep(5000);
    }
    EXPECT_TRUE(r) << r.error().message();
  }
  for (auto& t : tops) EXPECT_TRUE(t.remove());
  for (const auto& d : guard.dirs) EXPECT_FALSE(fs::exists(d)) << d;
}

// A new v1 cpuset cgroup has no cpus or mems and refuses tasks until they
// are set (kernel/cgroup/cpuset.c cpuset_can_attach_check: ENOSPC).
TEST(CgroupKernelMulti, CpusetNeedsCpusAndMemsBeforeATaskJoins) {
  auto l = CgroupLayout::discover();
  if (::geteuid() != 0 || !l || !l->v1("cpuset")) GTEST_SKIP() << "needs root and v1 cpuset";
  std::string parent = test_parent(*l, "cpuset");
  std::string top = "krepro-cpuset-" + std::to_string(::getpid());
  TreeGuard guard;
  guard.dirs.push_back(fs::join(parent, top));
  auto t = Cgroup::create(parent, top, CgroupVersion::kV1);
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_TRUE(t->copy_cpuset_from(parent));
  auto j = Cgroup::create(t->path(), top + "-job", CgroupVersion::kV1);
  ASSERT_TRUE(j);
  auto fd = j->open_procs();
  ASSERT_TRUE(fd);
  JobPlacement where;
  where.cgroup_procs_fds.push_back(fd->get());
  bool clone_children = fs::read_line(t->path() + "/cgroup.clone_children").value_or("0") == "1";
  if (!clone_children) {
    auto refused = Job::fork_payload(where, [] { return 0; });
    ASSERT_TRUE(refused);
    EXPECT_EQ(*refused->wait(), Job::kPlacementFailed);
  }
  ASSERT_TRUE(j->set_cpuset(*fs::read_line(t->path() + "/cpuset.cpus"),
                            *fs::read_line(t->path() + "/cpuset.mems")));
  auto joined = Job::fork_payload(where, [] { return 0; });
  ASSERT_TRUE(joined);
  EXPECT_EQ(*joined->wait(), 0);
}

// pids.max on a job's pids cgroup is enforced: the job cannot fork.
TEST(CgroupKernelMulti, PidsMaxLimitsTheJob) {
  auto l = CgroupLayout::discover();
  if (::geteuid() != 0 || !l || !l->v1("pids")) GTEST_SKIP() << "needs root and v1 pids";
  std::string parent = test_parent(*l, "pids");
  std::string top = "krepro-pids-" + std::to_string(::getpid());
  TreeGuard guard;
  guard.dirs.push_back(fs::join(parent, top));
  auto t = Cgroup::create(parent, top, CgroupVersion::kV1);
  ASSERT_TRUE(t) << t.error().message();
  ASSERT_TRUE(t->write("pids.max", "1"));
  auto fd = t->open_procs();
  ASSERT_TRUE(fd);
  JobPlacement where;
  where.cgroup_procs_fds.push_back(fd->get());
  auto job = Job::fork_payload(where, [] {
    pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    if (p > 0) return 3;  // the limit did not hold
    return errno == EAGAIN ? 0 : 4;
  });
  ASSERT_TRUE(job);
  EXPECT_EQ(*job->wait(), 0);
}

// On the real layout: the default refuses a hierarchy root; cgroup_parent
// naming its mount point (or "/") allows it.
TEST(CgroupKernelMulti, RunParentOnThisHost) {
  auto l = CgroupLayout::discover();
  if (!l || !l->v1("pids")) GTEST_SKIP() << "needs a v1 pids hierarchy";
  std::string mp = l->v1("pids")->mount_point;
  if (l->self_at_root_v1("pids")) {
    auto r = l->run_parent_v1("pids", "");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().err(), EPERM);
  } else {
    EXPECT_EQ(*l->run_parent_v1("pids", ""), *l->self_dir_v1("pids"));
  }
  EXPECT_EQ(*l->run_parent_v1("pids", mp), mp);
  EXPECT_EQ(*l->run_parent_v1("pids", "/"), mp);
  if (l->v1("memory") && !l->self_at_root_v1("memory")) {
    EXPECT_EQ(*l->run_parent_v1("memory", mp), *l->self_dir_v1("memory"));
  }
}

}  // namespace
}  // namespace krepro::kernel
