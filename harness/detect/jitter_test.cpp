#include "harness/detect/jitter.h"

#include <gtest/gtest.h>

namespace krepro::detect {
namespace {

using nlohmann::json;

json op(double p50_ms, double p99_ms, int count) {
  return {{"count", count},
          {"lat_ns", {{"percentile", {{"50.000000", p50_ms * 1e6}, {"99.000000", p99_ms * 1e6}}}}}};
}

json phases(double churn_p99_ms, int churn_count = 1000, double base_p99_ms = 1) {
  return json::array(
      {{{"name", "baseline"},
        {"actors", {{"tikv", {{"workload", {{"kv_wal.fdatasync", op(0.3, base_p99_ms, 1000)}}}}}}}},
       {{"name", "churn"},
        {"actors",
         {{"tikv", {{"workload", {{"kv_wal.fdatasync", op(0.3, churn_p99_ms, churn_count)}}}}}}}}});
}

TEST(Jitter, QuietRunReportsNothing) {
  EXPECT_TRUE(jitter_finding(phases(1.1), {}, nullptr, json::array(), 0).is_null());
}

TEST(Jitter, ShiftAloneIsSuspectWithRatios) {
  auto f = jitter_finding(phases(50), {}, nullptr, json::array(), 0);
  ASSERT_FALSE(f.is_null());
  EXPECT_EQ(f["verdict"], "suspect");
  ASSERT_EQ(f["evidence"]["latency_shifts"].size(), 1u);
  EXPECT_NEAR(f["evidence"]["latency_shifts"][0]["p99_ratio"].get<double>(), 50.0, 1e-9);
  EXPECT_TRUE(f["evidence"]["latency_shifts"][0]["counts"].get<bool>());
}

// What the CI host showed without any injection: a 2x p99 on 14 flushes and
// a 10 -> 21 ms fsync tail are the host's noise, not a finding.
TEST(Jitter, SmallSampleOrSubMillisecondShiftIsNoFinding) {
  EXPECT_TRUE(jitter_finding(phases(50, 14), {}, nullptr, json::array(), 0).is_null());
  EXPECT_TRUE(jitter_finding(phases(5), {}, nullptr, json::array(), 0).is_null());
  EXPECT_TRUE(jitter_finding(phases(20.9, 1000, 10.4), {}, nullptr, json::array(), 0).is_null());
  // Enough samples and a 30 ms jump counts.
  EXPECT_FALSE(jitter_finding(phases(40, 1000, 10), {}, nullptr, json::array(), 0).is_null());
}

TEST(Jitter, StallsListedWithTimesAnd5sClusters) {
  int64_t t0 = 1'000'000'000;
  std::vector<json> stalls = {{{"phase", "churn"},
                               {"start_ns", t0 + 12'000'000'000},
                               {"duration_ns", 5'030'000'000},
                               {"op", "fdatasync"}},
                              {{"phase", "churn"},
                               {"start_ns", t0 + 30'000'000'000},
                               {"duration_ns", 250'000'000},
                               {"op", "fsync"}}};
  auto f = jitter_finding(phases(1.0), stalls, nullptr, json::array(), t0);
  ASSERT_FALSE(f.is_null());
  EXPECT_EQ(f["evidence"]["stalls"], 2);
  EXPECT_EQ(f["evidence"]["near_5s_multiples"], 1);
  EXPECT_DOUBLE_EQ(f["evidence"]["stall_list"][0]["t_s"].get<double>(), 12.0);
  EXPECT_EQ(f["verdict"], "suspect");
}

TEST(Jitter, AllocatorEvidenceMakesItReproduced) {
  std::vector<json> stalls = {{{"phase", "churn"}, {"start_ns", 5}, {"duration_ns", 300'000'000}}};
  json attribution = {{"by_layer", {{"mempool/allocator", 1}}}};
  auto f = jitter_finding(phases(1.0), stalls, attribution, json::array(), 0);
  EXPECT_EQ(f["verdict"], "reproduced");
  json slub = json::array({{{"id", "slub-alloc-failure"}, {"count", 3}}});
  auto g = jitter_finding(phases(1.0), stalls, nullptr, slub, 0);
  EXPECT_EQ(g["verdict"], "reproduced");
  // A slow device alone is not the bug.
  json dev = {{"by_layer", {{"device", 1}}}};
  EXPECT_EQ(jitter_finding(phases(1.0), stalls, dev, json::array(), 0)["verdict"], "suspect");
}

}  // namespace
}  // namespace krepro::detect
