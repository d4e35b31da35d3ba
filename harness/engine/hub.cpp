#include "harness/engine/hub.h"

#include <limits>

#include "harness/util/clock.h"

namespace krepro::engine {

Result<std::unique_ptr<Hub>> Hub::create() {
  std::unique_ptr<Hub> h(new Hub());
  auto ns = kernel::NetNamespace::create();
  KREPRO_TRY_CTX(ns, "hub namespace");
  h->ns_ = std::move(*ns);
  Hub* raw = h.get();
  auto mon =
      kernel::LinkMonitor::start(h->ns_, [raw](const kernel::LinkEvent& e) { raw->on_event(e); });
  KREPRO_TRY_CTX(mon, "hub link monitor");
  h->monitor_ = std::move(*mon);
  return h;
}

Hub::~Hub() { monitor_.stop(); }

void Hub::on_event(const kernel::LinkEvent& e) {
  if (e.type != kernel::LinkEvent::Type::kDel) return;
  FreedFn fn;
  int64_t lag = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++counts_.dellinks;
    auto it = watches_.find(e.ifindex);
    if (it == watches_.end()) {
      if (early_dels_.size() < 100000) early_dels_[e.ifindex] = e.mono_ns;
      return;
    }
    lag = e.mono_ns - it->second.dropped_ns;
    fn = it->second.fn;
  }
  // The watch stays pending until its callback has run, so a waiter that
  // sees nothing pending also sees every callback's effect.
  if (fn) fn(lag);
  {
    std::lock_guard<std::mutex> lk(mu_);
    watches_.erase(e.ifindex);
    ++counts_.freed;
  }
  cv_.notify_all();
}

void Hub::watch(int ifindex, int64_t dropped_ns, FreedFn fn) {
  int64_t del_ns = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++counts_.watched;
    auto early = early_dels_.find(ifindex);
    if (early != early_dels_.end()) {
      del_ns = early->second;
      early_dels_.erase(early);
      ++counts_.freed_before_watch;
    } else {
      watches_[ifindex] = Watch{dropped_ns, std::move(fn)};
      return;
    }
  }
  if (fn) fn(del_ns - dropped_ns);
}

size_t Hub::pending() const {
  std::lock_guard<std::mutex> lk(mu_);
  return watches_.size();
}

int64_t Hub::oldest_pending_ns() const {
  std::lock_guard<std::mutex> lk(mu_);
  int64_t oldest = 0;
  for (const auto& [i, w] : watches_)
    if (oldest == 0 || w.dropped_ns < oldest) oldest = w.dropped_ns;
  return oldest;
}

bool Hub::wait_drained(int64_t deadline_ns) const {
  std::unique_lock<std::mutex> lk(mu_);
  while (!watches_.empty()) {
    int64_t left = deadline_ns - mono_ns();
    if (left <= 0) return false;
    cv_.wait_for(lk, std::chrono::nanoseconds(std::min<int64_t>(left, 100'000'000)));
  }
  return true;
}

}  // namespace krepro::engine
