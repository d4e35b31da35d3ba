// Cost of OpRecorder::record(): alone (timestamps precomputed) and with the
// clock pair a caller takes around each op.
#include <benchmark/benchmark.h>

#include "harness/util/clock.h"
#include "workloads/op_recorder.h"

namespace krepro::workloads {
namespace {

// record() only: synthetic timestamps advancing 50 µs per op, so interval
// roll-overs happen at the real rate (one per 20,000 ops).
void BM_Record(benchmark::State& state) {
  OpRecorder rec("bench", 0);
  int64_t t = 0;
  uint64_t x = 88172645463325252ull;
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const int64_t d = 100'000 + static_cast<int64_t>(x & 0x3ffff);  // 100-360 µs
    rec.record(Op::kFdatasync, t, t + d);
    t += 50'000;
  }
  benchmark::DoNotOptimize(rec.count(Op::kFdatasync));
}
BENCHMARK(BM_Record);

// What a stream pays per op: two CLOCK_MONOTONIC reads (vDSO) plus record().
void BM_RecordWithClock(benchmark::State& state) {
  OpRecorder rec("bench");
  for (auto _ : state) {
    const int64_t t0 = mono_ns();
    const int64_t t1 = mono_ns();
    rec.record(Op::kWrite, t0, t1);
  }
  benchmark::DoNotOptimize(rec.count(Op::kWrite));
}
BENCHMARK(BM_RecordWithClock);

// The clock pair alone, to separate it from record().
void BM_ClockPair(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(mono_ns());
    benchmark::DoNotOptimize(mono_ns());
  }
}
BENCHMARK(BM_ClockPair);

}  // namespace
}  // namespace krepro::workloads
