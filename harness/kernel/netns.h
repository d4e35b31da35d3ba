// Network namespaces held by file descriptor only (no /run/netns bind mounts),
// so a killed run leaks none: the kernel frees a namespace when its last
// reference goes (net/core/net_namespace.c put_net → cleanup_net).
//
// The calling thread's namespace never changes. unshare(CLONE_NEWNET) and
// setns() act on the calling task's nsproxy only (kernel/nsproxy.c
// unshare_nsproxy_namespaces, switch_task_namespaces), so the work is done on
// another thread: a short-lived one (NetNamespace::create) or a long-lived
// worker (NetnsFactory, faster when namespaces are made by the thousand).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "harness/util/result.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {

class NetNamespace {
 public:
  // A new anonymous namespace with `lo` up, made on a short-lived thread.
  static Result<NetNamespace> create();
  // The calling thread's namespace (/proc/thread-self/ns/net).
  static Result<NetNamespace> current();
  // Takes ownership of an fd that refers to a namespace (or, in unit tests,
  // any file: the inode is whatever fstat reports).
  static Result<NetNamespace> adopt(UniqueFd fd);

  NetNamespace() = default;
  NetNamespace(NetNamespace&&) noexcept = default;
  // Releases (closes) the namespace this held before taking the other's.
  NetNamespace& operator=(NetNamespace&&) noexcept = default;
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  bool valid() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  // st_ino of the nsfs file: the namespace's identity (same as `ip netns
  // identify` / the number in readlink /proc/PID/ns/net).
  uint64_t inode() const { return inode_; }
  // Drops this reference; the namespace dies once nothing else holds it.
  void reset() {
    fd_.reset();
    inode_ = 0;
  }

 private:
  NetNamespace(UniqueFd fd, uint64_t inode) : fd_(std::move(fd)), inode_(inode) {}
  friend Result<NetNamespace> create_netns_on_this_thread();

  UniqueFd fd_;
  uint64_t inode_ = 0;
};

// Owns one worker thread that creates namespaces ahead of demand (unshare,
// open, lo up, setns back to its original namespace so it pins none) and
// keeps up to `prefetch` ready; create() pops one while the worker makes the
// next. Measured here (net_bench, 2-core VM loaded by other builds, medians
// of 3): bare create+close runs at about the rate of unshare on the
// caller's own thread (1.1-1.5k/s vs 1.3-1.7k/s) while a fresh thread per
// namespace (NetNamespace::create) reaches 0.6-0.9k/s; with a veth per
// namespace the factory matched or beat both (0.7-1.1k/s vs 0.5-0.7k/s;
// those paths serialise on rtnl_lock, so the spread is mostly load). Ready
// namespaces are anonymous and die with the factory. Thread-safe.
class NetnsFactory {
 public:
  static constexpr size_t kDefaultPrefetch = 2;
  static Result<NetnsFactory> start(size_t prefetch = kDefaultPrefetch);
  NetnsFactory();
  NetnsFactory(NetnsFactory&&) noexcept;
  NetnsFactory& operator=(NetnsFactory&&) noexcept;
  ~NetnsFactory();

  Result<NetNamespace> create();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// RAII: the current thread runs inside `ns` until destruction, then returns
// to the namespace it was in. Thread-bound: destroy it on the thread that
// entered (checked). Failing to return would leave the thread operating in
// the wrong namespace, so that aborts.
class ScopedNetns {
 public:
  static Result<ScopedNetns> enter(const NetNamespace& ns);
  ScopedNetns(ScopedNetns&& o) noexcept;
  // No move-assignment: guards nest, and `s = enter(b)` while `s` is active
  // would return to the wrong namespace at the end (enter(b) recorded the
  // namespace s entered as its original). Scope a new guard instead.
  ScopedNetns& operator=(ScopedNetns&& o) = delete;
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  ~ScopedNetns() { restore(); }

 private:
  ScopedNetns(UniqueFd original, pid_t tid) : original_(std::move(original)), tid_(tid) {}
  void restore() noexcept;

  UniqueFd original_;
  pid_t tid_ = 0;
};

// Runs fn on a short-lived thread that has joined `ns`; the thread's exit
// drops its reference to the namespace. Resources fn creates there (sockets)
// stay bound to `ns` (net/netlink/af_netlink.c netlink_create takes
// sock_net from current->nsproxy->net_ns).
Result<void> run_in_netns(const NetNamespace& ns, const std::function<void()>& fn);

// Brings `lo` up in the calling thread's namespace (raw RTM_NEWLINK).
Result<void> bring_loopback_up();

}  // namespace krepro::kernel
