#include "workloads/op_recorder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

namespace krepro::workloads {
namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kT0 = 1'000 * kSec;  // an arbitrary recorder start

uint64_t exact_quantile(std::vector<uint64_t> v, double q) {
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::max<size_t>(rank, 1) - 1];
}

void expect_within_1pct(uint64_t got, uint64_t want, const char* what) {
  EXPECT_LE(std::abs(static_cast<double>(got) - static_cast<double>(want)),
            0.01 * static_cast<double>(want))
      << what << ": got " << got << " want " << want;
}

TEST(OpRecorder, QuantilesWithinOnePercentOfExact) {
  OpRecorder rec("s", kT0);
  std::mt19937_64 rng(42);
  // Log-normal latencies around 200 µs with a long tail, like fdatasync.
  std::lognormal_distribution<double> dist(std::log(200'000.0), 0.8);
  std::vector<uint64_t> vals;
  int64_t t = kT0;
  for (int i = 0; i < 200'000; ++i) {
    auto d = static_cast<uint64_t>(dist(rng)) + 1;
    vals.push_back(d);
    rec.record(Op::kFdatasync, t, t + static_cast<int64_t>(d));
    t += 1000;  // all within the first second: no stalls matter here
  }
  const Histogram& h = rec.histogram(Op::kFdatasync);
  ASSERT_EQ(h.count(), vals.size());
  for (double q : kFioPercentiles) {
    expect_within_1pct(h.quantile(q / 100), exact_quantile(vals, q / 100), "quantile");
  }
  EXPECT_EQ(h.max(), *std::max_element(vals.begin(), vals.end()));
  EXPECT_EQ(h.min(), *std::min_element(vals.begin(), vals.end()));
  EXPECT_EQ(rec.count(Op::kWrite), 0u);
}

TEST(OpRecorder, IntervalsRollOverBySecondOfCompletion) {
  OpRecorder rec("s", kT0);
  // Second 0: 100 ops of 10 µs and one of 1 ms. Second 1: none. Second 2:
  // 50 ops of 20 µs, the first of which started in second 1.
  for (int i = 0; i < 100; ++i) rec.record(Op::kWrite, kT0 + i, kT0 + i + 10'000);
  rec.record(Op::kWrite, kT0 + 500'000'000, kT0 + 501'000'000);
  for (int i = 0; i < 50; ++i) {
    const int64_t end = kT0 + 2 * kSec + 1'000 + i;
    rec.record(Op::kWrite, end - 20'000, end);
  }
  auto iv = rec.intervals(Op::kWrite);
  ASSERT_EQ(iv.size(), 3u);
  EXPECT_EQ(iv[0].second, 0);
  EXPECT_EQ(iv[0].count, 101u);
  expect_within_1pct(iv[0].p50_ns, 10'000, "p50 s0");
  expect_within_1pct(iv[0].p99_ns, 10'000, "p99 s0");
  EXPECT_EQ(iv[0].max_ns, 1'000'000u);
  EXPECT_EQ(iv[1].count, 0u);
  EXPECT_EQ(iv[2].count, 50u);
  expect_within_1pct(iv[2].p99_ns, 20'000, "p99 s2");
  // The whole-run histogram holds all of them.
  EXPECT_EQ(rec.count(Op::kWrite), 151u);
  // finish() closes the open second without changing the series.
  rec.finish(kT0 + 3 * kSec);
  auto iv2 = rec.intervals(Op::kWrite);
  ASSERT_EQ(iv2.size(), 3u);
  EXPECT_EQ(iv2[2].count, 50u);
}

TEST(OpRecorder, StallThreshold) {
  OpRecorder rec("raft_log", kT0);
  rec.record(Op::kFdatasync, kT0, kT0 + 99'999'999, "a.log");   // under 100 ms
  rec.record(Op::kFdatasync, kT0, kT0 + 100'000'000, "b.log");  // at: a stall
  rec.record(Op::kFlush, kT0, kT0 + 5 * kSec, "c.sst");         // composite: never
  ASSERT_EQ(rec.stall_count(), 1u);
  ASSERT_EQ(rec.stalls().size(), 1u);
  const StallEvent& s = rec.stalls()[0];
  EXPECT_EQ(s.op, Op::kFdatasync);
  EXPECT_EQ(s.start_ns, kT0);
  EXPECT_EQ(s.duration_ns, 100'000'000);
  EXPECT_EQ(s.stream, "raft_log");
  EXPECT_EQ(s.file, "b.log");

  rec.set_stall_threshold_ns(1'000'000);
  rec.record(Op::kWrite, kT0, kT0 + 2'000'000, "d.log");
  EXPECT_EQ(rec.stall_count(), 2u);
  rec.set_stall_threshold_ns(Op::kFlush, kSec);
  rec.record(Op::kFlush, kT0, kT0 + 2 * kSec, "e.sst");
  EXPECT_EQ(rec.stall_count(), 3u);
  // Deleting a rotated log is background work: slow, recorded, no stall.
  rec.record(Op::kUnlink, kT0, kT0 + 200'000'000, "old.log");
  EXPECT_EQ(rec.stall_count(), 3u);
}

TEST(OpRecorder, StallListIsBoundedButCounted) {
  OpRecorder rec("s", kT0);
  rec.set_max_stalls(3);
  for (int i = 0; i < 10; ++i) rec.record(Op::kFsync, kT0, kT0 + kSec / 5);
  EXPECT_EQ(rec.stall_count(), 10u);
  EXPECT_EQ(rec.stalls().size(), 3u);
}

TEST(OpRecorder, MergeCombinesHistogramsAndSecondsExactly) {
  OpRecorder a("a", kT0), b("b", kT0);
  std::vector<uint64_t> sec1;
  // Only a has an op in second 0 (ops are recorded in completion order).
  a.record(Op::kWrite, kT0, kT0 + 1'000);
  // Second 1: a has 99 fast ops, b has 99 slow ones; the merged p99 must be
  // the p99 of all 198, i.e. slow, and the p50 must come from the union.
  for (int i = 0; i < 99; ++i) {
    const int64_t end = kT0 + kSec + 10 + i;
    a.record(Op::kWrite, end - 5'000, end);
    b.record(Op::kWrite, end - 900'000, end);
    sec1.push_back(5'000);
    sec1.push_back(900'000);
  }
  // Only b has ops in second 3.
  b.record(Op::kWrite, kT0 + 3 * kSec, kT0 + 3 * kSec + 7'000);
  b.record(Op::kFsync, kT0 + 3 * kSec, kT0 + 3 * kSec + 200'000'000, "f");
  a.finish(kT0 + 4 * kSec);
  // b is left open: merge must include its open interval.
  a.merge(b);
  EXPECT_EQ(a.count(Op::kWrite), 99u * 2 + 2);
  EXPECT_EQ(a.count(Op::kFsync), 1u);
  auto iv = a.intervals(Op::kWrite);
  ASSERT_EQ(iv.size(), 4u);
  EXPECT_EQ(iv[0].count, 1u);
  EXPECT_EQ(iv[1].count, 198u);
  expect_within_1pct(iv[1].p99_ns, exact_quantile(sec1, 0.99), "merged p99");
  expect_within_1pct(iv[1].p50_ns, exact_quantile(sec1, 0.50), "merged p50");
  EXPECT_EQ(iv[1].max_ns, 900'000u);
  EXPECT_EQ(iv[2].count, 0u);
  EXPECT_EQ(iv[3].count, 1u);
  EXPECT_EQ(a.stall_count(), 1u);
  ASSERT_EQ(a.stalls().size(), 1u);
  EXPECT_EQ(a.stalls()[0].stream, "b");
}

TEST(OpRecorder, MergeAlignsDifferentStarts) {
  OpRecorder a("a", kT0), b("b", kT0 + 2 * kSec);
  a.record(Op::kRead, kT0 + 10, kT0 + 20);                        // a's second 0
  b.record(Op::kRead, kT0 + 2 * kSec + 10, kT0 + 2 * kSec + 20);  // b's 0 = a's 2
  a.merge(b);
  auto iv = a.intervals(Op::kRead);
  ASSERT_EQ(iv.size(), 3u);
  EXPECT_EQ(iv[0].count, 1u);
  EXPECT_EQ(iv[1].count, 0u);
  EXPECT_EQ(iv[2].count, 1u);
}

TEST(OpRecorder, SelfMergeDoubles) {
  OpRecorder a("a", kT0);
  a.record(Op::kWrite, kT0, kT0 + 10);
  a.record(Op::kWrite, kT0, kT0 + 200'000'000);  // a stall
  a.merge(a);
  EXPECT_EQ(a.count(Op::kWrite), 4u);
  EXPECT_EQ(a.stall_count(), 2u);
  EXPECT_EQ(a.stalls().size(), 2u);
  auto iv = a.intervals(Op::kWrite);
  ASSERT_EQ(iv.size(), 1u);
  EXPECT_EQ(iv[0].count, 4u);
}

TEST(OpRecorder, JsonHasFioShape) {
  OpRecorder rec("kv_wal", kT0);
  for (int i = 1; i <= 1000; ++i) rec.record(Op::kFdatasync, kT0, kT0 + i * 1000);
  rec.record(Op::kWrite, kT0, kT0 + 150'000'000, "wal-000001.log");
  rec.finish(kT0 + 2 * kSec);
  nlohmann::json j = rec.to_json();
  EXPECT_EQ(j["stream"], "kv_wal");
  EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 2.0);
  const auto& fd = j["ops"]["fdatasync"];
  EXPECT_EQ(fd["count"], 1000);
  EXPECT_DOUBLE_EQ(fd["iops"].get<double>(), 500.0);
  const auto& lat = fd["lat_ns"];
  EXPECT_EQ(lat["min"], 1000);
  EXPECT_EQ(lat["max"], 1'000'000);
  EXPECT_NEAR(lat["mean"].get<double>(), 500'500.0, 1.0);
  EXPECT_GT(lat["stddev"].get<double>(), 0);
  const auto& pct = lat["percentile"];
  EXPECT_EQ(pct.size(), kFioPercentiles.size());
  for (const char* k : {"1.000000", "50.000000", "90.000000", "99.000000", "99.900000", "99.990000",
                        "99.500000", "99.950000"}) {
    EXPECT_TRUE(pct.contains(k)) << k;
  }
  expect_within_1pct(pct["50.000000"].get<uint64_t>(), 500'000, "p50");
  expect_within_1pct(pct["99.000000"].get<uint64_t>(), 990'000, "p99");
  EXPECT_EQ(fd["intervals"]["count"], nlohmann::json::array({1000}));
  EXPECT_FALSE(j["ops"].contains("fsync"));  // empty kinds are left out
  EXPECT_EQ(j["stalls"]["count"], 1);
  EXPECT_EQ(j["stalls"]["events"][0]["op"], "write");
  EXPECT_EQ(j["stalls"]["events"][0]["file"], "wal-000001.log");
  EXPECT_EQ(j["stalls"]["events"][0]["duration_ns"], 150'000'000);
}

}  // namespace
}  // namespace krepro::workloads
