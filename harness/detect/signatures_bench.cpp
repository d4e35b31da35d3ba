#include <benchmark/benchmark.h>

#include "harness/detect/log_scan.h"
#include "harness/detect/signatures.h"

namespace {

using krepro::detect::SignatureMatcher;

void run_line(benchmark::State& state, const char* line) {
  SignatureMatcher m;
  for (auto _ : state) {
    auto ev = m.feed(line, 1.0);
    benchmark::DoNotOptimize(ev);
  }
}

// The common case: a line that matches nothing.
void BM_MatchNonMatching(benchmark::State& state) {
  run_line(state, "IPv6: ADDRCONF(NETDEV_CHANGE): veth3f2a1b9: link becomes ready");
}
BENCHMARK(BM_MatchNonMatching);

void BM_MatchNonMatchingLong(benchmark::State& state) {
  run_line(state,
           "audit: type=1400 audit(1700000000.123:456): apparmor=\"DENIED\" operation=\"open\" "
           "profile=\"cri-containerd.apparmor.d\" name=\"/proc/sys/kernel/random/boot_id\" "
           "pid=12345 comm=\"runc:[2:INIT]\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0");
}
BENCHMARK(BM_MatchNonMatchingLong);

void BM_MatchNetdevUnregister(benchmark::State& state) {
  run_line(state, "unregister_netdevice: waiting for lo to become free. Usage count = 1");
}
BENCHMARK(BM_MatchNetdevUnregister);

void BM_MatchSlub(benchmark::State& state) {
  run_line(state, "SLUB: Unable to allocate memory on node -1 (gfp=0x8020)");
}
BENCHMARK(BM_MatchSlub);

// Whole pipeline per line: classify (dmesg prefix) + match.
void BM_ClassifyAndMatchDmesg(benchmark::State& state) {
  SignatureMatcher m;
  bool in_kmsg = false;
  std::string line = "[ 1234.567890] br0: port 1(veth3f2a1b9) entered forwarding state";
  for (auto _ : state) {
    auto l = krepro::detect::classify_log_line(line, &in_kmsg);
    auto ev = m.feed(l.message, l.ts_s);
    benchmark::DoNotOptimize(ev);
  }
}
BENCHMARK(BM_ClassifyAndMatchDmesg);

}  // namespace
