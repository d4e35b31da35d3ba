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
  EXPECT_TRUE(fs::list_dir(journal_)->empty());
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
  EXPECT_TRUE(fs::list_dir(journal_)->empty());
}

TEST_F(Cli, CleanupLeavesLiveRunAlone) {
  std::string out = root_ + "/run";
  pid_t pid = spawn({"run", scenario_, "--out", out}, root_ + "/run.log");
  auto j = wait_journal();
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(run_wait({"cleanup", "--json"}), 0);
  auto rep = nlohmann::json::parse(*fs::read_file(root_ + "/cmd.log"));
  EXPECT_EQ(rep["runs_live"].size(), 1u);
  EXPECT_TRUE(rep["runs_cleaned"].empty());
  EXPECT_TRUE(any_exists(j["cgroup_dirs"]));
  EXPECT_EQ(::kill(pid, 0), 0) << "the live run still runs";
  ::kill(pid, SIGTERM);
  wait_exit(pid);
  auto s = nlohmann::json::parse(*fs::read_file(out + "/summary.json"));
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
    EXPECT_FALSE(fs::exists(journal_) && !fs::list_dir(journal_)->empty()) << name;
  }
  EXPECT_EQ(run_wait({"run", root_}), 2);  // a directory
  EXPECT_EQ(run_wait({"run", "no-such-scenario"}), 2);
  EXPECT_EQ(run_wait({"run", "--bisect", "no-such-scenario"}), 255);
}

}  // namespace
}  // namespace krepro
