// compare_main on synthetic run folders.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>

#include "harness/util/fs.h"
#include "results/formats.h"
#include "results/summary.h"
#include "results/test_util.h"

namespace krepro::results {
namespace {

using nlohmann::json;
using testing::TempDir;

// A run with one churn op and one workload op whose per-second p99 series
// is base * (1 + small deterministic jitter).
json synth_run(int seed, double scale, const std::string& verdict,
               const std::vector<std::string>& sigs = {}) {
  json s = testing::sample("holder").summary;
  s["run_id"] = "r" + std::to_string(seed);
  s["verdict"] = verdict;
  auto lat = [&](double base) {
    json pct = json::object();
    for (double p : {50.0, 90.0, 99.0, 99.9})
      pct[percentile_key(p)] = base * scale * (p / 50) * (1 + 0.01 * ((seed * 7) % 5));
    return json{{"min", base * scale / 2},
                {"max", base * scale * 4},
                {"mean", base * scale},
                {"N", 1000},
                {"percentile", pct}};
  };
  s["churn_latency"] = {{"netns.create", {{"count", 1000}, {"lat_ns", lat(100000)}}}};
  json p99 = json::array();
  for (int i = 0; i < 30; ++i) p99.push_back(2e6 * scale * (1 + 0.05 * ((seed * 13 + i * 7) % 11)));
  s["workload"] = {{"kv_wal",
                    {{"ops",
                      {{"fdatasync",
                        {{"count", 3000},
                         {"lat_ns", lat(1e6)},
                         {"intervals", {{"second", json::array()}, {"p99_ns", p99}}}}}}}}}};
  s["signatures"] = json::array();
  for (const auto& id : sigs)
    s["signatures"].push_back({{"id", id},
                               {"bug", "generic"},
                               {"severity", "error"},
                               {"count", 1},
                               {"first_seen_s", 1.0},
                               {"last_seen_s", 1.0},
                               {"sample", "x"}});
  return s;
}

std::string make_side(const std::string& root, const std::string& name, int n, double scale,
                      int reproduced = 0, const std::vector<std::string>& sigs = {}) {
  std::string side = root + "/" + name;
  EXPECT_TRUE(fs::make_dirs(side));
  for (int i = 0; i < n; ++i) {
    std::string d = side + "/run" + std::to_string(i);
    EXPECT_TRUE(fs::make_dirs(d));
    EXPECT_TRUE(write_summary(
        d, synth_run(i, scale, i < reproduced ? "reproduced" : "not_reproduced", sigs)));
  }
  return side;
}

json run_json(const std::string& a, const std::string& b, int* rc) {
  std::ostringstream out;
  *rc = compare_main({a}, {b}, true, out);
  return json::parse(out.str(), nullptr, false);
}

const json& op(const json& j, const std::string& name) {
  for (const auto& o : j["operations"])
    if (o["op"] == name) return o;
  static json none;
  return none;
}

TEST(Compare, IdenticalSidesAreNotDifferent) {
  TempDir t;
  auto a = make_side(t.path(), "a", 5, 1.0), b = make_side(t.path(), "b", 5, 1.0);
  int rc = -1;
  json j = run_json(a, b, &rc);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(rc, 0) << j.dump(2);
  EXPECT_FALSE(j["b_worse"].get<bool>());
  const json& io = op(j, "workload.kv_wal.fdatasync");
  // Five runs a side: one p99 per run is the sample (runs are independent,
  // per-second intervals of one run are not).
  EXPECT_EQ(io["basis"], "run_p99");
  EXPECT_EQ(io["n_a"], 5);
  EXPECT_FALSE(io["significant"].get<bool>());
  EXPECT_GT(io["p"].get<double>(), 0.5);
  EXPECT_EQ(op(j, "netns.create")["basis"], "run_p99");
  EXPECT_NEAR(j["sides"]["A"]["rate"].get<double>(), 0, 1e-12);
}

TEST(Compare, HigherLatencyIsSignificantRegression) {
  TempDir t;
  auto a = make_side(t.path(), "a", 5, 1.0), b = make_side(t.path(), "b", 5, 3.0);
  int rc = -1;
  json j = run_json(a, b, &rc);
  EXPECT_EQ(rc, 1);
  const json& io = op(j, "workload.kv_wal.fdatasync");
  EXPECT_TRUE(io["significant"].get<bool>());
  EXPECT_TRUE(io["regression"].get<bool>());
  EXPECT_NEAR(io["p"].get<double>(), 2.0 / 252, 1e-9);  // exact, complete separation
  EXPECT_NEAR(io["p99_rel_diff"].get<double>(), 2.0, 0.05);
  const json& churn = op(j, "netns.create");
  EXPECT_TRUE(churn["significant"].get<bool>());  // 5 vs 5 runs, exact: p = 2/252
  EXPECT_TRUE(churn["exact"].get<bool>());
  EXPECT_NEAR(churn["p"].get<double>(), 2.0 / 252, 1e-9);
  // B faster than A is not a regression.
  EXPECT_EQ(run_json(b, a, &rc)["b_worse"], false);
  EXPECT_EQ(rc, 0);
}

TEST(Compare, ReproductionRateAndNewSignatures) {
  TempDir t;
  auto a = make_side(t.path(), "a", 4, 1.0, 0), b = make_side(t.path(), "b", 4, 1.0, 3);
  int rc = -1;
  json j = run_json(a, b, &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NEAR(j["sides"]["B"]["rate"].get<double>(), 0.75, 1e-12);
  EXPECT_GT(j["sides"]["B"]["wilson95"][0].get<double>(), 0.2);
  auto c = make_side(t.path(), "c", 4, 1.0, 0, {"soft-lockup"});
  j = run_json(a, c, &rc);
  EXPECT_EQ(rc, 1);
  ASSERT_EQ(j["signatures"]["only_b"].size(), 1u);
  EXPECT_EQ(j["signatures"]["only_b"][0]["id"], "soft-lockup");
  j = run_json(c, a, &rc);  // a signature that went away is fine
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(j["signatures"]["only_a"].size(), 1u);
}

TEST(Compare, SingleRunFoldersAndTextOutput) {
  TempDir t;
  std::ostringstream out;
  int rc = compare_main({testing::testdata("smoke")}, {testing::testdata("smoke")}, false, out);
  EXPECT_EQ(rc, 0) << out.str();
  EXPECT_NE(out.str().find("A: 1 run(s)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("percentile_ladder"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("B is not worse than A"), std::string::npos);
  // One run a side: latency differences are shown, never gating.
  std::ostringstream o2;
  TempDir t2;
  auto a = make_side(t2.path(), "a", 1, 1.0), b = make_side(t2.path(), "b", 1, 3.0);
  // Without interval series only the ladders remain.
  for (const auto& d : {a + "/run0", b + "/run0"}) {
    auto r = load_run(d);
    ASSERT_TRUE(r.has_value());
    r->summary["workload"] = json::object();
    ASSERT_TRUE(write_summary(d, r->summary));
  }
  EXPECT_EQ(compare_main({a}, {b}, true, o2), 0) << o2.str();
  json j = json::parse(o2.str());
  EXPECT_EQ(op(j, "netns.create")["basis"], "percentile_ladder");
  EXPECT_FALSE(op(j, "netns.create")["regression"].get<bool>());
}

TEST(Compare, BadInputIsExit2) {
  TempDir t;
  std::ostringstream out;
  EXPECT_EQ(compare_main({t.path()}, {testing::testdata("smoke")}, false, out), 2);
  EXPECT_NE(out.str().find(t.path()), std::string::npos) << out.str();
  std::ostringstream js;
  EXPECT_EQ(compare_main({t.path() + "/nope"}, {testing::testdata("smoke")}, true, js), 2);
  auto j = json::parse(js.str(), nullptr, false);
  ASSERT_TRUE(j.is_object()) << js.str();
  EXPECT_NE(j["error"].get<std::string>().find("/nope"), std::string::npos);
}

}  // namespace
}  // namespace krepro::results

namespace krepro::results {
namespace {

// One run a side: the per-second interval p99s are the only samples.
TEST(Compare, SingleRunsFallBackToIntervals) {
  TempDir t;
  auto a = make_side(t.path(), "a", 1, 1.0), b = make_side(t.path(), "b", 1, 3.0);
  int rc = -1;
  json j = run_json(a, b, &rc);
  const json& io = op(j, "workload.kv_wal.fdatasync");
  EXPECT_EQ(io["basis"], "interval_p99");
  EXPECT_GT(io["n_a"].get<int>(), 10);
  EXPECT_TRUE(io["significant"].get<bool>());
}

// A dozen operations whose A and B values are drawn from the same
// distribution: one of them separates by chance as often as 5 % tests do,
// and without the family adjustment the comparison would call it a
// regression.
TEST(Compare, ChanceSeparationAmongManyOperationsIsNotARegression) {
  TempDir t;
  std::string root = t.path();
  auto side = [&](const std::string& name, bool b) {
    std::string dir = root + "/" + name;
    EXPECT_TRUE(fs::make_dirs(dir));
    for (int i = 0; i < 5; ++i) {
      json s = synth_run(i, 1.0, "not_reproduced");
      json churn = json::object();
      for (int op = 0; op < 12; ++op) {
        // Op 0: B's values above A's but for one pair (U = 1: one-sided
        // p = 2/252 = 0.008, below 0.05 alone), median p99 +11 %; the rest
        // interleave.
        double base = 1e6 * (1 + 0.01 * op);
        double v = op == 0 ? base * (b ? (i == 0 ? 1.035 : 1.11 + 0.01 * i) : 1.0 + 0.01 * i)
                           : base * (1 + 0.02 * (2 * i + (b ? 1 : 0)));
        json pct = {{percentile_key(50), v / 2}, {percentile_key(99), v}};
        churn[fmt::format("cgroups.op{:02}", op)] = {
            {"count", 1000}, {"lat_ns", {{"N", 1000}, {"percentile", pct}}}};
      }
      s["churn_latency"] = churn;
      s["workload"] = json::object();
      std::string d = dir + "/run" + std::to_string(i);
      EXPECT_TRUE(fs::make_dirs(d));
      EXPECT_TRUE(write_summary(d, s));
    }
    return dir;
  };
  std::string a = side("many-a", false), b = side("many-b", true);
  int rc = -1;
  json j = run_json(a, b, &rc);
  ASSERT_TRUE(j.is_object());
  const json& o = op(j, "cgroups.op00");
  ASSERT_TRUE(o.is_object()) << j.dump(2);
  EXPECT_NEAR(o["p_b_greater"].get<double>(), 2.0 / 252, 1e-9);
  EXPECT_NEAR(o["p_b_greater_holm"].get<double>(), 24.0 / 252, 1e-9);
  EXPECT_GT(o["p99_rel_diff"].get<double>(), 0.10);
  EXPECT_FALSE(o["regression"].get<bool>()) << o.dump(2);
  EXPECT_FALSE(o["significant"].get<bool>());
  EXPECT_EQ(j["family"]["tests"], 12);
  EXPECT_EQ(rc, 0) << j["reasons"].dump();
  // And the text says why five runs a side are not enough for twelve tests.
  ASSERT_TRUE(j.contains("power_hint"));
  EXPECT_NE(j["power_hint"].get<std::string>().find("runs a side"), std::string::npos);
}

}  // namespace
}  // namespace krepro::results
