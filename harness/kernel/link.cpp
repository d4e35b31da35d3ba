#include "harness/kernel/link.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cctype>
#include <cstring>
#include <mutex>
#include <optional>

namespace krepro::kernel {

namespace {

template <class T, void (*F)(T*)>
struct NlFree {
  void operator()(T* p) const {
    if (p) F(p);
  }
};
using LinkPtr = std::unique_ptr<rtnl_link, NlFree<rtnl_link, rtnl_link_put>>;
using AddrPtr = std::unique_ptr<rtnl_addr, NlFree<rtnl_addr, rtnl_addr_put>>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlFree<nl_addr, nl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, NlFree<rtnl_route, rtnl_route_put>>;
using CachePtr = std::unique_ptr<nl_cache, NlFree<nl_cache, nl_cache_free>>;
// A veth link owns its peer object; rtnl_link_veth_release frees both.
using VethPtr = std::unique_ptr<rtnl_link, NlFree<rtnl_link, rtnl_link_veth_release>>;

Unexpected no_memory(const char* what) { return make_error(ENOMEM, std::string(what) + ": alloc"); }

// A libnl failure that involved no request (object setters): the socket's
// captured kernel errno would be stale here.
Unexpected local_error(int nle, const std::string& what) {
  return make_error(nl_error_to_errno(nle), what + " (libnl: " + nl_geterror(nle) + ")");
}

// Parses an address; family AF_UNSPEC lets libnl guess. Only IPv4/IPv6.
Result<NlAddrPtr> parse_addr(const std::string& text, int family, const char* what) {
  nl_addr* a = nullptr;
  int rc = nl_addr_parse(text.c_str(), family, &a);
  NlAddrPtr p(a);
  if (rc < 0) {
    return make_error(EINVAL, std::string(what) + " '" + text + "': " + nl_geterror(rc));
  }
  int f = nl_addr_get_family(a);
  if (f != AF_INET && f != AF_INET6) {
    return make_error(EINVAL, std::string(what) + " '" + text + "': not an IPv4/IPv6 address");
  }
  return p;
}

LinkInfo to_info(rtnl_link* l) {
  LinkInfo i;
  i.ifindex = rtnl_link_get_ifindex(l);
  if (const char* n = rtnl_link_get_name(l)) i.name = n;
  i.flags = rtnl_link_get_flags(l);
  i.mtu = rtnl_link_get_mtu(l);
  i.master = rtnl_link_get_master(l);
  i.link = rtnl_link_get_link(l);
  int32_t nsid = -1;
  if (rtnl_link_get_link_netnsid(l, &nsid) == 0) i.link_netnsid = nsid;
  if (const char* k = rtnl_link_get_type(l)) i.kind = k;
  return i;
}

Result<LinkPtr> get_kernel_link(NlSocket& sock, int ifindex, const char* name) {
  rtnl_link* l = nullptr;
  sock.begin_request();
  int rc = rtnl_link_get_kernel(sock.get(), ifindex, name, &l);
  LinkPtr p(l);
  if (rc < 0) {
    return Unexpected(sock.error(rc, name ? std::string("RTM_GETLINK ") + name
                                          : "RTM_GETLINK ifindex " + std::to_string(ifindex)));
  }
  return p;
}

// Sends `changes` for ifindex (RTM_NEWLINK without NLM_F_CREATE acts as
// setlink: net/core/rtnetlink.c rtnl_newlink → do_setlink).
Result<void> change_link(NlSocket& sock, int ifindex, rtnl_link* changes, const std::string& what) {
  LinkPtr orig(rtnl_link_alloc());
  if (!orig) return no_memory("rtnl_link");
  rtnl_link_set_ifindex(orig.get(), ifindex);
  sock.begin_request();
  int rc = rtnl_link_change(sock.get(), orig.get(), changes, 0);
  if (rc < 0) return Unexpected(sock.error(rc, what));
  return {};
}

}  // namespace

Result<void> validate_ifname(std::string_view name) {
  if (name.empty()) return make_error(EINVAL, "interface name is empty");
  if (name.size() >= IFNAMSIZ) {
    return make_error(EINVAL, "interface name '" + std::string(name) + "' is " +
                                  std::to_string(name.size()) + " bytes, the limit is " +
                                  std::to_string(IFNAMSIZ - 1) + " (IFNAMSIZ - 1)");
  }
  if (name == "." || name == "..") {
    return make_error(EINVAL, "interface name '" + std::string(name) + "' is reserved");
  }
  for (char c : name) {
    if (c == '/' || c == ':' || c == '\0' || std::isspace(static_cast<unsigned char>(c))) {
      return make_error(EINVAL, "interface name '" + std::string(name) +
                                    "' contains '/', ':', NUL or whitespace");
    }
  }
  return {};
}

int nl_error_to_errno(int nle) {
  switch (nle < 0 ? -nle : nle) {
    case NLE_SUCCESS:
      return 0;
    case NLE_INTR:
      return EINTR;
    case NLE_BAD_SOCK:
      return EBADF;
    case NLE_AGAIN:
      return EAGAIN;
    case NLE_NOMEM:
      return ENOMEM;  // also what libnl makes of ENOBUFS
    case NLE_EXIST:
      return EEXIST;  // also EADDRINUSE
    case NLE_INVAL:
      return EINVAL;
    case NLE_RANGE:
      return ERANGE;
    case NLE_MSGSIZE:
    case NLE_MSG_OVERFLOW:
    case NLE_MSG_TRUNC:
      return EMSGSIZE;
    case NLE_OPNOTSUPP:
    case NLE_SRCRT_NOSUPPORT:
    case NLE_MSGTYPE_NOSUPPORT:
      return EOPNOTSUPP;
    case NLE_AF_NOSUPPORT:
    case NLE_AF_MISMATCH:
      return EAFNOSUPPORT;
    case NLE_OBJ_NOTFOUND:
    case NLE_NOCACHE:
    case NLE_PKTLOC_FILE:
      return ENOENT;  // also ESRCH
    case NLE_NOATTR:
      return ENODATA;
    case NLE_MISSING_ATTR:
    case NLE_OBJ_MISMATCH:
    case NLE_PARSE_ERR:
    case NLE_ATTRSIZE:
      return EINVAL;
    case NLE_SEQ_MISMATCH:
    case NLE_MSG_TOOSHORT:
      return EPROTO;
    case NLE_NOADDR:
      return EADDRNOTAVAIL;
    case NLE_BUSY:
      return EBUSY;
    case NLE_PROTO_MISMATCH:
      return EPROTONOSUPPORT;
    case NLE_NOACCESS:
      return EACCES;
    case NLE_PERM:
    case NLE_IMMUTABLE:
      return EPERM;
    case NLE_NODEV:
      return ENODEV;
    case NLE_DUMP_INTR:
      return EINTR;
    default:
      return EIO;  // NLE_FAILURE and unknown codes
  }
}

// ---------------------------------------------------------------------------
// NlSocket

struct NlSocket::State {
  int kernel_errno = 0;  // from the last NLMSG_ERROR of the current request
  std::string extack;    // NLMSGERR_ATTR_MSG of it, when the kernel sent one
  std::mutex deferred_mu;
  std::vector<Error> deferred;
  uint64_t dropped = 0;
};

namespace {

// libnl folds the kernel's errno into an NLE_* code (nl_recvmsgs →
// nl_syserr2nlerr); this callback keeps the real one and the extended ack
// message, then returns NL_STOP so libnl still reports the failure.
int on_nl_error(sockaddr_nl*, nlmsgerr* err, void* arg) {
  auto* st = static_cast<NlSocket::State*>(arg);
  st->kernel_errno = -err->error;
  st->extack.clear();
  // The NLMSG_ERROR header sits right before its payload.
  auto* hdr = reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(err) - NLMSG_HDRLEN);
  if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS)) return NL_STOP;
  // Attributes follow the nlmsgerr and, unless capped, the echoed request
  // payload (net/netlink/af_netlink.c netlink_ack).
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(hdr->nlmsg_flags & NLM_F_CAPPED)) off += err->msg.nlmsg_len - NLMSG_HDRLEN;
  const char* base = reinterpret_cast<const char*>(hdr);
  while (off + NLA_HDRLEN <= hdr->nlmsg_len) {
    auto* a = reinterpret_cast<const nlattr*>(base + off);
    if (a->nla_len < NLA_HDRLEN || off + a->nla_len > hdr->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      const char* s = base + off + NLA_HDRLEN;
      st->extack.assign(s, strnlen(s, a->nla_len - NLA_HDRLEN));
    }
    off += NLA_ALIGN(a->nla_len);
  }
  return NL_STOP;
}

}  // namespace

void NlSocket::Free::operator()(nl_sock* s) const {
  if (s) nl_socket_free(s);  // closes the fd too
}

NlSocket::NlSocket() : state_(std::make_unique<State>()) {}
NlSocket::NlSocket(NlSocket&&) noexcept = default;
NlSocket& NlSocket::operator=(NlSocket&&) noexcept = default;
NlSocket::~NlSocket() = default;

Result<NlSocket> NlSocket::connect_here() {
  NlSocket s;
  s.sock_.reset(nl_socket_alloc());
  if (!s.sock_) return no_memory("nl_socket_alloc");
  int rc = nl_connect(s.sock_.get(), NETLINK_ROUTE);
  if (rc < 0) return Unexpected(s.error(rc, "nl_connect(NETLINK_ROUTE)"));
  int fd = nl_socket_get_fd(s.sock_.get());
  int one = 1;
  // Extended acks carry the kernel's reason ("Peer name too long", ...);
  // capped acks keep error replies small. Both are best effort (old
  // kernels lack them; net/netlink/af_netlink.c netlink_setsockopt).
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  rc = nl_socket_modify_err_cb(s.sock_.get(), NL_CB_CUSTOM, on_nl_error, s.state_.get());
  if (rc < 0) return Unexpected(s.error(rc, "nl_socket_modify_err_cb"));
  return s;
}

Result<NlSocket> NlSocket::connect() { return connect_here(); }

Result<NlSocket> NlSocket::connect_in(const NetNamespace& ns) {
  std::optional<Result<NlSocket>> out;
  auto ran = run_in_netns(ns, [&] { out.emplace(connect_here()); });
  KREPRO_TRY_CTX(ran, "netlink socket in netns");
  return std::move(*out);
}

void NlSocket::begin_request() {
  if (!state_) return;
  state_->kernel_errno = 0;
  state_->extack.clear();
}

Error NlSocket::error(int nle, std::string what) const {
  int kerr = state_ ? state_->kernel_errno : 0;
  std::string ctx = std::move(what);
  ctx += " (libnl: ";
  ctx += nl_geterror(nle);
  if (state_ && !state_->extack.empty()) {
    ctx += "; kernel: ";
    ctx += state_->extack;
  }
  ctx += ")";
  return Error(kerr ? kerr : nl_error_to_errno(nle), std::move(ctx));
}

void NlSocket::record_deferred(Error e) {
  if (!state_) return;
  std::lock_guard lock(state_->deferred_mu);
  if (state_->deferred.size() >= kMaxDeferred) {
    ++state_->dropped;
    return;
  }
  state_->deferred.push_back(std::move(e));
}

std::vector<Error> NlSocket::take_deferred_errors() {
  if (!state_) return {};
  std::lock_guard lock(state_->deferred_mu);
  return std::exchange(state_->deferred, {});
}

uint64_t NlSocket::deferred_dropped() const {
  if (!state_) return 0;
  std::lock_guard lock(state_->deferred_mu);
  return state_->dropped;
}

// ---------------------------------------------------------------------------
// VethPair

Result<VethPair> VethPair::create(NlSocket& hub, std::string name, std::string peer_name,
                                  const NetNamespace& peer_ns) {
  KREPRO_TRY_CTX(validate_ifname(name), "veth");
  KREPRO_TRY_CTX(validate_ifname(peer_name), "veth peer");
  if (!peer_ns.valid()) return make_error(EBADF, "veth " + name + ": invalid peer namespace");
  VethPtr link(rtnl_link_veth_alloc());
  if (!link) return no_memory("rtnl_link_veth_alloc");
  rtnl_link_set_name(link.get(), name.c_str());
  // get_peer takes a reference of its own (lib/route/link/veth.c).
  LinkPtr peer(rtnl_link_veth_get_peer(link.get()));
  rtnl_link_set_name(peer.get(), peer_name.c_str());
  rtnl_link_set_ns_fd(peer.get(), peer_ns.fd());
  hub.begin_request();
  int rc = rtnl_link_add(hub.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) {
    return Unexpected(hub.error(rc, "RTM_NEWLINK veth " + name + " peer " + peer_name));
  }
  // The ack carries no ifindex; ask for it (one more round trip, ~10 µs,
  // versus NLM_F_ECHO which not every kernel honours for RTM_NEWLINK).
  auto idx = link_index(hub, name);
  KREPRO_TRY_CTX(idx, "veth " + name + " created");
  VethPair v;
  v.hub_ = &hub;
  v.name_ = std::move(name);
  v.peer_name_ = std::move(peer_name);
  v.ifindex_ = *idx;
  return v;
}

VethPair::VethPair(VethPair&& o) noexcept
    : hub_(std::exchange(o.hub_, nullptr)),
      name_(std::move(o.name_)),
      peer_name_(std::move(o.peer_name_)),
      ifindex_(std::exchange(o.ifindex_, 0)) {}

VethPair& VethPair::operator=(VethPair&& o) noexcept {
  if (this != &o) {
    if (auto r = destroy(); !r && hub_) hub_->record_deferred(r.error());
    hub_ = std::exchange(o.hub_, nullptr);
    name_ = std::move(o.name_);
    peer_name_ = std::move(o.peer_name_);
    ifindex_ = std::exchange(o.ifindex_, 0);
  }
  return *this;
}

VethPair::~VethPair() {
  NlSocket* hub = hub_;
  auto r = destroy();
  if (!r && hub) hub->record_deferred(std::move(r.error()));
}

Result<void> VethPair::destroy() {
  if (!hub_) return {};
  NlSocket* hub = std::exchange(hub_, nullptr);
  // ifindexes are allocated cyclically per namespace (net/core/dev.c
  // dev_index_reserve, xa_alloc_cyclic), so a just-freed index is not
  // handed to a new link soon: deleting by index cannot hit a stranger.
  auto r = delete_link(*hub, ifindex_);
  if (!r && r.error().err() == ENODEV) return {};
  if (!r) return Unexpected(r.error().wrap("veth " + name_));
  return {};
}

void VethPair::release() { hub_ = nullptr; }

// ---------------------------------------------------------------------------
// Free functions

Result<int> link_index(NlSocket& sock, const std::string& name) {
  KREPRO_TRY(validate_ifname(name));
  auto l = get_kernel_link(sock, 0, name.c_str());
  KREPRO_TRY(l);
  return rtnl_link_get_ifindex(l->get());
}

Result<LinkInfo> get_link(NlSocket& sock, int ifindex) {
  auto l = get_kernel_link(sock, ifindex, nullptr);
  KREPRO_TRY(l);
  return to_info(l->get());
}

Result<LinkInfo> get_link(NlSocket& sock, const std::string& name) {
  KREPRO_TRY(validate_ifname(name));
  auto l = get_kernel_link(sock, 0, name.c_str());
  KREPRO_TRY(l);
  return to_info(l->get());
}

Result<void> set_link_up(NlSocket& sock, int ifindex, bool up) {
  LinkPtr ch(rtnl_link_alloc());
  if (!ch) return no_memory("rtnl_link");
  if (up) {
    rtnl_link_set_flags(ch.get(), IFF_UP);
  } else {
    rtnl_link_unset_flags(ch.get(), IFF_UP);
  }
  return change_link(
      sock, ifindex, ch.get(),
      std::string("RTM_NEWLINK ifindex ") + std::to_string(ifindex) + (up ? " up" : " down"));
}

Result<void> set_link_up(NlSocket& sock, const std::string& name, bool up) {
  auto idx = link_index(sock, name);
  KREPRO_TRY(idx);
  return set_link_up(sock, *idx, up);
}

Result<void> set_mtu(NlSocket& sock, int ifindex, unsigned mtu) {
  LinkPtr ch(rtnl_link_alloc());
  if (!ch) return no_memory("rtnl_link");
  rtnl_link_set_mtu(ch.get(), mtu);
  return change_link(
      sock, ifindex, ch.get(),
      "RTM_NEWLINK ifindex " + std::to_string(ifindex) + " mtu " + std::to_string(mtu));
}

Result<void> delete_link(NlSocket& sock, int ifindex) {
  LinkPtr l(rtnl_link_alloc());
  if (!l) return no_memory("rtnl_link");
  rtnl_link_set_ifindex(l.get(), ifindex);
  sock.begin_request();
  int rc = rtnl_link_delete(sock.get(), l.get());
  if (rc < 0) return Unexpected(sock.error(rc, "RTM_DELLINK ifindex " + std::to_string(ifindex)));
  return {};
}

Result<int> create_bridge(NlSocket& sock, const std::string& name) {
  KREPRO_TRY_CTX(validate_ifname(name), "bridge");
  LinkPtr l(rtnl_link_bridge_alloc());
  if (!l) return no_memory("rtnl_link_bridge_alloc");
  rtnl_link_set_name(l.get(), name.c_str());
  sock.begin_request();
  int rc = rtnl_link_add(sock.get(), l.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) return Unexpected(sock.error(rc, "RTM_NEWLINK bridge " + name));
  return link_index(sock, name);
}

Result<void> enslave(NlSocket& sock, int ifindex, int bridge_ifindex) {
  sock.begin_request();
  // libnl's argument order is (master, slave).
  int rc = rtnl_link_enslave_ifindex(sock.get(), bridge_ifindex, ifindex);
  if (rc < 0) {
    return Unexpected(sock.error(rc, "RTM_NEWLINK ifindex " + std::to_string(ifindex) + " master " +
                                         std::to_string(bridge_ifindex)));
  }
  return {};
}

Result<void> add_address(NlSocket& sock, int ifindex, const std::string& cidr) {
  auto a = parse_addr(cidr, AF_UNSPEC, "address");
  KREPRO_TRY(a);
  AddrPtr addr(rtnl_addr_alloc());
  if (!addr) return no_memory("rtnl_addr");
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  int rc = rtnl_addr_set_local(addr.get(), a->get());  // takes its own reference
  if (rc < 0) return local_error(rc, "address " + cidr);
  sock.begin_request();
  rc = rtnl_addr_add(sock.get(), addr.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) {
    return Unexpected(
        sock.error(rc, "RTM_NEWADDR " + cidr + " on ifindex " + std::to_string(ifindex)));
  }
  return {};
}

Result<std::vector<std::string>> list_addresses(NlSocket& sock, int ifindex) {
  nl_cache* c = nullptr;
  sock.begin_request();
  int rc = rtnl_addr_alloc_cache(sock.get(), &c);
  CachePtr cache(c);
  if (rc < 0) return Unexpected(sock.error(rc, "RTM_GETADDR dump"));
  std::vector<std::string> out;
  for (nl_object* o = nl_cache_get_first(c); o; o = nl_cache_get_next(o)) {
    auto* addr = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(addr) != ifindex) continue;
    nl_addr* local = rtnl_addr_get_local(addr);
    if (!local) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(nl_addr_get_family(local), nl_addr_get_binary_addr(local), buf, sizeof(buf))) {
      continue;
    }
    out.push_back(std::string(buf) + "/" + std::to_string(rtnl_addr_get_prefixlen(addr)));
  }
  return out;
}

Result<void> add_route(NlSocket& sock, const std::string& dst, const RouteVia& via,
                       std::optional<unsigned> mtu) {
  if (via.gateway.empty() && via.ifindex <= 0) {
    return make_error(EINVAL, "route " + dst + ": needs a gateway or a device");
  }
  std::optional<NlAddrPtr> gw;
  int family = AF_UNSPEC;
  if (!via.gateway.empty()) {
    auto g = parse_addr(via.gateway, AF_UNSPEC, "gateway");
    KREPRO_TRY_CTX(g, "route " + dst);
    family = nl_addr_get_family(g->get());
    gw = std::move(*g);
  }
  if (dst == "default" && family == AF_UNSPEC) family = AF_INET;
  auto d = parse_addr(dst, family, "route destination");
  KREPRO_TRY(d);
  if (family != AF_UNSPEC && nl_addr_get_family(d->get()) != family) {
    return make_error(EINVAL, "route " + dst + ": gateway " + via.gateway + " is another family");
  }
  RoutePtr route(rtnl_route_alloc());
  if (!route) return no_memory("rtnl_route");
  int rc = rtnl_route_set_dst(route.get(), d->get());
  if (rc < 0) return local_error(rc, "route " + dst);
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (!nh) return no_memory("rtnl_nexthop");
  if (via.ifindex > 0) rtnl_route_nh_set_ifindex(nh, via.ifindex);
  if (gw) rtnl_route_nh_set_gateway(nh, gw->get());
  rtnl_route_add_nexthop(route.get(), nh);  // the route owns nh from here
  if (mtu) {
    rc = rtnl_route_set_metric(route.get(), RTAX_MTU, *mtu);
    if (rc < 0) return local_error(rc, "route " + dst + " mtu");
  }
  // Scope is left unset so libnl guesses it (link for on-link routes,
  // universe with a gateway: lib/route/route_obj.c rtnl_route_guess_scope).
  sock.begin_request();
  rc = rtnl_route_add(sock.get(), route.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) return Unexpected(sock.error(rc, "RTM_NEWROUTE " + dst));
  return {};
}

}  // namespace krepro::kernel
