// The D-state detector on a fake /proc: continuous D with and without
// context switches (khungtaskd's rule), and what reaches the summary.
#include "harness/detect/kernel_watch.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "harness/engine/hub.h"
#include "harness/engine/timeline.h"
#include "harness/util/fs.h"

namespace krepro::detect {
namespace {

using nlohmann::json;
namespace sfs = std::filesystem;

class Dstate : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/krepro-dstate-test-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir_ = t;
    ctx_.run_id = "0badcafe";
    ctx_.prefix = "krepro-0badcafe";
    ctx_.t0_ns = 0;
    params_.set("dstate_threshold", int64_t{10'000'000'000});
    ctx_.options = &params_;
    auto ev = engine::EventLog::open(dir_ + "/events.jsonl", 0);
    ASSERT_TRUE(ev);
    events_.reset(*ev);
    ctx_.events = events_.get();
  }
  void TearDown() override { sfs::remove_all(dir_); }

  // One task in state `st` with `switches` voluntary context switches.
  void task(int pid, const std::string& comm, char st, long switches, int ppid = 2,
            const std::string& cgroup = "0::/\n") {
    std::string d = dir_ + "/proc/" + std::to_string(pid);
    sfs::create_directories(d);
    std::ofstream(d + "/stat") << pid << " (" << comm << ") " << st << " " << ppid << " 0 0 0 -1\n";
    std::ofstream(d + "/cgroup") << cgroup;
    std::ofstream(d + "/status") << "Name:\t" << comm << "\nState:\t" << st
                                 << "\nvoluntary_ctxt_switches:\t" << switches
                                 << "\nnonvoluntary_ctxt_switches:\t3\n";
    std::ofstream(d + "/wchan") << "0";
  }
  json finish(engine::RunObserver& d) {
    engine::RunStats stats;
    json summary = {{"signatures", json::array()}};
    d.finish(ctx_, stats, summary);
    summary["findings"] = stats.findings;
    return summary;
  }

  std::string dir_;
  engine::RunContext ctx_;
  engine::Params params_;
  std::unique_ptr<engine::EventLog> events_;
};

constexpr int64_t kS = 1'000'000'000;
// Look i, one a second from the run's start (monotonic times are never 0).
int64_t at(int i) { return (i + 1) * kS; }

TEST_F(Dstate, StuckWithoutASwitchIsABlockedTaskFinding) {
  auto d = make_dstate_detector({.kmsg = "", .proc = dir_ + "/proc"});
  ASSERT_TRUE(d->start(ctx_));
  task(101, "kworker/u4:1+netns", 'D', 50);
  task(102, "bash", 'S', 9);
  for (int i = 0; i <= 12; ++i) d->sample(ctx_, at(i));
  json s = finish(*d);
  ASSERT_EQ(s["blocked_tasks"].size(), 1u) << s.dump(2);
  const json& t = s["blocked_tasks"][0];
  EXPECT_EQ(t["pid"], 101);
  EXPECT_EQ(t["owner"], "kernel-thread");  // ppid 2: kthreadd's child
  EXPECT_TRUE(t["stuck"].get<bool>());
  EXPECT_EQ(t["context_switches"], 0);
  EXPECT_DOUBLE_EQ(t["longest_without_switch_s"].get<double>(), 12);
  ASSERT_EQ(s["findings"].size(), 1u);
  EXPECT_EQ(s["findings"][0]["id"], "blocked-tasks");
  EXPECT_DOUBLE_EQ(s["findings"][0]["first_seen_s"].get<double>(), 1);
}

// What the repro matrix saw without any fault: jbd2 in D at every look for
// 55 s on a 20 ms device, each time a new wait. Listed, not a finding.
TEST_F(Dstate, InDAtEveryLookButSwitchingIsListedNotAFinding) {
  auto d = make_dstate_detector({.kmsg = "", .proc = dir_ + "/proc"});
  ASSERT_TRUE(d->start(ctx_));
  for (int i = 0; i <= 30; ++i) {
    task(77, "jbd2/dm-0-8", 'D', 1000 + 40 * i);
    d->sample(ctx_, at(i));
  }
  json s = finish(*d);
  ASSERT_EQ(s["blocked_tasks"].size(), 1u) << s.dump(2);
  const json& t = s["blocked_tasks"][0];
  EXPECT_FALSE(t["stuck"].get<bool>());
  EXPECT_EQ(t["context_switches"], 1200);
  EXPECT_DOUBLE_EQ(t["d_state_s"].get<double>(), 30);
  EXPECT_LE(t["longest_without_switch_s"].get<double>(), 1.0);
  EXPECT_TRUE(s["findings"].empty()) << s["findings"].dump(2);
}

TEST_F(Dstate, ASwitchRestartsTheStillClockAndLeavingDForgetsTheTask) {
  auto d = make_dstate_detector({.kmsg = "", .proc = dir_ + "/proc"});
  ASSERT_TRUE(d->start(ctx_));
  task(5, "dd", 'D', 1);
  for (int i = 0; i <= 5; ++i) d->sample(ctx_, at(i));
  task(5, "dd", 'D', 2);  // ran once at 6 s, then blocked again
  for (int i = 6; i <= 17; ++i) d->sample(ctx_, at(i));
  task(6, "short", 'D', 1);
  d->sample(ctx_, at(18));
  task(6, "short", 'R', 2);  // left D before the threshold: forgotten
  d->sample(ctx_, at(19));
  json s = finish(*d);
  ASSERT_EQ(s["blocked_tasks"].size(), 1u) << s.dump(2);
  EXPECT_EQ(s["blocked_tasks"][0]["pid"], 5);
  EXPECT_DOUBLE_EQ(s["blocked_tasks"][0]["longest_without_switch_s"].get<double>(), 13);
  EXPECT_TRUE(s["blocked_tasks"][0]["stuck"].get<bool>());
}

TEST_F(Dstate, OwnerIsKreproForTasksInTheRunsCgroups) {
  auto d = make_dstate_detector({.kmsg = "", .proc = dir_ + "/proc"});
  ASSERT_TRUE(d->start(ctx_));
  task(300, "job", 'D', 1, 250, "4:memory:/krepro-0badcafe/krepro-0badcafe-17\n0::/\n");
  task(301, "other", 'D', 1, 250);
  for (int i = 0; i <= 11; ++i) d->sample(ctx_, at(i));
  json s = finish(*d);
  ASSERT_EQ(s["blocked_tasks"].size(), 2u) << s.dump(2);
  EXPECT_EQ(s["blocked_tasks"][0]["owner"], "krepro");
  EXPECT_EQ(s["blocked_tasks"][1]["owner"], "other");
}

TEST_F(Dstate, UnreadableStatusCountsAsStuck) {
  auto d = make_dstate_detector({.kmsg = "", .proc = dir_ + "/proc"});
  ASSERT_TRUE(d->start(ctx_));
  task(9, "x", 'D', 1);
  sfs::remove(dir_ + "/proc/9/status");
  for (int i = 0; i <= 11; ++i) d->sample(ctx_, at(i));
  json s = finish(*d);
  ASSERT_EQ(s["blocked_tasks"].size(), 1u);
  EXPECT_TRUE(s["blocked_tasks"][0]["stuck"].get<bool>());
  EXPECT_FALSE(s["blocked_tasks"][0].contains("context_switches"));
  EXPECT_EQ(s["findings"].size(), 1u);
}

}  // namespace
}  // namespace krepro::detect
