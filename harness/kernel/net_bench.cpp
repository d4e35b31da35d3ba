// Micro-benchmarks of namespace and veth churn (needs root). Compare with
// KERNEL-NOTES "Raw rates": unshare+setns back 2,611/s; + veth with the
// peer in the root ns 1,105/s; teardown lag p50 39 ms / p99 71 ms.
//
//   net_bench --benchmark_filter=. --benchmark_repetitions=3
#include <benchmark/benchmark.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "harness/kernel/link.h"
#include "harness/kernel/link_monitor.h"
#include "harness/kernel/netns.h"
#include "harness/util/clock.h"
#include "harness/util/histogram.h"

namespace krepro::kernel {
namespace {

// Hub namespace, its route socket and a monitor recording RTM_DELLINK times.
struct Hub {
  NetNamespace ns;
  NlSocket sock;
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<int, int64_t> deleted;  // ifindex → mono_ns of RTM_DELLINK
  LinkMonitor monitor;                       // last: stopped before what its callback uses goes

  bool init(benchmark::State& state) {
    if (::geteuid() != 0) {
      state.SkipWithError("needs root");
      return false;
    }
    auto n = NetNamespace::create();
    if (!n) {
      state.SkipWithError(n.error().message().c_str());
      return false;
    }
    ns = std::move(*n);
    auto s = NlSocket::connect_in(ns);
    auto m = LinkMonitor::start(ns, [this](const LinkEvent& e) {
      if (e.type != LinkEvent::Type::kDel) return;
      std::lock_guard lock(mu);
      deleted[e.ifindex] = e.mono_ns;
      cv.notify_all();
    });
    if (!s || !m) {
      state.SkipWithError("hub socket/monitor failed");
      return false;
    }
    sock = std::move(*s);
    monitor = std::move(*m);
    return true;
  }
  // Waits for RTM_DELLINK of ifindex; returns its timestamp or 0 on timeout.
  int64_t wait_deleted(int ifindex, int timeout_ms = 30000) {
    std::unique_lock lock(mu);
    int64_t ts = 0;
    cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      auto it = deleted.find(ifindex);
      if (it == deleted.end()) return false;
      ts = it->second;
      return true;
    });
    return ts;
  }
};

std::string name_for(const char* prefix, uint64_t i) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%s%llx", prefix, static_cast<unsigned long long>(i));
  return buf;
}

// Baseline as KERNEL-NOTES measured it: unshare on the benchmark thread
// itself, keep the fd, setns back, close (arg 1: also bring lo up). Only
// for comparison: the library never moves its caller's thread.
void BM_RawUnshareSetns(benchmark::State& state) {
  auto home = NetNamespace::current();
  if (!home || ::geteuid() != 0) {
    state.SkipWithError("needs root");
    return;
  }
  for (auto _ : state) {
    if (::unshare(CLONE_NEWNET) != 0) {
      state.SkipWithError("unshare failed");
      break;
    }
    auto ns = NetNamespace::current();
    if (state.range(0)) (void)bring_loopback_up();
    if (::setns(home->fd(), CLONE_NEWNET) != 0) std::abort();  // cannot continue elsewhere
    benchmark::DoNotOptimize(ns);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawUnshareSetns)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(1.0)
    ->UseRealTime();

void BM_NetnsCreateThread(benchmark::State& state) {
  for (auto _ : state) {
    auto ns = NetNamespace::create();
    if (!ns) {
      state.SkipWithError(ns.error().message().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NetnsCreateThread)->Unit(benchmark::kMicrosecond)->MinTime(1.0)->UseRealTime();

void BM_NetnsCreateFactory(benchmark::State& state) {
  auto f = NetnsFactory::start(static_cast<size_t>(state.range(0)));
  if (!f) {
    state.SkipWithError(f.error().message().c_str());
    return;
  }
  for (auto _ : state) {
    auto ns = f->create();
    if (!ns) {
      state.SkipWithError(ns.error().message().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NetnsCreateFactory)
    ->Arg(1)
    ->Arg(2)
    ->Arg(8)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(1.0)
    ->UseRealTime();

// NetNamespace create + VethPair with the peer in it + close, the pod churn
// unit. Teardown happens asynchronously afterwards and is not timed; the
// pair is released (an explicit delete would wait ~15 ms per link).
// Arg: -1 raw unshare on the benchmark thread (the KERNEL-NOTES method),
// 0 NetNamespace::create (a thread each), N > 0 NetnsFactory with prefetch N.
void BM_NetnsVeth(benchmark::State& state) {
  Hub hub;
  if (!hub.init(state)) return;
  const int64_t mode = state.range(0);
  std::optional<NetnsFactory> f;
  if (mode > 0) {
    auto r = NetnsFactory::start(static_cast<size_t>(mode));
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      return;
    }
    f.emplace(std::move(*r));
  }
  auto home = NetNamespace::current();
  if (!home) {
    state.SkipWithError(home.error().message().c_str());
    return;
  }
  auto raw_create = [&]() -> Result<NetNamespace> {
    if (::unshare(CLONE_NEWNET) != 0) return errno_error("unshare");
    auto ns = NetNamespace::current();
    auto lo = bring_loopback_up();
    if (::setns(home->fd(), CLONE_NEWNET) != 0) std::abort();  // cannot continue elsewhere
    KREPRO_TRY(lo);
    return ns;
  };
  uint64_t i = 0;
  int last = 0;
  for (auto _ : state) {
    auto ns = mode > 0 ? f->create() : mode == 0 ? NetNamespace::create() : raw_create();
    if (!ns) {
      state.SkipWithError(ns.error().message().c_str());
      break;
    }
    auto v = VethPair::create(hub.sock, name_for("krp", i++), "eth0", *ns);
    if (!v) {
      state.SkipWithError(v.error().message().c_str());
      break;
    }
    last = v->ifindex();
    v->release();
  }
  state.SetItemsProcessed(state.iterations());
  // Let the backlog of teardowns drain before the next benchmark (the timed
  // loop is over here).
  if (last) hub.wait_deleted(last, 60000);
}
BENCHMARK(BM_NetnsVeth)
    ->Arg(-1)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(8)
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(1.0)
    ->UseRealTime();

// Teardown lag: last namespace fd closed → hub-side RTM_DELLINK, one
// namespace at a time (arg 0) or a batch of N closed back to back (arg N,
// lag measured from each one's close).
void BM_TeardownLag(benchmark::State& state) {
  Hub hub;
  if (!hub.init(state)) return;
  auto f = NetnsFactory::start();
  if (!f) {
    state.SkipWithError(f.error().message().c_str());
    return;
  }
  const int batch = static_cast<int>(state.range(0));
  Histogram lag;
  uint64_t i = 0, lost = 0;
  for (auto _ : state) {
    struct Pod {
      NetNamespace ns;
      int ifindex;
      int64_t closed;
    };
    std::vector<Pod> pods;
    for (int k = 0; k < std::max(batch, 1); ++k) {
      auto ns = f->create();
      if (!ns) {
        state.SkipWithError(ns.error().message().c_str());
        return;
      }
      auto v = VethPair::create(hub.sock, name_for("krl", i++), "eth0", *ns);
      if (!v) {
        state.SkipWithError(v.error().message().c_str());
        return;
      }
      pods.push_back({std::move(*ns), v->ifindex(), 0});
      v->release();
    }
    for (auto& p : pods) {
      p.closed = mono_ns();
      p.ns.reset();
    }
    for (auto& p : pods) {
      int64_t ts = hub.wait_deleted(p.ifindex);
      if (ts == 0) {
        ++lost;
        continue;
      }
      lag.record(static_cast<uint64_t>(ts - p.closed));
    }
  }
  state.counters["p50_ms"] = lag.quantile(0.50) / 1e6;
  state.counters["p99_ms"] = lag.quantile(0.99) / 1e6;
  state.counters["max_ms"] = lag.max() / 1e6;
  state.counters["samples"] = static_cast<double>(lag.count());
  state.counters["lost"] = static_cast<double>(lost);
  state.counters["overruns"] = static_cast<double>(hub.monitor.overruns());
}
BENCHMARK(BM_TeardownLag)->Arg(0)->Iterations(200)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TeardownLag)->Arg(200)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace krepro::kernel
