#include "harness/kernel/netns.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

namespace krepro::kernel {

namespace {

constexpr const char* kSelfNetns = "/proc/thread-self/ns/net";
// include/net/net_namespace.h LOOPBACK_IFINDEX: loopback is the first device
// registered in every namespace (drivers/net/loopback.c loopback_net_init).
constexpr int kLoopbackIfindex = 1;

pid_t current_tid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

Result<UniqueFd> open_self_netns() {
  int fd = ::open(kSelfNetns, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error(std::string("open ") + kSelfNetns);
  return UniqueFd(fd);
}

Result<uint64_t> inode_of(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return errno_error("fstat netns fd");
  return static_cast<uint64_t>(st.st_ino);
}

// Runs fn on a new thread and returns its result. std::thread reports
// EAGAIN (thread limit) as std::system_error; that becomes an Error.
template <class T, class F>
Result<T> on_new_thread(F&& fn, const char* what) {
  std::optional<Result<T>> out;
  try {
    std::thread t([&] { out.emplace(fn()); });
    t.join();
  } catch (const std::system_error& e) {
    return make_error(e.code().value(), std::string(what) + ": starting thread");
  }
  return std::move(*out);
}

}  // namespace

Result<void> bring_loopback_up() {
  // A raw request is one sendmsg + one recv; libnl would add a cache-less
  // object round trip with allocations for the same single message.
  int s = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return errno_error("socket(NETLINK_ROUTE)");
  UniqueFd sock(s);
  struct {
    nlmsghdr nh;
    ifinfomsg ifi;
  } req{};
  req.nh.nlmsg_len = sizeof(req);
  req.nh.nlmsg_type = RTM_NEWLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  req.ifi.ifi_index = kLoopbackIfindex;
  req.ifi.ifi_flags = IFF_UP;
  req.ifi.ifi_change = IFF_UP;
  // An unbound netlink socket is autobound on first send and a zero
  // destination means the kernel (net/netlink/af_netlink.c netlink_sendmsg).
  if (::send(s, &req, sizeof(req), 0) != static_cast<ssize_t>(sizeof(req))) {
    return errno_error("RTM_NEWLINK lo up: send");
  }
  alignas(nlmsghdr) char buf[512];
  ssize_t n = ::recv(s, buf, sizeof(buf), 0);
  if (n < 0) return errno_error("RTM_NEWLINK lo up: recv");
  auto* nh = reinterpret_cast<const nlmsghdr*>(buf);
  if (!NLMSG_OK(nh, static_cast<size_t>(n)) || nh->nlmsg_type != NLMSG_ERROR) {
    return make_error(EPROTO, "RTM_NEWLINK lo up: unexpected reply");
  }
  auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(nh));
  if (err->error != 0) return make_error(-err->error, "RTM_NEWLINK lo up");
  return {};
}

// Declared as a friend of NetNamespace. Changes the calling thread's
// namespace: only call it on a thread made for that.
Result<NetNamespace> create_netns_on_this_thread() {
  // CLONE_NEWNET alone is allowed in a multi-threaded process: only
  // CLONE_NEWUSER and CLONE_FS-implying flags need an unshared task
  // (kernel/fork.c check_unshare_flags / ksys_unshare).
  if (::unshare(CLONE_NEWNET) != 0) return errno_error("unshare(CLONE_NEWNET)");
  auto fd = open_self_netns();
  KREPRO_TRY(fd);
  auto ino = inode_of(fd->get());
  KREPRO_TRY(ino);
  // A fresh namespace has lo down (net/core/dev.c register_netdevice leaves
  // it administratively down); pods expect it up.
  KREPRO_TRY_CTX(bring_loopback_up(), "new netns");
  return NetNamespace(std::move(*fd), *ino);
}

Result<NetNamespace> NetNamespace::create() {
  // The helper thread's exit drops its nsproxy, so only our fd holds the
  // namespace afterwards (kernel/exit.c do_exit → exit_task_namespaces).
  return on_new_thread<NetNamespace>(create_netns_on_this_thread, "netns create");
}

Result<NetNamespace> NetNamespace::current() {
  auto fd = open_self_netns();
  KREPRO_TRY(fd);
  return adopt(std::move(*fd));
}

Result<NetNamespace> NetNamespace::adopt(UniqueFd fd) {
  if (!fd.valid()) return make_error(EBADF, "adopt netns: invalid fd");
  auto ino = inode_of(fd.get());
  KREPRO_TRY(ino);
  return NetNamespace(std::move(fd), *ino);
}

// ---------------------------------------------------------------------------
// NetnsFactory

struct NetnsFactory::Impl {
  size_t prefetch = 1;
  std::mutex mu;
  std::condition_variable cv;  // worker ↔ callers
  bool quit = false;
  bool dead = false;  // the worker could not return home and stopped
  // Ready namespaces (and at most one error, at the back: the worker waits
  // for it to be consumed before trying again, so a failing unshare does
  // not spin).
  std::deque<Result<NetNamespace>> ready;
  UniqueFd original;  // the worker's namespace at start, to return to
  std::thread worker;

  bool has_error() const { return !ready.empty() && !ready.back().has_value(); }

  void run() {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return quit || (ready.size() < prefetch && !has_error()); });
      if (quit) return;
      lock.unlock();
      auto r = create_netns_on_this_thread();
      // Return to the original namespace so the worker pins nothing; setns
      // swaps the task's nsproxy (kernel/nsproxy.c setns → commit_nsset),
      // dropping its reference to the new one.
      bool home = ::setns(original.get(), CLONE_NEWNET) == 0;
      int e = errno;
      lock.lock();
      if (!home) {
        // Without a way back later namespaces would be made from an
        // unknown one; fail this and every later request.
        ready.emplace_back(make_error(e, "netns factory: setns back to original namespace"));
        dead = true;
        cv.notify_all();
        return;
      }
      ready.push_back(std::move(r));
      cv.notify_all();
    }
  }
};

Result<NetnsFactory> NetnsFactory::start(size_t prefetch) {
  auto impl = std::make_unique<Impl>();
  impl->prefetch = prefetch == 0 ? 1 : prefetch;
  // The worker inherits our nsproxy (kernel/fork.c copy_namespaces shares it
  // for CLONE_THREAD), so our namespace is the one it returns to.
  auto orig = open_self_netns();
  KREPRO_TRY_CTX(orig, "netns factory");
  impl->original = std::move(*orig);
  try {
    impl->worker = std::thread([p = impl.get()] { p->run(); });
  } catch (const std::system_error& e) {
    return make_error(e.code().value(), "netns factory: starting worker thread");
  }
  NetnsFactory f;
  f.impl_ = std::move(impl);
  return f;
}

NetnsFactory::NetnsFactory() = default;
NetnsFactory::NetnsFactory(NetnsFactory&&) noexcept = default;

NetnsFactory& NetnsFactory::operator=(NetnsFactory&& o) noexcept {
  if (this != &o) {
    NetnsFactory old(std::move(*this));  // stops our worker on scope exit
    impl_ = std::move(o.impl_);
  }
  return *this;
}

NetnsFactory::~NetnsFactory() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->quit = true;
  }
  impl_->cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

Result<NetNamespace> NetnsFactory::create() {
  if (!impl_) return make_error(EINVAL, "netns factory: not started");
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return !impl_->ready.empty() || impl_->dead; });
  if (impl_->ready.empty()) return make_error(ESHUTDOWN, "netns factory: worker stopped");
  Result<NetNamespace> r = std::move(impl_->ready.front());
  impl_->ready.pop_front();
  impl_->cv.notify_all();  // room for the worker to make the next one
  return r;
}

// ---------------------------------------------------------------------------
// ScopedNetns

Result<ScopedNetns> ScopedNetns::enter(const NetNamespace& ns) {
  if (!ns.valid()) return make_error(EBADF, "enter netns: invalid namespace");
  auto orig = open_self_netns();
  KREPRO_TRY_CTX(orig, "enter netns");
  if (::setns(ns.fd(), CLONE_NEWNET) != 0) return errno_error("setns(CLONE_NEWNET)");
  return ScopedNetns(std::move(*orig), current_tid());
}

ScopedNetns::ScopedNetns(ScopedNetns&& o) noexcept
    : original_(std::move(o.original_)), tid_(std::exchange(o.tid_, 0)) {}

void ScopedNetns::restore() noexcept {
  if (!original_.valid()) return;
  KREPRO_CHECK_MSG(tid_ == current_tid(),
                   "ScopedNetns destroyed on another thread than it entered");
  KREPRO_CHECK_MSG(::setns(original_.get(), CLONE_NEWNET) == 0,
                   std::string("setns back to original netns: ") + std::strerror(errno));
  original_.reset();
}

Result<void> run_in_netns(const NetNamespace& ns, const std::function<void()>& fn) {
  if (!ns.valid()) return make_error(EBADF, "run in netns: invalid namespace");
  return on_new_thread<void>(
      [&]() -> Result<void> {
        if (::setns(ns.fd(), CLONE_NEWNET) != 0) return errno_error("setns(CLONE_NEWNET)");
        fn();
        return {};
      },
      "run in netns");
}

}  // namespace krepro::kernel
