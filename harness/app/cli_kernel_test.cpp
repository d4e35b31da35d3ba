// Kernel tier, whole process: the krepro binary under SIGTERM, SIGKILL +
// cleanup, cleanup beside a live run, and malformed scenarios creating
// nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "harness/util/clock.h"
#include "harness/util/fs.h"

namespace krepro {
namespace {

namespace stdfs = std::filesystem;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    char t[] = "/tmp/krepro-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    root_ = t;
    journal_ = root_ + "/journal";
    ::setenv("KREPRO_JOURNAL_DIR", journal_.c_str(), 1);
    scenario_ = root_ + "/long.yaml";
    std::ofstream(scenario_) << R"(name: long
description: churn until stopped
duration: 120s
phases:
  - name: churn
    duration: 100s
    actors:
      - type: cgroup-churn
        alive: 50
        payload: write
        rate: 300
      - type: netns-churn
        alive: 10
        rate: 50
options:
  teardown_wait: 10s
)";
  }
  void TearDown() override {
    if (!root_.empty()) {
      // Whatever a failed test left: the same cleanup users run.
      run_wait({"cleanup"});
      stdfs::remove_all(root_);
    }
  }

  pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
    pid_t pid = ::fork();
    if (pid == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stdout);
      (void)f;
      ::dup2(1, 2);
      std::vector<char*> argv;
      std::string bin = KREPRO_BINARY;
      argv.push_back(bin.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    return pid;
  }
  int wait_exit(pid_t pid) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  int run_wait(const std::vector<std::string>& args) {
    return wait_exit(spawn(args, root_ + "/cmd.log"));
  }
  // The run's journal, once the run has written it.
  nlohmann::json wait_journal() {
    for (int i = 0; i < 200; ++i) {
      auto names = fs::list_dir(journal_);
      if (names) {
        for (const auto& n : *names) {
          if (n.size() > 5 && n.substr(n.size() - 5) == ".json") {
            auto t = fs::read_file(journal_ + "/" + n);
            if (t) {
              auto j = nlohmann::json::parse(*t, nullptr, false);
              if (!j.is_discarded() && !j["cgroup_dirs"].empty()) return j;
            }
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return {};
  }
  static bool any_exists(const nlohmann::json& dirs) {
    for (const auto& d : dirs)
      if (fs::exists(d.get<std::string>())) return true;
    return false;
  }
  std::string root_, journal_, scenario_;
};

TEST_F(Cli, SigtermStopsWithin5sWritesPartialSummaryLeavesNothing) {
  std::string out = root_ + "/run";
  pid_t pid = spawn({"run", scenario_, "--out", out}, root_ + "/run.log");
  auto j = wait_journal();
  ASSERT_FALSE(j.empty()) << fs::read_file(root_ + "/run.log").value_or("");
  std::this_thread::sleep_for(std::chrono::seconds(2));  // churn under way
  int64_t t0 = mono_ns();
  ::kill(pid, SIGTERM);
  int rc = wait_exit(pid);
  double secs = (mono_ns() - t0) / 1e9;
  EXPECT_LT(secs, 5.0);
  EXPECT_EQ(rc, 3) << "inconclusive: interrupted";
  auto text = fs::read_file(out + "/summary.json");
  ASSERT_TRUE(text);
  auto s = nlohmann::json::parse(*text);
  EXPECT_EQ(s["partial"], true);
  EXPECT_EQ(s["verdict"], "inconclusive");
  EXPECT_GT(s["churn"]["cgroups"]["created"].get<int>(), 0);
  EXPECT_EQ(s["churn"]["cgroups"]["created"], s["churn"]["cgroups"]["destroyed"]);
  EXPECT_FALSE(any_exists(j["cgroup_dirs"]));
  EXPECT_FALSE(any_exists(j["scratch_dirs"]));
  EXPECT_TRUE(fs::list_dir(journal_).value_or(std::vector<std::string>{}).empty());
}

TEST_F(Cli, SigkillThenCleanupRemovesEverything) {
  std::string out = root_ + "/run";
  pid_t pid = spawn({"run", scenario_, "--out", out}, root_ + "/run.log");
  auto j = wait_journal();
  ASSERT_FALSE(j.empty());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ::kill(pid, SIGKILL);
  wait_exit(pid);
  EXPECT_TRUE(any_exists(j["cgroup_dirs"])) << "a killed run leaves its cgroups";
  EXPECT_EQ(run_wait({"cleanup"}), 0) << fs::read_file(root_ + "/cmd.log").value_or("");
  EXPECT_FALSE(any_exists(j["cgroup_dirs"]));
  EXPECT_FALSE(any_exists(j["scratch_dirs"]));
  EXPECT_TRUE(fs::list_dir(journal_).value_or(std::vector<std::string>{}).empty());
}

TEST_F(Cli, CleanupLeavesLiveRunAlone) {
  std::string out = root_ + "/run";
  pid_t pid = spawn({"run", scenario_, "--out", out}, root_ + "/run.log");
  auto j = wait_journal();
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(run_wait({"cleanup", "--json"}), 0);
  auto rep =
      nlohmann::json::parse(fs::read_file(root_ + "/cmd.log").value_or("null"), nullptr, false);
  EXPECT_EQ(rep["runs_live"].size(), 1u);
  EXPECT_TRUE(rep["runs_cleaned"].empty());
  EXPECT_TRUE(any_exists(j["cgroup_dirs"]));
  EXPECT_EQ(::kill(pid, 0), 0) << "the live run still runs";
  ::kill(pid, SIGTERM);
  wait_exit(pid);
  auto s =
      nlohmann::json::parse(fs::read_file(out + "/summary.json").value_or("null"), nullptr, false);
  ASSERT_TRUE(s.is_object()) << "no summary: " << fs::read_file(root_ + "/run.log").value_or("");
  EXPECT_EQ(s["churn"]["cgroups"]["failed"], 0) << s["churn"]["cgroups"]["errors"].dump();
  EXPECT_FALSE(any_exists(j["cgroup_dirs"]));
}

TEST_F(Cli, MalformedScenariosExit2AndCreateNothing) {
  std::vector<std::pair<std::string, std::string>> bad = {
      {"empty.yaml", ""},
      {"syntax.yaml", "phases: [\n"},
      {"unknown.yaml",
       "phases:\n  - name: a\n    duration: 1s\n    actors:\n      - type: cgroup-churn\n        "
       "bogus: 1\n"},
      {"deep.yaml", "phases: " + std::string(100000, '[') + std::string(100000, ']') + "\n"},
  };
  for (const auto& [name, text] : bad) {
    std::string p = root_ + "/" + name;
    std::ofstream(p) << text;
    std::string out = root_ + "/out-" + name;
    int rc = run_wait({"run", p, "--out", out});
    EXPECT_EQ(rc, 2) << name;
    std::string log = fs::read_file(root_ + "/cmd.log").value_or("");
    EXPECT_NE(log.find(p), std::string::npos) << name << ": " << log;
    EXPECT_FALSE(fs::exists(out)) << name;
    EXPECT_TRUE(fs::list_dir(journal_).value_or(std::vector<std::string>{}).empty()) << name;
  }
  EXPECT_EQ(run_wait({"run", root_}), 2);  // a directory
  EXPECT_EQ(run_wait({"run", "no-such-scenario"}), 2);
  EXPECT_EQ(run_wait({"run", "--bisect", "no-such-scenario"}), 255);
}

// Latency injected through a real kernel mechanism: the scratch ext4 sits on
// loop devices krepro set up, and a blkio write-bandwidth rule on the outer
// one (in the root blkio cgroup, where v1 charges writeback) is switched on
// and off during the run. The jitter detector must list the stalls inside
// the throttled windows; without the rule it must list none.
std::string jitter_scenario(bool throttle) {
  std::string s = R"(name: jitter-test
description: blkio throttle on krepro's scratch device
duration: 120s
phases:
  - name: baseline
    duration: 4s
    actors:
      - type: tikv-write
        name: tikv
        raft: false
        compaction: false
        sst_min: 8MiB
        sst_max: 8MiB
        flush_interval: 1s
  - name: inject
    duration: 14s
    actors:
      - type: tikv-write
        name: tikv
        raft: false
        compaction: false
        sst_min: 8MiB
        sst_max: 8MiB
        flush_interval: 1s
)";
  if (throttle)
    s += R"(      - type: blkio-throttle
        write_bps: 2MiB
        on: 5s
        off: 4s
        start_after: 2s
)";
  s += R"(options:
  scratch_device: loop
  scratch_size: 256MiB
  stall_threshold: 500ms
  memcg_drain_wait: 0s
)";
  return s;
}

TEST_F(Cli, InjectedBlockLatencyIsReportedAndAbsentWithoutIt) {
  if (!fs::exists("/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device") ||
      !fs::exists("/dev/loop-control"))
    GTEST_SKIP() << "needs v1 blkio throttling and loop devices";
  for (bool throttle : {true, false}) {
    std::string p = root_ + (throttle ? "/jit-on.yaml" : "/jit-off.yaml");
    std::ofstream(p) << jitter_scenario(throttle);
    std::string out = root_ + (throttle ? "/jit-on" : "/jit-off");
    int rc = run_wait({"run", p, "--out", out});
    ASSERT_EQ(rc, 0) << fs::read_file(root_ + "/cmd.log").value_or("");
    auto s = nlohmann::json::parse(fs::read_file(out + "/summary.json").value_or("null"), nullptr,
                                   false);
    ASSERT_TRUE(s.is_object()) << "no summary in " << out;
    nlohmann::json finding;
    for (const auto& f : s["findings"])
      if (f["id"] == "writeback-jitter") finding = f;
    if (!throttle) {
      // No stall without the rule. (A tail shift on a quiet device is still
      // worth a "suspect" line if the host is noisy enough to cause one, but
      // it must not list stalls.)
      if (!finding.is_null()) {
        EXPECT_EQ(finding["evidence"].value("stalls", -1), 0) << finding.dump(2);
        EXPECT_EQ(finding["verdict"], "suspect") << finding.dump(2);
      }
      continue;
    }
    ASSERT_FALSE(finding.is_null()) << s["findings"].dump(2);
    // Injected slowness is not the bug: suspect, never reproduced.
    EXPECT_EQ(finding["verdict"], "suspect");
    const auto& ev = finding["evidence"];
    EXPECT_GE(ev["stalls_by_phase"].value("inject", 0), 1) << ev.dump(2);
    EXPECT_EQ(ev["stalls_by_phase"].value("baseline", 0), 0) << ev.dump(2);
    // Each stall starts inside a throttled window (or just before it: the
    // op was in flight when the rule went on).
    auto windows = s["workload"]["inject"]["throttle.blkio-throttle"]["windows"];
    ASSERT_GE(windows.size(), 1u);
    for (const auto& st : ev["stall_list"]) {
      double t = st["t_s"].get<double>(), end = t + st["ms"].get<double>() / 1e3;
      bool inside = false;
      for (const auto& w : windows) {
        double on = w["on_s"].get<double>(), off = w.value("off_s", 1e9);
        inside |= end >= on && t <= off + 0.5;
      }
      EXPECT_TRUE(inside) << st.dump() << " windows " << windows.dump();
    }
    // Where the io-trace observer ran, the time went to the device layer.
    if (s.contains("stall_attribution") && s["stall_attribution"].contains("by_layer")) {
      EXPECT_GT(s["stall_attribution"]["by_layer"].value("device", 0), 0)
          << s["stall_attribution"].dump(2);
    }
    // Nothing of the scratch filesystem is left.
    auto mounts = fs::read_file("/proc/self/mounts").value_or("");
    EXPECT_EQ(mounts.find(s["run_id"].get<std::string>()), std::string::npos);
    EXPECT_EQ(fs::read_file("/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device").value_or("x"),
              "");
  }
}

}  // namespace
}  // namespace krepro
