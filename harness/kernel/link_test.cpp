// Built twice (net.cmake): unit tests, and with KREPRO_KERNEL_TESTS the
// kernel tests. Kernel tests work in a private hub namespace per test, never
// in the host's: closing the hub at the end removes whatever a failed
// assertion left behind.
#include "harness/kernel/link.h"

#include <gtest/gtest.h>
#include <net/if.h>
#include <netlink/errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace krepro::kernel {
namespace {

#ifndef KREPRO_KERNEL_TESTS

TEST(IfnameUnit, AcceptsValidNames) {
  EXPECT_TRUE(validate_ifname("krp0a1b2c3"));
  EXPECT_TRUE(validate_ifname("krepro-0123456"));   // 14
  EXPECT_TRUE(validate_ifname("krepro-01234567"));  // 15: the limit
}

TEST(IfnameUnit, RejectsTooLongWithClearMessage) {
  auto r = validate_ifname("krepro-012345678");  // 16
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), EINVAL);
  EXPECT_NE(r.error().message().find("krepro-012345678"), std::string::npos);
  EXPECT_NE(r.error().message().find("IFNAMSIZ"), std::string::npos);
}

TEST(IfnameUnit, RejectsWhatTheKernelRejects) {
  for (const char* bad : {"", ".", "..", "a/b", "a:b", "a b", "a\tb"}) {
    auto r = validate_ifname(bad);
    ASSERT_FALSE(r) << "'" << bad << "'";
    EXPECT_EQ(r.error().err(), EINVAL);
  }
}

TEST(NlErrorUnit, InvertsLibnlMapping) {
  // Every errno libnl maps one-to-one must come back unchanged.
  for (int e : {EEXIST, EINVAL, ENODEV, EPERM, EBUSY, ENOMEM, EOPNOTSUPP, EADDRNOTAVAIL, EACCES,
                ERANGE, EAGAIN, EINTR, EBADF, EAFNOSUPPORT, ENOENT, EPROTONOSUPPORT}) {
    EXPECT_EQ(nl_error_to_errno(nl_syserr2nlerr(e)), e) << e;
  }
  EXPECT_EQ(nl_error_to_errno(0), 0);
  EXPECT_EQ(nl_error_to_errno(-NLE_NODEV), ENODEV);  // sign ignored
  EXPECT_EQ(nl_error_to_errno(NLE_FAILURE), EIO);
  EXPECT_EQ(nl_error_to_errno(9999), EIO);
}

TEST(NlErrorUnit, ErrorCarriesLibnlTextAndMappedErrno) {
  NlSocket none;
  Error e = none.error(-NLE_EXIST, "RTM_NEWLINK krp0");
  EXPECT_EQ(e.err(), EEXIST);
  EXPECT_NE(e.message().find("RTM_NEWLINK krp0"), std::string::npos);
  EXPECT_NE(e.message().find(nl_geterror(NLE_EXIST)), std::string::npos);
}

TEST(NlSocketUnit, DeferredErrorsAreBoundedAndCounted) {
  NlSocket s;
  for (size_t i = 0; i < NlSocket::kMaxDeferred + 2; ++i) s.record_deferred(Error(EBUSY, "x"));
  auto errs = s.take_deferred_errors();
  EXPECT_EQ(errs.size(), NlSocket::kMaxDeferred);
  EXPECT_EQ(errs.front().err(), EBUSY);
  EXPECT_EQ(s.deferred_dropped(), 2u);
  EXPECT_TRUE(s.take_deferred_errors().empty());
  NlSocket moved(std::move(s));
  EXPECT_EQ(moved.deferred_dropped(), 2u);
}

TEST(VethUnit, InvalidNamesFailBeforeTheKernel) {
  NlSocket none;  // never used: validation comes first
  NetNamespace ns;
  auto v = VethPair::create(none, "krepro-012345678", "krp0p", ns);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().err(), EINVAL);
  v = VethPair::create(none, "krp0", "bad/peer", ns);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().err(), EINVAL);
  v = VethPair::create(none, "krp0", "krp0p", ns);  // invalid namespace
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().err(), EBADF);
}

TEST(VethUnit, EmptyPairIsInert) {
  VethPair v;
  EXPECT_FALSE(v.valid());
  EXPECT_TRUE(v.destroy());
  VethPair w(std::move(v));
  EXPECT_FALSE(w.valid());
}

TEST(LinkUnit, BadArgumentsFailBeforeTheKernel) {
  NlSocket none;
  auto a = add_address(none, 1, "10.1.2.300/24");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().err(), EINVAL);
  a = add_address(none, 1, "not-an-address");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().err(), EINVAL);
  auto r = add_route(none, "10.0.0.0/8", RouteVia{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), EINVAL);
  r = add_route(none, "10.0.0.0/8", RouteVia{"fd00::1", 0});  // family mismatch
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), EINVAL);
  auto b = create_bridge(none, "krepro-bridge-too-long");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().err(), EINVAL);
}

#else  // KREPRO_KERNEL_TESTS

uint64_t thread_netns_inode() {
  struct stat st;
  return ::stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
}

class LinkKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)";
    host_ino_ = thread_netns_inode();
    auto hub = NetNamespace::create();
    if (!hub) GTEST_SKIP() << "cannot create a netns: " << hub.error().message();
    hub_ = std::move(*hub);
    auto pod = NetNamespace::create();
    ASSERT_TRUE(pod) << pod.error().message();
    pod_ = std::move(*pod);
    auto hs = NlSocket::connect_in(hub_);
    ASSERT_TRUE(hs) << hs.error().message();
    hub_sock_ = std::move(*hs);
    auto ps = NlSocket::connect_in(pod_);
    ASSERT_TRUE(ps) << ps.error().message();
    pod_sock_ = std::move(*ps);
  }
  void TearDown() override {
    if (host_ino_) {
      EXPECT_EQ(thread_netns_inode(), host_ino_) << "caller namespace changed";
    }
  }

  // Waits until ifindex is gone from the hub (namespace teardown is async).
  bool wait_gone(int ifindex, int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      auto l = get_link(hub_sock_, ifindex);
      if (!l && l.error().err() == ENODEV) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  uint64_t host_ino_ = 0;
  NetNamespace hub_;
  NetNamespace pod_;
  NlSocket hub_sock_;
  NlSocket pod_sock_;
};

TEST_F(LinkKernel, VethPeerLivesInPodNamespace) {
  auto v = VethPair::create(hub_sock_, "krp-h1", "krp-p1", pod_);
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->name(), "krp-h1");
  EXPECT_EQ(v->peer_name(), "krp-p1");

  auto h = get_link(hub_sock_, "krp-h1");
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->ifindex, v->ifindex());
  EXPECT_EQ(h->kind, "veth");
  auto p = get_link(pod_sock_, "krp-p1");
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->kind, "veth");
  // Each end's IFLA_LINK is the other's ifindex, in the other namespace
  // (drivers/net/veth.c veth_get_iflink), flagged by a link netnsid.
  EXPECT_EQ(h->link, p->ifindex);
  EXPECT_EQ(p->link, h->ifindex);
  EXPECT_GE(h->link_netnsid, 0);
  EXPECT_GE(p->link_netnsid, 0);

  // Neither end leaks into the other namespace.
  auto wrong = get_link(hub_sock_, "krp-p1");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().err(), ENODEV);
  wrong = get_link(pod_sock_, "krp-h1");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().err(), ENODEV);
}

TEST_F(LinkKernel, AddressesUpMtuAndRoutes) {
  auto v = VethPair::create(hub_sock_, "krp-h2", "krp-p2", pod_);
  ASSERT_TRUE(v) << v.error().message();
  auto pidx = link_index(pod_sock_, "krp-p2");
  ASSERT_TRUE(pidx) << pidx.error().message();

  ASSERT_TRUE(add_address(hub_sock_, v->ifindex(), "10.77.0.1/24"));
  auto r6 = add_address(hub_sock_, v->ifindex(), "fd00:77::1/64");
  ASSERT_TRUE(r6) << r6.error().message();
  auto addrs = list_addresses(hub_sock_, v->ifindex());
  ASSERT_TRUE(addrs) << addrs.error().message();
  EXPECT_NE(std::find(addrs->begin(), addrs->end(), "10.77.0.1/24"), addrs->end());
  EXPECT_NE(std::find(addrs->begin(), addrs->end(), "fd00:77::1/64"), addrs->end());
  // The kernel's own errno comes through (not libnl's folded code).
  auto dup = add_address(hub_sock_, v->ifindex(), "10.77.0.1/24");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().err(), EEXIST) << dup.error().message();

  ASSERT_TRUE(set_link_up(hub_sock_, v->ifindex(), true));
  ASSERT_TRUE(set_link_up(pod_sock_, "krp-p2", true));
  auto h = get_link(hub_sock_, v->ifindex());
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->flags & IFF_UP);
  auto p = get_link(pod_sock_, *pidx);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->flags & IFF_UP);
  ASSERT_TRUE(set_link_up(hub_sock_, v->ifindex(), false));
  h = get_link(hub_sock_, v->ifindex());
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->flags & IFF_UP);
  ASSERT_TRUE(set_link_up(hub_sock_, v->ifindex(), true));

  ASSERT_TRUE(set_mtu(pod_sock_, *pidx, 1400));
  p = get_link(pod_sock_, *pidx);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->mtu, 1400u);
  auto big = set_mtu(pod_sock_, *pidx, 1 << 20);  // above veth's max_mtu
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().err(), EINVAL) << big.error().message();
  // The kernel's extended ack reason is kept (net/core/dev.c
  // dev_validate_mtu: "mtu greater than device maximum").
  EXPECT_NE(big.error().message().find("kernel: mtu greater"), std::string::npos)
      << big.error().message();

  ASSERT_TRUE(add_address(pod_sock_, *pidx, "10.77.0.2/24"));
  auto rt = add_route(pod_sock_, "10.88.0.0/16", RouteVia{"10.77.0.1", 0}, 1300);
  ASSERT_TRUE(rt) << rt.error().message();
  auto rdup = add_route(pod_sock_, "10.88.0.0/16", RouteVia{"10.77.0.1", 0});
  ASSERT_FALSE(rdup);
  EXPECT_EQ(rdup.error().err(), EEXIST) << rdup.error().message();
  // A gateway no route reaches: the kernel refuses it
  // (net/ipv4/fib_semantics.c fib_check_nh_v4_gw).
  auto unreach = add_route(pod_sock_, "10.99.0.0/16", RouteVia{"192.0.2.1", *pidx});
  ASSERT_FALSE(unreach);
  EXPECT_EQ(unreach.error().err(), ENETUNREACH) << unreach.error().message();
  auto def = add_route(pod_sock_, "default", RouteVia{"", *pidx});
  ASSERT_TRUE(def) << def.error().message();
}

TEST_F(LinkKernel, BridgeAndEnslave) {
  auto br = create_bridge(hub_sock_, "krepro-br0");
  ASSERT_TRUE(br) << br.error().message();
  auto b = get_link(hub_sock_, *br);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->kind, "bridge");
  EXPECT_EQ(b->name, "krepro-br0");
  auto again = create_bridge(hub_sock_, "krepro-br0");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().err(), EEXIST);

  auto v = VethPair::create(hub_sock_, "krp-h3", "krp-p3", pod_);
  ASSERT_TRUE(v) << v.error().message();
  auto e = enslave(hub_sock_, v->ifindex(), *br);
  ASSERT_TRUE(e) << e.error().message();
  auto h = get_link(hub_sock_, v->ifindex());
  ASSERT_TRUE(h);
  EXPECT_EQ(h->master, *br);
  ASSERT_TRUE(delete_link(hub_sock_, *br));
  auto gone = get_link(hub_sock_, *br);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().err(), ENODEV);
}

TEST_F(LinkKernel, KernelErrnosArePreserved) {
  auto none = link_index(hub_sock_, "krepro-none");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().err(), ENODEV);
  auto del = delete_link(hub_sock_, 999999);
  ASSERT_FALSE(del);
  EXPECT_EQ(del.error().err(), ENODEV);
  auto v = VethPair::create(hub_sock_, "krp-h4", "krp-p4", pod_);
  ASSERT_TRUE(v) << v.error().message();
  auto dup = VethPair::create(hub_sock_, "krp-h4", "krp-p4b", pod_);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().err(), EEXIST) << dup.error().message();
}

TEST_F(LinkKernel, DestructorDeletesBothEnds) {
  int idx = 0;
  {
    auto v = VethPair::create(hub_sock_, "krp-h5", "krp-p5", pod_);
    ASSERT_TRUE(v) << v.error().message();
    idx = v->ifindex();
    ASSERT_TRUE(get_link(pod_sock_, "krp-p5"));
  }
  auto h = get_link(hub_sock_, idx);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().err(), ENODEV);
  auto p = get_link(pod_sock_, "krp-p5");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().err(), ENODEV);
  EXPECT_TRUE(hub_sock_.take_deferred_errors().empty());
}

TEST_F(LinkKernel, MoveAssignReleasesPreviousPair) {
  auto a = VethPair::create(hub_sock_, "krp-h6", "krp-p6", pod_);
  auto b = VethPair::create(hub_sock_, "krp-h7", "krp-p7", pod_);
  ASSERT_TRUE(a && b);
  int ia = a->ifindex(), ib = b->ifindex();
  *a = std::move(*b);
  EXPECT_FALSE(b->valid());
  EXPECT_EQ(a->ifindex(), ib);
  EXPECT_EQ(a->name(), "krp-h7");
  auto old = get_link(hub_sock_, ia);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().err(), ENODEV);
  EXPECT_TRUE(get_link(hub_sock_, ib));
}

TEST_F(LinkKernel, NamespaceTeardownRemovesHubEndAndDestroyIsQuiet) {
  auto v = VethPair::create(hub_sock_, "krp-h8", "krp-p8", pod_);
  ASSERT_TRUE(v) << v.error().message();
  pod_sock_ = NlSocket();  // a socket pins its namespace too
  pod_.reset();
  ASSERT_TRUE(wait_gone(v->ifindex())) << "pod namespace teardown did not remove the veth";
  auto d = v->destroy();  // ENODEV → success
  EXPECT_TRUE(d) << d.error().message();
  EXPECT_TRUE(hub_sock_.take_deferred_errors().empty());
}

#endif  // KREPRO_KERNEL_TESTS

}  // namespace
}  // namespace krepro::kernel
