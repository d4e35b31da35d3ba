#include <benchmark/benchmark.h>

#include <random>

#include "harness/util/clock.h"
#include "harness/util/histogram.h"

namespace {

void BM_HistogramRecord(benchmark::State& state) {
  krepro::Histogram h;
  std::mt19937_64 rng(1);
  std::vector<uint64_t> vals(4096);
  for (auto& v : vals) v = rng() % 10'000'000;
  size_t i = 0;
  for (auto _ : state) {
    h.record(vals[i++ & 4095]);
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramRecord);

// What a timed op pays: two clock reads plus a record.
void BM_HistogramRecordWithClock(benchmark::State& state) {
  krepro::Histogram h;
  for (auto _ : state) {
    int64_t t0 = krepro::mono_ns();
    int64_t t1 = krepro::mono_ns();
    h.record(static_cast<uint64_t>(t1 - t0));
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramRecordWithClock);

void BM_HistogramMerge(benchmark::State& state) {
  krepro::Histogram a, b;
  for (uint64_t v = 0; v < 100000; ++v) b.record(v * 97);
  for (auto _ : state) a.merge(b);
}
BENCHMARK(BM_HistogramMerge);

void BM_HistogramQuantile(benchmark::State& state) {
  krepro::Histogram h;
  for (uint64_t v = 0; v < 100000; ++v) h.record(v * 97);
  for (auto _ : state) benchmark::DoNotOptimize(h.quantile(0.99));
}
BENCHMARK(BM_HistogramQuantile);

}  // namespace
