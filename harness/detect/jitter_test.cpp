#include "harness/detect/jitter.h"

#include <gtest/gtest.h>

namespace krepro::detect {
namespace {

using nlohmann::json;

json op(double p50_ms, double p99_ms, int count) {
  return {{"count", count},
          {"lat_ns", {{"percentile", {{"50.000000", p50_ms * 1e6}, {"99.000000", p99_ms * 1e6}}}}}};
}

json phases(double churn_p99_ms) {
  return json::array(
      {{{"name", "baseline"},
        {"actors", {{"tikv", {{"workload", {{"kv_wal.fdatasync", op(0.3, 1, 1000)}}}}}}}},
       {{"name", "churn"},
        {"actors",
         {{"tikv", {{"workload", {{"kv_wal.fdatasync", op(0.3, churn_p99_ms, 1000)}}}}}}}}});
}

TEST(Jitter, QuietRunReportsNothing) {
  EXPECT_TRUE(jitter_finding(phases(1.1), {}, nullptr, json::array(), 0).is_null());
}

TEST(Jitter, ShiftAloneIsSuspectWithRatios) {
  auto f = jitter_finding(phases(5), {}, nullptr, json::array(), 0);
  ASSERT_FALSE(f.is_null());
  EXPECT_EQ(f["verdict"], "suspect");
  ASSERT_EQ(f["evidence"]["latency_shifts"].size(), 1u);
  EXPECT_NEAR(f["evidence"]["latency_shifts"][0]["p99_ratio"].get<double>(), 5.0, 1e-9);
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
