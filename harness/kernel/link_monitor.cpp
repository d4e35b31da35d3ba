#include "harness/kernel/link_monitor.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "harness/util/clock.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {

size_t parse_link_messages(const void* buf, size_t len, int64_t mono_ns,
                           const std::function<void(const LinkEvent&)>& cb) {
  size_t delivered = 0;
  // Copy-free walk; NLMSG_OK/NLMSG_NEXT bound every step by what is left.
  auto* nh = static_cast<const nlmsghdr*>(buf);
  size_t left = len;
  for (; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
    if (nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK) continue;
    if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) continue;
    auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(nh));
    LinkEvent ev;
    ev.type = nh->nlmsg_type == RTM_NEWLINK ? LinkEvent::Type::kNew : LinkEvent::Type::kDel;
    ev.ifindex = ifi->ifi_index;
    ev.flags = ifi->ifi_flags;
    ev.mono_ns = mono_ns;
    size_t alen = nh->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg));
    for (auto* a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
      if (a->rta_type != IFLA_IFNAME) continue;
      auto* s = static_cast<const char*>(RTA_DATA(a));
      ev.ifname.assign(s, strnlen(s, RTA_PAYLOAD(a)));
      break;
    }
    cb(ev);
    ++delivered;
  }
  return delivered;
}

struct LinkMonitor::Impl {
  UniqueFd sock;
  UniqueFd wake;  // eventfd: written by stop() to end the poll
  Callback cb;
  int rcvbuf = 0;
  std::atomic<uint64_t> events{0};
  std::atomic<uint64_t> overruns{0};
  mutable std::mutex mu;
  std::optional<Error> error;
  std::thread reader;

  void fail(Error e) {
    std::lock_guard lock(mu);
    error = std::move(e);
  }

  void run() {
    // One skb per recv on a netlink socket (net/netlink/af_netlink.c
    // netlink_recvmsg), and a link notification is a few KiB
    // (net/core/rtnetlink.c if_nlmsg_size), so 64 KiB never truncates.
    std::vector<char> buf(64 << 10);
    pollfd fds[2] = {{sock.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    for (;;) {
      int n = ::poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(Error::from_errno("link monitor: poll"));
        return;
      }
      if (fds[1].revents) return;
      // Drain everything queued before polling again.
      for (;;) {
        ssize_t got = ::recv(sock.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        int64_t now = mono_ns();
        if (got < 0) {
          if (errno == EAGAIN || errno == EINTR) break;
          if (errno == ENOBUFS) {
            // The receive queue overflowed and the kernel dropped
            // notifications (net/netlink/af_netlink.c netlink_overrun).
            // The socket stays usable; make the gap visible.
            overruns.fetch_add(1, std::memory_order_relaxed);
            LinkEvent ev;
            ev.type = LinkEvent::Type::kOverrun;
            ev.mono_ns = now;
            cb(ev);
            continue;
          }
          fail(Error::from_errno("link monitor: recv"));
          return;
        }
        size_t k = parse_link_messages(buf.data(), static_cast<size_t>(got), now, cb);
        events.fetch_add(k, std::memory_order_relaxed);
      }
    }
  }
};

LinkMonitor::LinkMonitor() = default;
LinkMonitor::LinkMonitor(LinkMonitor&&) noexcept = default;

LinkMonitor& LinkMonitor::operator=(LinkMonitor&& o) noexcept {
  if (this != &o) {
    stop();
    impl_ = std::move(o.impl_);
  }
  return *this;
}

LinkMonitor::~LinkMonitor() { stop(); }

Result<LinkMonitor> LinkMonitor::start(const NetNamespace& ns, Callback cb, int rcvbuf_bytes) {
  if (!cb) return make_error(EINVAL, "link monitor: no callback");
  auto impl = std::make_unique<Impl>();
  impl->cb = std::move(cb);
  std::optional<Result<UniqueFd>> made;
  auto ran = run_in_netns(ns, [&] {
    int s = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    made.emplace(s < 0 ? Result<UniqueFd>(errno_error("socket(NETLINK_ROUTE)"))
                       : Result<UniqueFd>(UniqueFd(s)));
  });
  KREPRO_TRY_CTX(ran, "link monitor");
  KREPRO_TRY_CTX(*made, "link monitor");
  impl->sock = std::move(**made);
  int fd = impl->sock.get();
  // SO_RCVBUFFORCE ignores net.core.rmem_max (needs CAP_NET_ADMIN); fall back
  // to SO_RCVBUF, which the kernel caps at rmem_max (net/core/sock.c
  // sk_setsockopt).
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_bytes, sizeof(rcvbuf_bytes)) != 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof(rcvbuf_bytes)) != 0) {
    return errno_error("link monitor: SO_RCVBUF");
  }
  socklen_t sl = sizeof(impl->rcvbuf);
  if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &impl->rcvbuf, &sl) != 0) {
    return errno_error("link monitor: getsockopt SO_RCVBUF");
  }
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return errno_error("link monitor: bind RTMGRP_LINK");
  }
  int wfd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wfd < 0) return errno_error("link monitor: eventfd");
  impl->wake.reset(wfd);
  try {
    impl->reader = std::thread([p = impl.get()] { p->run(); });
  } catch (const std::system_error& e) {
    return make_error(e.code().value(), "link monitor: starting reader thread");
  }
  LinkMonitor m;
  m.impl_ = std::move(impl);
  return m;
}

void LinkMonitor::stop() {
  if (!impl_ || !impl_->reader.joinable()) return;
  uint64_t one = 1;
  // An eventfd write cannot block here (counter far from overflow).
  (void)!::write(impl_->wake.get(), &one, sizeof(one));
  impl_->reader.join();
}

uint64_t LinkMonitor::events() const {
  return impl_ ? impl_->events.load(std::memory_order_relaxed) : 0;
}
uint64_t LinkMonitor::overruns() const {
  return impl_ ? impl_->overruns.load(std::memory_order_relaxed) : 0;
}
int LinkMonitor::rcvbuf_bytes() const { return impl_ ? impl_->rcvbuf : 0; }

Result<void> LinkMonitor::reader_error() const {
  if (!impl_) return {};
  std::lock_guard lock(impl_->mu);
  if (impl_->error) return Unexpected(*impl_->error);
  return {};
}

}  // namespace krepro::kernel
