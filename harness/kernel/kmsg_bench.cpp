#include <benchmark/benchmark.h>

#include "harness/kernel/kmsg.h"

namespace {

void BM_ParseKmsgRecord(benchmark::State& state) {
  const std::string raw =
      "4,81234,1234567890,-;unregister_netdevice: waiting for lo to become free. Usage count "
      "= 1\n";
  for (auto _ : state) {
    auto r = krepro::kernel::parse_kmsg_record(raw);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseKmsgRecord);

void BM_ParseKmsgRecordWithDict(benchmark::State& state) {
  const std::string raw =
      "6,81235,1234567999,-,caller=T12;IPv6: ADDRCONF(NETDEV_CHANGE): veth1a2b3c: link becomes "
      "ready\n SUBSYSTEM=net\n DEVICE=n42\n";
  for (auto _ : state) {
    auto r = krepro::kernel::parse_kmsg_record(raw);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseKmsgRecordWithDict);

}  // namespace
