// Built twice (net.cmake): without KREPRO_KERNEL_TESTS the unit tests (no
// root), with it the kernel tests (root and unshare(CLONE_NEWNET)).
#include "harness/kernel/netns.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "harness/kernel/link.h"

namespace krepro::kernel {
namespace {

uint64_t thread_netns_inode() {
  struct stat st;
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

#ifndef KREPRO_KERNEL_TESTS

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(NetNamespaceUnit, AdoptRejectsInvalidFd) {
  auto ns = NetNamespace::adopt(UniqueFd());
  ASSERT_FALSE(ns);
  EXPECT_EQ(ns.error().err(), EBADF);
}

TEST(NetNamespaceUnit, MoveTransfersAndMoveAssignReleases) {
  int p1[2], p2[2];
  ASSERT_EQ(::pipe2(p1, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(p2, O_CLOEXEC), 0);
  ::close(p1[1]);
  ::close(p2[1]);
  struct stat st1;
  ASSERT_EQ(::fstat(p1[0], &st1), 0);

  auto a = NetNamespace::adopt(UniqueFd(p1[0]));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->fd(), p1[0]);
  EXPECT_EQ(a->inode(), st1.st_ino);

  NetNamespace moved(std::move(*a));
  EXPECT_FALSE(a->valid());
  EXPECT_EQ(a->fd(), -1);
  EXPECT_EQ(moved.fd(), p1[0]);
  EXPECT_TRUE(fd_open(p1[0]));

  auto b = NetNamespace::adopt(UniqueFd(p2[0]));
  ASSERT_TRUE(b);
  moved = std::move(*b);  // must close p1[0]
  EXPECT_FALSE(fd_open(p1[0]));
  EXPECT_EQ(moved.fd(), p2[0]);
  EXPECT_TRUE(fd_open(p2[0]));
  moved.reset();
  EXPECT_FALSE(fd_open(p2[0]));
  EXPECT_EQ(moved.inode(), 0u);
}

TEST(NetNamespaceUnit, CurrentIsTheCallersNamespace) {
  auto ns = NetNamespace::current();
  ASSERT_TRUE(ns) << ns.error().message();
  EXPECT_NE(ns->inode(), 0u);
  EXPECT_EQ(ns->inode(), thread_netns_inode());
}

TEST(NetNamespaceUnit, FactoryNotStartedFails) {
  NetnsFactory f;
  auto ns = f.create();
  ASSERT_FALSE(ns);
  EXPECT_EQ(ns.error().err(), EINVAL);
}

TEST(NetNamespaceUnit, EnterAndRunRejectInvalidNamespace) {
  NetNamespace none;
  auto s = ScopedNetns::enter(none);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().err(), EBADF);
  bool ran = false;
  auto r = run_in_netns(none, [&] { ran = true; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), EBADF);
  EXPECT_FALSE(ran);
}

#else  // KREPRO_KERNEL_TESTS

class NetnsKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SYS_ADMIN for unshare/setns)";
    auto probe = NetNamespace::create();
    if (!probe) GTEST_SKIP() << "cannot create a netns: " << probe.error().message();
  }
};

TEST_F(NetnsKernel, CreateLeavesCallerNamespaceUnchanged) {
  uint64_t before = thread_netns_inode();
  ASSERT_NE(before, 0u);
  std::set<uint64_t> seen;
  for (int i = 0; i < 3; ++i) {
    auto ns = NetNamespace::create();
    ASSERT_TRUE(ns) << ns.error().message();
    EXPECT_NE(ns->inode(), before);
    EXPECT_TRUE(seen.insert(ns->inode()).second) << "inode reused while held";
    EXPECT_EQ(thread_netns_inode(), before);
  }
  EXPECT_EQ(thread_netns_inode(), before);
}

TEST_F(NetnsKernel, CreatedNamespaceHasLoopbackUp) {
  auto ns = NetNamespace::create();
  ASSERT_TRUE(ns) << ns.error().message();
  auto sock = NlSocket::connect_in(*ns);
  ASSERT_TRUE(sock) << sock.error().message();
  auto lo = get_link(*sock, 1);
  ASSERT_TRUE(lo) << lo.error().message();
  EXPECT_EQ(lo->name, "lo");
  EXPECT_TRUE(lo->flags & IFF_UP);
}

TEST_F(NetnsKernel, RunInNetnsRunsInsideTarget) {
  auto ns = NetNamespace::create();
  ASSERT_TRUE(ns) << ns.error().message();
  uint64_t before = thread_netns_inode();
  uint64_t inside = 0;
  auto r = run_in_netns(*ns, [&] { inside = thread_netns_inode(); });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(inside, ns->inode());
  EXPECT_EQ(thread_netns_inode(), before);
}

TEST_F(NetnsKernel, ScopedNetnsEntersAndReturns) {
  auto ns = NetNamespace::create();
  ASSERT_TRUE(ns) << ns.error().message();
  uint64_t before = thread_netns_inode();
  {
    auto s = ScopedNetns::enter(*ns);
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_EQ(thread_netns_inode(), ns->inode());
    ScopedNetns moved(std::move(*s));  // only `moved` returns us
    EXPECT_EQ(thread_netns_inode(), ns->inode());
  }
  EXPECT_EQ(thread_netns_inode(), before);
}

// Closing the last fd must destroy the namespace: the hub-side end of a veth
// whose peer lives there disappears (default_device_exit_batch). This fails
// if the factory's worker still pinned the namespace.
void expect_teardown_removes_peer(NetNamespace pod_ns, NlSocket& hub, int timeout_s) {
  auto v = VethPair::create(hub, "krp-ft0", "krp-ft0p", pod_ns);
  ASSERT_TRUE(v) << v.error().message();
  int idx = v->ifindex();
  v->release();
  pod_ns.reset();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    auto l = get_link(hub, idx);
    if (!l) {
      EXPECT_EQ(l.error().err(), ENODEV) << l.error().message();
      return;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "namespace was not torn down";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

TEST_F(NetnsKernel, FactoryCreatesIndependentNamespacesAndPinsNone) {
  uint64_t before = thread_netns_inode();
  auto f = NetnsFactory::start();
  ASSERT_TRUE(f) << f.error().message();
  std::set<uint64_t> seen;
  std::vector<NetNamespace> held;
  for (int i = 0; i < 5; ++i) {
    auto ns = f->create();
    ASSERT_TRUE(ns) << ns.error().message();
    EXPECT_NE(ns->inode(), before);
    EXPECT_TRUE(seen.insert(ns->inode()).second);
    held.push_back(std::move(*ns));
  }
  EXPECT_EQ(thread_netns_inode(), before);

  auto hub = NetNamespace::create();
  ASSERT_TRUE(hub) << hub.error().message();
  auto hs = NlSocket::connect_in(*hub);
  ASSERT_TRUE(hs) << hs.error().message();
  auto last = f->create();  // the worker's most recent namespace
  ASSERT_TRUE(last) << last.error().message();
  expect_teardown_removes_peer(std::move(*last), *hs, 10);
}

TEST_F(NetnsKernel, CreatePinsNothingAfterItsFdCloses) {
  auto hub = NetNamespace::create();
  ASSERT_TRUE(hub) << hub.error().message();
  auto hs = NlSocket::connect_in(*hub);
  ASSERT_TRUE(hs) << hs.error().message();
  auto pod = NetNamespace::create();
  ASSERT_TRUE(pod) << pod.error().message();
  expect_teardown_removes_peer(std::move(*pod), *hs, 10);
}

TEST_F(NetnsKernel, FactoryMoveAssignStopsPreviousWorker) {
  auto a = NetnsFactory::start();
  auto b = NetnsFactory::start();
  ASSERT_TRUE(a && b);
  *a = std::move(*b);  // joins a's worker; a now uses b's
  auto ns = a->create();
  ASSERT_TRUE(ns) << ns.error().message();
  auto dead = b->create();
  ASSERT_FALSE(dead);
  EXPECT_EQ(dead.error().err(), EINVAL);
}

#endif  // KREPRO_KERNEL_TESTS

}  // namespace
}  // namespace krepro::kernel
