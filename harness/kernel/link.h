// Links through libnl-route-3: a route socket bound to one namespace, veth
// pairs whose peer lives in another namespace, bridges, addresses, routes.
//
// Every operation acts in the namespace of the NlSocket it is given: a
// netlink socket stays in the namespace it was created in
// (net/netlink/af_netlink.c netlink_create uses current->nsproxy->net_ns).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/kernel/netns.h"
#include "harness/util/result.h"

struct nl_sock;

namespace krepro::kernel {

// Interface names: 1..15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace,
// not "." or ".." (net/core/dev.c dev_valid_name). EINVAL otherwise.
Result<void> validate_ifname(std::string_view name);

// libnl NLE_* code (sign ignored) → the errno it most likely came from; the
// inverse of libnl's nl_syserr2nlerr (lib/error.c), which folds several
// errnos into one code, so this picks the most common one.
int nl_error_to_errno(int nle);

class NlSocket {
 public:
  // A NETLINK_ROUTE socket in the caller's namespace.
  static Result<NlSocket> connect();
  // A NETLINK_ROUTE socket created inside `ns` (on a helper thread).
  static Result<NlSocket> connect_in(const NetNamespace& ns);

  NlSocket();
  NlSocket(NlSocket&&) noexcept;
  NlSocket& operator=(NlSocket&&) noexcept;  // frees the socket it held
  ~NlSocket();

  nl_sock* get() const { return sock_.get(); }
  bool valid() const { return sock_ != nullptr; }

  // Clears the kernel error captured for the previous request.
  void begin_request();
  // Error for a failed libnl call: errno from the kernel's NLMSG_ERROR when
  // one arrived during this request, otherwise nl_error_to_errno(nle); the
  // context holds `what`, libnl's nl_geterror text and the kernel's extended
  // ack message when there was one.
  Error error(int nle, std::string what) const;

  // Errors from deletions done in VethPair destructors that used this
  // socket (destructors cannot return them). Kept up to kMaxDeferred.
  static constexpr size_t kMaxDeferred = 1024;
  void record_deferred(Error e);
  std::vector<Error> take_deferred_errors();
  uint64_t deferred_dropped() const;

  // Implementation detail (named here for libnl's error callback).
  struct State;

 private:
  struct Free {
    void operator()(nl_sock* s) const;
  };
  static Result<NlSocket> connect_here();

  std::unique_ptr<nl_sock, Free> sock_;
  // Heap state: its address is handed to libnl's error callback, so it must
  // not move when the NlSocket does.
  std::unique_ptr<State> state_;
};

// A veth pair: `name` in the hub socket's namespace, `peer_name` moved into
// peer_ns at creation (IFLA_NET_NS_FD; drivers/net/veth.c veth_newlink reads
// the peer's tb and rtnl_link_get_net_capable moves it).
//
// The hub NlSocket must outlive the pair: the destructor deletes the hub-side
// link through it. ENODEV there is success — tearing down peer_ns deletes
// both ends (net/core/dev.c default_device_exit_batch → veth_dellink queues
// the peer too). Other failures go to hub.record_deferred().
class VethPair {
 public:
  static Result<VethPair> create(NlSocket& hub, std::string name, std::string peer_name,
                                 const NetNamespace& peer_ns);

  VethPair() = default;
  VethPair(VethPair&& o) noexcept;
  // Deletes the hub-side link this held before taking the other's.
  VethPair& operator=(VethPair&& o) noexcept;
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;
  ~VethPair();

  bool valid() const { return hub_ != nullptr; }
  const std::string& name() const { return name_; }
  const std::string& peer_name() const { return peer_name_; }
  int ifindex() const { return ifindex_; }
  // Deletes the hub-side link now. ENODEV (already gone) is success.
  Result<void> destroy();
  // Forgets the link without deleting it: for when peer_ns teardown is what
  // removes it (an explicit RTM_DELLINK costs ~15 ms here, KERNEL-NOTES: the
  // unregister waits for RCU grace periods, net/core/dev.c
  // unregister_netdevice_many_notify → synchronize_net).
  void release();

 private:
  NlSocket* hub_ = nullptr;
  std::string name_;
  std::string peer_name_;
  int ifindex_ = 0;
};

// What the kernel reports about a link (a subset of RTM_NEWLINK).
struct LinkInfo {
  int ifindex = 0;
  std::string name;
  unsigned flags = 0;  // IFF_*
  unsigned mtu = 0;
  int master = 0;         // IFLA_MASTER (bridge) or 0
  int link = 0;           // IFLA_LINK: a veth's peer ifindex (in the peer's ns)
  int link_netnsid = -1;  // IFLA_LINK_NETNSID or -1
  std::string kind;       // IFLA_INFO_KIND ("veth", "bridge", "" for lo)
};

Result<int> link_index(NlSocket& sock, const std::string& name);
Result<LinkInfo> get_link(NlSocket& sock, int ifindex);
Result<LinkInfo> get_link(NlSocket& sock, const std::string& name);
Result<void> set_link_up(NlSocket& sock, int ifindex, bool up);
Result<void> set_link_up(NlSocket& sock, const std::string& name, bool up);
Result<void> set_mtu(NlSocket& sock, int ifindex, unsigned mtu);
Result<void> delete_link(NlSocket& sock, int ifindex);
// A bridge; returns its ifindex.
Result<int> create_bridge(NlSocket& sock, const std::string& name);
Result<void> enslave(NlSocket& sock, int ifindex, int bridge_ifindex);

// "10.1.2.3/24" or "fd00::1/64" (no prefix: host address).
Result<void> add_address(NlSocket& sock, int ifindex, const std::string& cidr);
// The link's addresses as "addr/prefix", IPv4 and IPv6.
Result<std::vector<std::string>> list_addresses(NlSocket& sock, int ifindex);

// A route in the main table: dst is a CIDR or "default"; at least one of
// gateway and ifindex. The family comes from dst (or the gateway for
// "default"). mtu sets RTAX_MTU.
struct RouteVia {
  std::string gateway;  // empty: on-link via ifindex
  int ifindex = 0;
};
Result<void> add_route(NlSocket& sock, const std::string& dst, const RouteVia& via,
                       std::optional<unsigned> mtu = std::nullopt);

}  // namespace krepro::kernel
