// netns-churn: pod network namespaces with a veth pair into the run's hub
// (optionally a bridge and addresses) and a job inside; destroyed by
// dropping the namespace (the kernel tears the veth down in cleanup_net) or
// by deleting the link first.
#include <arpa/inet.h>

#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "harness/engine/actor.h"
#include "harness/engine/churn_common.h"
#include "harness/engine/hub.h"
#include "harness/engine/registry.h"
#include "harness/engine/scenario.h"
#include "harness/engine/timeline.h"
#include "harness/kernel/job.h"
#include "harness/kernel/link.h"
#include "harness/kernel/netns.h"
#include "harness/util/fs.h"

namespace krepro::engine {

namespace {

class NetnsChurn final : public ChurnActor {
 public:
  explicit NetnsChurn(const CompiledActor& c) : ChurnActor(c.name, c.params, "netns") {
    veth_ = p_.get_bool("veth");
    bridge_ = p_.get_bool("bridge") && veth_;
    pmtu_ = p_.get_bool("pmtu") && veth_;
    addresses_ = addresses_ || pmtu_;
    bridge_ = bridge_ || pmtu_;
    delete_link_ = p_.get_string("teardown") == "delete-link";
    payload_ = payload_from_params(p_);
  }

  Result<void> prepare(RunContext& ctx) override {
    link_deadline_ns_ = ctx.options->get_int("link_delete_deadline");
    if (!veth_) return {};
    auto hub = ctx.hub();
    KREPRO_TRY_CTX(hub, "netns-churn " + name_);
    hub_ = *hub;
    if (bridge_) {
      auto sock = kernel::NlSocket::connect_in(hub_->ns());
      KREPRO_TRY_CTX(sock, "hub netlink");
      std::string br = "krepro-br" + std::to_string(bridge_seq_.fetch_add(1));
      auto idx = kernel::link_index(*sock, br);
      if (idx) {
        bridge_ifindex_ = *idx;
      } else {
        auto made = kernel::create_bridge(*sock, br);
        KREPRO_TRY_CTX(made, "bridge in hub");
        bridge_ifindex_ = *made;
        KREPRO_TRY(kernel::set_link_up(*sock, br, true));
        if (addresses_) KREPRO_TRY(kernel::add_address(*sock, bridge_ifindex_, "10.199.0.1/16"));
      }
    }
    if (pmtu_) KREPRO_TRY_CTX(setup_far_side(), "pmtu path");
    return {};
  }

  // The path net/pmtu.sh's cleanup_ipv4_exception builds: pod (MTU 1500)
  // → hub (router, forwarding on) → far namespace over a link of MTU 1280.
  // Pods send DF datagrams of 1400 bytes to the far side; the hub answers
  // ICMP_FRAG_NEEDED and each pod records a route exception for it.
  Result<void> setup_far_side() {
    auto far = kernel::NetNamespace::create();
    KREPRO_TRY(far);
    far_ = std::move(*far);
    auto sock = kernel::NlSocket::connect_in(hub_->ns());
    KREPRO_TRY(sock);
    auto v = kernel::VethPair::create(*sock, "krepro-far", "eth0", far_);
    KREPRO_TRY(v);
    KREPRO_TRY(kernel::set_mtu(*sock, v->ifindex(), 1280));
    KREPRO_TRY(kernel::add_address(*sock, v->ifindex(), "10.201.0.1/24"));
    KREPRO_TRY(kernel::set_link_up(*sock, "krepro-far", true));
    v->release();  // dies with the hub and the far namespace
    Result<void> inner;
    auto r = kernel::run_in_netns(far_, [&] {
      auto fs = kernel::NlSocket::connect();
      if (!fs) {
        inner = Unexpected(fs.error());
        return;
      }
      auto idx = kernel::link_index(*fs, "eth0");
      if (!idx) {
        inner = Unexpected(idx.error());
        return;
      }
      if (auto m = kernel::set_mtu(*fs, *idx, 1280); !m)
        inner = Unexpected(m.error());
      else if (auto a = kernel::add_address(*fs, *idx, "10.201.0.2/24"); !a)
        inner = Unexpected(a.error());
      else if (auto u = kernel::set_link_up(*fs, "eth0", true); !u)
        inner = Unexpected(u.error());
      else if (auto rt = kernel::add_route(*fs, "10.199.0.0/16", {"10.201.0.1", 0}); !rt)
        inner = Unexpected(rt.error());
    });
    KREPRO_TRY(r);
    KREPRO_TRY(inner);
    // net.ipv4.ip_forward is per namespace; /proc/sys/net resolves the
    // namespace of the opening task (net/sysctl_net.c net_ctl_header_lookup).
    Result<void> fwd;
    KREPRO_TRY(kernel::run_in_netns(
        hub_->ns(), [&] { fwd = fs::write_file("/proc/sys/net/ipv4/ip_forward", "1"); }));
    KREPRO_TRY(fwd);
    payload_.kind = workloads::PayloadKind::kPmtu;
    payload_.pmtu_dst = htonl((10u << 24) | (201u << 16) | 2u);
    return {};
  }

  void contribute(RunStats& s) override {
    auto& ns = s.churn["netns"];
    auto& ve = s.churn["veth"];
    for (auto& w : stats_) {
      ns.created += w.created;
      ns.destroyed += w.destroyed;
      ve.created += veth_created_w(w);
      ve.destroyed += veth_destroyed_w(w);
      for (auto& [k, v] : w.errors) {
        bool is_veth = k.rfind("veth", 0) == 0;
        (is_veth ? ve : ns).errors[k] += v;
      }
      for (auto& [op, h] : w.lat) {
        bool is_veth = op.rfind("veth_", 0) == 0;
        s.merge_latency(is_veth ? "veth." + op.substr(5) : "netns." + op, h);
      }
    }
    std::lock_guard<std::mutex> lk(teardown_->mu);
    s.merge_latency("netns.teardown", teardown_->hist);
    // Dropped namespaces whose hub-side veth the kernel deleted.
    ve.destroyed += teardown_->hist.count();
    s.use_feature("netns");
    if (veth_) s.use_feature("veth");
    if (slow_deletes_ > 0) {
      s.findings.push_back({{"id", "slow-link-delete"},
                            {"detector", "netns-teardown"},
                            {"bug", "netdev-refcount-leak"},
                            {"verdict", "suspect"},
                            {"evidence",
                             {{"deletes_over_deadline", slow_deletes_},
                              {"deadline_ms", link_deadline_ns_ / 1'000'000}}}});
    }
  }

 private:
  struct Pod {
    kernel::NetNamespace ns;
    kernel::VethPair veth;
    kernel::Job job;
  };
  static uint64_t veth_created_w(const WorkerStats& w) {
    auto it = w.lat.find("veth_create");
    return it == w.lat.end() ? 0 : it->second.count();
  }
  uint64_t veth_destroyed_w(const WorkerStats& w) const {
    // Explicit deletes are counted per worker; teardown-freed ones once.
    auto it = w.lat.find("veth_delete");
    return it == w.lat.end() ? 0 : it->second.count();
  }

  bool create_one(RunContext& ctx, WorkerStats& st, kernel::NlSocket* hub_sock,
                  kernel::NetnsFactory& factory, std::deque<Pod>& pods, uint64_t seq) {
    Pod pod;
    int64_t t0 = mono_ns();
    auto ns = factory.create();
    int64_t t1 = mono_ns();
    if (!ns) {
      note_error(ctx, st, "create", ns.error());
      return false;
    }
    st.h("create").record(t1 - t0);
    pod.ns = std::move(*ns);
    ++st.created;
    progress_->created.fetch_add(1, std::memory_order_relaxed);
    if (veth_ && hub_sock) {
      // Hub-side names must fit IFNAMSIZ (15): they live only in the run's
      // own hub namespace, so the run id is not needed to tell them apart.
      char name[16];
      std::snprintf(name, sizeof name, "krv%x", static_cast<unsigned>(seq & 0xfffffff));
      auto v = kernel::VethPair::create(*hub_sock, name, "eth0", pod.ns);
      int64_t t2 = mono_ns();
      if (!v) {
        note_error(ctx, st, "veth_create", v.error());
      } else {
        st.h("veth_create").record(t2 - t1);
        pod.veth = std::move(*v);
        if (bridge_ifindex_ > 0) {
          auto r = kernel::enslave(*hub_sock, pod.veth.ifindex(), bridge_ifindex_);
          if (!r) note_error(ctx, st, "veth_enslave", r.error());
        }
        if (bridge_ || addresses_) {
          auto r = kernel::set_link_up(*hub_sock, pod.veth.name(), true);
          if (!r) note_error(ctx, st, "veth_up", r.error());
        }
        if (addresses_) configure_pod(ctx, st, pod, seq);
      }
    }
    kernel::JobPlacement where;
    where.netns_fd = pod.ns.fd();
    const workloads::PayloadSpec& spec = payload_;
    int64_t t3 = mono_ns();
    auto body = [&spec] { return workloads::run_payload(spec, ""); };
    auto job = short_payload(spec) ? kernel::Job::vfork_payload(where, body)
                                   : kernel::Job::fork_payload(where, body);
    st.h("job_start").record(mono_ns() - t3);
    if (!job)
      note_error(ctx, st, "fork", job.error());
    else
      pod.job = std::move(*job);
    progress_->add_alive();
    progress_->note_latency(mono_ns() - t0);
    pods.push_back(std::move(pod));
    return true;
  }

  // eth0 up with an address in the pod, from inside the pod's namespace.
  void configure_pod(RunContext& ctx, WorkerStats& st, Pod& pod, uint64_t seq) {
    int64_t t0 = mono_ns();
    auto r = kernel::run_in_netns(pod.ns, [&] {
      auto sock = kernel::NlSocket::connect();
      if (!sock) {
        note_error(ctx, st, "veth_addr", sock.error());
        return;
      }
      auto idx = kernel::link_index(*sock, "eth0");
      if (!idx) {
        note_error(ctx, st, "veth_addr", idx.error());
        return;
      }
      unsigned host = static_cast<unsigned>(seq % 65000) + 2;
      std::string cidr =
          "10.199." + std::to_string(host / 256) + "." + std::to_string(host % 256) + "/16";
      auto a = kernel::add_address(*sock, *idx, cidr);
      if (!a) note_error(ctx, st, "veth_addr", a.error());
      auto u = kernel::set_link_up(*sock, "eth0", true);
      if (!u) note_error(ctx, st, "veth_up", u.error());
      if (pmtu_) {
        auto rt = kernel::add_route(*sock, "default", {"10.199.0.1", 0});
        if (!rt) note_error(ctx, st, "veth_route", rt.error());
      }
    });
    if (!r) note_error(ctx, st, "veth_addr", r.error());
    st.h("veth_configure").record(mono_ns() - t0);
  }

  void destroy_one(RunContext& ctx, WorkerStats& st, kernel::NlSocket* hub_sock, Pod& pod) {
    if (pod.job.pid() > 0) {
      if (ctx.stop->hard()) pod.job.kill_and_reap();
      int64_t t0 = mono_ns();
      auto code = pod.job.wait();
      st.h("job_wait").record(mono_ns() - t0);
      if (code && *code != 0) ++st.errors["job:exit" + std::to_string(*code)];
    }
    if (pod.veth.valid() && delete_link_ && hub_sock) {
      int64_t t0 = mono_ns();
      auto r = pod.veth.destroy();
      int64_t d = mono_ns() - t0;
      if (!r)
        note_error(ctx, st, "veth_delete", r.error());
      else
        st.h("veth_delete").record(d);
      // net/pmtu.sh treats a delete slower than a second as a sign of a
      // leaked reference (the cleanup_ipv4_exception test).
      if (d > link_deadline_ns_) {
        std::lock_guard<std::mutex> lk(slow_mu_);
        if (slow_deletes_++ < 20)
          ctx.events->emit("slow_link_delete",
                           {{"actor", name_}, {"ms", d / 1e6}, {"link", pod.veth.name()}});
      }
    }
    if (pod.veth.valid() && hub_) {
      // Teardown by dropping the namespace: watch the hub-side end.
      int ifindex = pod.veth.ifindex();
      pod.veth.release();
      progress_->pending.fetch_add(1, std::memory_order_relaxed);
      hub_->watch(ifindex, mono_ns(), [prog = progress_, td = teardown_](int64_t lag) {
        prog->pending.fetch_sub(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lk(td->mu);
        td->hist.record(static_cast<uint64_t>(std::max<int64_t>(lag, 0)));
      });
    }
    int64_t t1 = mono_ns();
    pod.ns.reset();  // last fd: the kernel queues the namespace for cleanup_net
    st.h("drop").record(mono_ns() - t1);
    ++st.destroyed;
    progress_->destroyed.fetch_add(1, std::memory_order_relaxed);
    progress_->alive.fetch_sub(1, std::memory_order_relaxed);
  }

  void worker(RunContext& ctx, int w) override {
    WorkerStats& st = stats_[w];
    auto factory = kernel::NetnsFactory::start();
    if (!factory) {
      note_error(ctx, st, "create", factory.error());
      return;
    }
    std::optional<kernel::NlSocket> hub_sock;
    if (hub_) {
      auto s = kernel::NlSocket::connect_in(hub_->ns());
      if (!s) {
        note_error(ctx, st, "veth_create", s.error());
        return;
      }
      hub_sock = std::move(*s);
    }
    kernel::NlSocket* hs = hub_sock ? &*hub_sock : nullptr;
    std::deque<Pod> pods;
    int64_t target = alive_target(w);
    Pacer pacer(p_.get_double("rate"), workers_, mono_ns());
    while (ctx.phase_running()) {
      if (static_cast<int64_t>(pods.size()) >= target) {
        destroy_one(ctx, st, hs, pods.front());
        pods.pop_front();
        continue;
      }
      if (!want_more()) break;
      pacer.wait(ctx.phase_deadline_ns.load());
      if (!create_one(ctx, st, hs, *factory, pods, next_seq()))
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    while (!pods.empty()) {
      destroy_one(ctx, st, hs, pods.front());
      pods.pop_front();
    }
  }

  bool veth_ = true, bridge_ = false, addresses_ = false, delete_link_ = false, pmtu_ = false;
  kernel::NetNamespace far_;
  workloads::PayloadSpec payload_;
  Hub* hub_ = nullptr;
  int bridge_ifindex_ = 0;
  int64_t link_deadline_ns_ = 1'000'000'000;
  static inline std::atomic<int> bridge_seq_{0};
  // Teardown lags, recorded by hub callbacks that may run after this actor
  // is gone (a namespace freed late): shared with them.
  struct Teardown {
    std::mutex mu;
    Histogram hist;
  };
  std::shared_ptr<Teardown> teardown_ = std::make_shared<Teardown>();
  std::mutex slow_mu_;
  uint64_t slow_deletes_ = 0;
};

}  // namespace

ActorType netns_churn_type() {
  ActorType t;
  t.name = "netns-churn";
  t.help = "create pod network namespaces with a veth pair into the hub and a job; destroy them";
  t.params = churn_param_specs(50);
  auto pay = payload_param_specs("sockets");
  t.params.insert(t.params.end(), pay.begin(), pay.end());
  t.params.push_back({"veth", ParamType::kBool, "true", 0, 0, "a veth pair per namespace"});
  t.params.push_back(
      {"bridge", ParamType::kBool, "false", 0, 0, "enslave hub-side ends to a bridge"});
  t.params.push_back(
      {"addresses", ParamType::kBool, "false", 0, 0, "IPv4 address on eth0 in each pod"});
  t.params.push_back(
      {"pmtu", ParamType::kBool, "false", 0, 0,
       "route exceptions as net/pmtu.sh makes them: DF traffic from every CPU to a far "
       "namespace behind a 1280-MTU link (implies bridge and addresses)"});
  t.params.push_back({"teardown",
                      ParamType::kEnum,
                      "drop-ns",
                      0,
                      0,
                      "drop-ns: close the namespace (kernel deletes the veth); delete-link: "
                      "delete the veth first",
                      {"drop-ns", "delete-link"}});
  t.requires_features = {"root", "netns"};
  t.make = [](const CompiledActor& c) { return std::make_unique<NetnsChurn>(c); };
  return t;
}

}  // namespace krepro::engine
