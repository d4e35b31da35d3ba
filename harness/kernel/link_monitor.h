// LinkMonitor: RTM_NEWLINK / RTM_DELLINK notifications of one namespace (the
// hub), timestamped on receipt. The hub-side RTM_DELLINK of a veth whose peer
// namespace was closed marks the end of that namespace's teardown
// (net/core/net_namespace.c cleanup_net → default_device_exit_batch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "harness/kernel/netns.h"
#include "harness/util/result.h"

namespace krepro::kernel {

struct LinkEvent {
  enum class Type {
    kNew,      // RTM_NEWLINK: creation or any change (flags, mtu, master...)
    kDel,      // RTM_DELLINK
    kOverrun,  // the socket overflowed (ENOBUFS): events were lost here
  };
  Type type = Type::kNew;
  int ifindex = 0;
  std::string ifname;   // empty for kOverrun
  unsigned flags = 0;   // ifi_flags (IFF_*)
  int64_t mono_ns = 0;  // CLOCK_MONOTONIC right after recv returned
};

// Parses a buffer of netlink messages as received from an rtnetlink socket;
// calls cb for each RTM_NEWLINK/RTM_DELLINK, ignores other types and
// malformed tails. Returns the number of link events delivered.
//
// Hand-written rather than libnl's nl_msg_parse: that builds an rtnl_link
// object per message (malloc, every attribute including stats64 and the
// per-family AF_SPEC data) only for us to read two fields; here each event
// costs a header check and a walk to IFLA_IFNAME, with no allocation.
size_t parse_link_messages(const void* buf, size_t len, int64_t mono_ns,
                           const std::function<void(const LinkEvent&)>& cb);

class LinkMonitor {
 public:
  using Callback = std::function<void(const LinkEvent&)>;
  static constexpr int kDefaultRcvbuf = 8 << 20;

  // Subscribes to RTNLGRP_LINK in `ns` before returning, so every event after
  // start() is seen (or counted as an overrun). cb runs on the monitor's
  // reader thread; keep it short, a slow callback is what causes overruns.
  static Result<LinkMonitor> start(const NetNamespace& ns, Callback cb,
                                   int rcvbuf_bytes = kDefaultRcvbuf);

  LinkMonitor();
  LinkMonitor(LinkMonitor&&) noexcept;
  // Stops the monitor this held before taking the other's.
  LinkMonitor& operator=(LinkMonitor&&) noexcept;
  ~LinkMonitor();

  // Stops the reader thread (idempotent; never blocks on the socket).
  void stop();

  uint64_t events() const;    // link events delivered
  uint64_t overruns() const;  // ENOBUFS seen: at least one event lost each
  int rcvbuf_bytes() const;   // the receive buffer the kernel granted
  // The error that ended the reader early (a recv failure other than
  // ENOBUFS), or success while it runs normally.
  Result<void> reader_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace krepro::kernel
