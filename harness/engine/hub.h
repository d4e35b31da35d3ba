// The run's hub network namespace and its link monitor. Pod namespaces get
// one veth end; the other lives in the hub. When a pod namespace's last fd
// closes, net/core/net_namespace.c cleanup_net → default_device_exit_batch
// deletes its veth, which takes the hub-side peer with it
// (drivers/net/veth.c veth_dellink): the hub's RTM_DELLINK marks the
// namespace as freed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "harness/kernel/link_monitor.h"
#include "harness/kernel/netns.h"
#include "harness/util/result.h"

namespace krepro::engine {

class Hub {
 public:
  static Result<std::unique_ptr<Hub>> create();
  ~Hub();

  const kernel::NetNamespace& ns() const { return ns_; }

  // Teardown tracking: watch(ifindex) before dropping a namespace; the
  // callback runs on the monitor thread with the lag once the hub-side
  // link is deleted.
  using FreedFn = std::function<void(int64_t lag_ns)>;
  void watch(int ifindex, int64_t dropped_ns, FreedFn fn);
  // Dropped and not yet freed, with the oldest drop time.
  size_t pending() const;
  int64_t oldest_pending_ns() const;
  // Waits until nothing is pending or the deadline passes.
  bool wait_drained(int64_t deadline_ns) const;
  uint64_t overruns() const { return monitor_.overruns(); }
  struct Counts {
    uint64_t watched = 0, freed = 0, freed_before_watch = 0, dellinks = 0;
  };
  Counts counts() const {
    std::lock_guard<std::mutex> lk(mu_);
    return counts_;
  }

 private:
  Hub() = default;
  void on_event(const kernel::LinkEvent& e);

  kernel::NetNamespace ns_;
  kernel::LinkMonitor monitor_;
  struct Watch {
    int64_t dropped_ns;
    FreedFn fn;
  };
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::unordered_map<int, Watch> watches_;
  // A DELLINK that arrived before watch() (teardown raced the bookkeeping).
  std::unordered_map<int, int64_t> early_dels_;
  Counts counts_;
};

}  // namespace krepro::engine
