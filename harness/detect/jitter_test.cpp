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

TEST(MannWhitney, KnownValuesAndEdges) {
  // Fully separated samples of 5 and 5: exact two-sided p = 2/252 = 0.0079;
  // the normal approximation with continuity correction gives 0.012.
  std::vector<double> a = {1, 2, 3, 4, 5}, b = {6, 7, 8, 9, 10};
  EXPECT_NEAR(mann_whitney_p(a, b), 0.0122, 0.001);
  EXPECT_NEAR(mann_whitney_p(b, a), mann_whitney_p(a, b), 1e-12);
  // Same values: no evidence of a shift.
  EXPECT_NEAR(mann_whitney_p({3, 3, 3, 3}, {3, 3, 3, 3}), 1.0, 1e-9);
  EXPECT_GT(mann_whitney_p({1, 5, 2, 6, 3}, {4, 2, 5, 1, 6}), 0.5);
  EXPECT_EQ(mann_whitney_p({1}, {2, 3}), 1.0);
}

// Per-second p50 series: `base` seconds at base_ms, `later` at later_ms.
json phases_with_intervals(int base_s, double base_ms, int later_s, double later_ms) {
  auto op_iv = [](int secs, double ms) {
    json p50 = json::array(), cnt = json::array();
    for (int i = 0; i < secs; ++i) {
      p50.push_back(ms * 1e6 * (1 + 0.01 * (i % 3)));
      cnt.push_back(20);
    }
    json o = op(ms, ms * 2, secs * 20);
    o["intervals"] = {{"p50_ns", p50}, {"count", cnt}};
    return o;
  };
  return json::array(
      {{{"name", "baseline"},
        {"start_s", 0.0},
        {"end_s", static_cast<double>(base_s)},
        {"actors", {{"tikv", {{"workload", {{"flush.fsync", op_iv(base_s, base_ms)}}}}}}}},
       {{"name", "churn"},
        {"start_s", static_cast<double>(base_s)},
        {"end_s", static_cast<double>(base_s + later_s)},
        {"actors", {{"tikv", {{"workload", {{"flush.fsync", op_iv(later_s, later_ms)}}}}}}}}});
}

json mempool_waits(std::vector<double> starts, double ms = 40.0) {
  json slow = json::array();
  for (double t : starts) slow.push_back({{"start_s", t}, {"ms", ms}});
  return {{"kprobes",
           {{"mempool_alloc",
             {{"slow_count", starts.size()}, {"threshold_ns", 10e6}, {"slow", slow}}}}}};
}

// The bvec fixture's picture: mempool_alloc waits over threshold in the
// churn phase only, and fsync's median up 40 % second by second.
TEST(Jitter, AllocatorWaitsWithSignificantMedianShiftAreReproduced) {
  auto ph = phases_with_intervals(15, 25, 30, 35);
  auto f = jitter_finding(ph, {}, nullptr, json::array(), 0,
                          mempool_waits({20, 21, 22, 24, 26, 28, 30, 31, 33, 35, 38, 40}));
  ASSERT_FALSE(f.is_null());
  EXPECT_EQ(f["verdict"], "reproduced") << f.dump(2);
  EXPECT_DOUBLE_EQ(f["first_seen_s"].get<double>(), 20);  // no stall: the first wait
  const auto& w = f["evidence"]["allocator_waits"]["mempool_alloc"];
  EXPECT_EQ(w["by_phase"]["churn"], 12);
  EXPECT_EQ(w["by_phase"]["baseline"], 0);
  EXPECT_TRUE(w["evidence"].get<bool>());
  const auto& sh = f["evidence"]["latency_shifts"][0];
  EXPECT_LT(sh["median_shift_p"].get<double>(), 0.01);
  EXPECT_TRUE(sh["median_shift"].get<bool>());
}

TEST(Jitter, WaitsWithoutAShiftOrAShiftWithoutWaitsAreNotReproduced) {
  // Waits, but fsync did not move: suspect (the kernel waited, nobody felt it).
  auto flat = phases_with_intervals(15, 25, 30, 25);
  auto f = jitter_finding(flat, {}, nullptr, json::array(), 0,
                          mempool_waits({20, 21, 22, 24, 26, 28, 30, 31, 33, 35}));
  ASSERT_FALSE(f.is_null());
  EXPECT_EQ(f["verdict"], "suspect");
  // A median shift and no kernel evidence: nothing (a slower second phase
  // is not a finding by itself under 2x / 20 ms tails).
  auto moved = phases_with_intervals(15, 25, 30, 35);
  EXPECT_TRUE(jitter_finding(moved, {}, nullptr, json::array(), 0, nullptr).is_null());
  // Waits at the baseline's rate are the device, not the fallback: no
  // evidence, and the shift alone is no finding.
  EXPECT_TRUE(jitter_finding(moved, {}, nullptr, json::array(), 0,
                             mempool_waits({1, 3, 5, 7, 9, 11, 20, 25, 30, 35, 40}))
                  .is_null());
}

// What CI saw in the Debian 6.1 guest without the fault (ci/repro-matrix
// bvec-off): three mempool waits of one I/O's length (20 ms device) in the
// churn phase, none in baseline, and fdatasync's median up 18 % from the
// churn's CPU load. Not the bug: no evidence, and the shift alone is no
// finding.
TEST(Jitter, AFewDeviceSizedWaitsAreNotEvidence) {
  auto moved = phases_with_intervals(15, 25, 30, 35);
  json k = mempool_waits({22.2, 42.1, 42.8}, 20.3);
  auto f = jitter_finding(moved, {}, nullptr, json::array(), 0, k);
  EXPECT_TRUE(f.is_null()) << f.dump(2);
  // Nine are still too few.
  f = jitter_finding(moved, {}, nullptr, json::array(), 0,
                     mempool_waits({16, 18, 20, 22, 24, 26, 28, 30, 32}));
  EXPECT_TRUE(f.is_null()) << f.dump(2);
}

// What the fault does (bvec-on): among the one-I/O waits, one that ran into
// mempool_alloc's 5 s io_schedule_timeout. One such wait is evidence.
TEST(Jitter, OneTimeoutClassWaitIsEvidence) {
  auto moved = phases_with_intervals(15, 25, 30, 35);
  json k = mempool_waits({22.0}, 5067.0);
  auto f = jitter_finding(moved, {}, nullptr, json::array(), 0, k);
  ASSERT_FALSE(f.is_null());
  EXPECT_EQ(f["verdict"], "reproduced") << f.dump(2);
  const auto& w = f["evidence"]["allocator_waits"]["mempool_alloc"];
  EXPECT_TRUE(w["evidence"].get<bool>());
  EXPECT_EQ(w["timeout_class_by_phase"]["churn"], 1);
  EXPECT_NE(w["why"].get<std::string>().find(">= 1000 ms"), std::string::npos);
  // The same wait in baseline too: the device is like that, not evidence.
  json both = mempool_waits({5.0, 22.0}, 5067.0);
  EXPECT_TRUE(jitter_finding(moved, {}, nullptr, json::array(), 0, both).is_null());
}

}  // namespace
}  // namespace krepro::detect
