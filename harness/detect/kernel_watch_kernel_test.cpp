// Kernel tier: the detectors against the real kernel.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "harness/detect/kernel_watch.h"
#include "harness/engine/registry.h"
#include "harness/engine/runner.h"
#include "harness/engine/scenario.h"
#include "harness/kernel/host_probe.h"
#include "harness/util/clock.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::detect {
namespace {

struct RunResult {
  nlohmann::json summary;
  std::string dir;
};

class DetectKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = kernel::probe_host();
    if (!host_.root || !host_.has("netns") || !host_.has("cgroup-v1-memory") ||
        !host_.has("kmsg-read"))
      GTEST_SKIP() << "needs root, netns, v1 memory and /dev/kmsg";
    char t[] = "/tmp/krepro-detect-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    root_ = t;
  }
  void TearDown() override {
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }
  RunResult run(const std::string& yaml) {
    engine::Registry reg;
    engine::register_builtin_actors(reg);
    auto raw = engine::parse_scenario_text(yaml, "test.yaml");
    EXPECT_TRUE(raw) << raw.error().message();
    auto sc = engine::compile_scenario(*raw, reg);
    EXPECT_TRUE(sc) << sc.error().message();
    engine::RunOptions ro;
    ro.out_dir = root_ + "/run" + std::to_string(n_++);
    ro.journal_dir = root_ + "/journal";
    engine::StopState stop;
    auto out = engine::run_scenario(*sc, ro, host_, stop, make_builtin_detectors());
    return {out.summary, ro.out_dir};
  }
  kernel::HostProbe host_;
  std::string root_;
  int n_ = 0;
};

// Children of this process whose network namespace is not ours: the jobs.
std::vector<pid_t> job_pids_in_other_netns() {
  std::vector<pid_t> out;
  struct stat self;
  ::stat("/proc/self/ns/net", &self);
  auto names = fs::list_dir("/proc");
  for (const auto& n : *names) {
    if (n.empty() || !isdigit(n[0])) continue;
    auto st = fs::read_file("/proc/" + n + "/stat", 1024);
    if (!st) continue;
    auto f = fs::split(st->substr(st->rfind(')') + 2), ' ');
    if (f.size() < 2 || std::stoi(f[1]) != ::getpid()) continue;
    struct stat ns;
    if (::stat(("/proc/" + n + "/ns/net").c_str(), &ns) == 0 && ns.st_ino != self.st_ino)
      out.push_back(std::stoi(n));
  }
  return out;
}

TEST_F(DetectKernel, OutsideHolderKeepsNamespaceUnfreedUntilItLetsGo) {
  std::atomic<bool> held{false};
  std::atomic<bool> stop{false};
  // The holder: opens a job's /proc/PID/ns/net and keeps it 4 s after the
  // run drops the namespace, as a leaked reference would.
  std::thread holder([&] {
    UniqueFd fd;
    for (int i = 0; i < 400 && !fd && !stop; ++i) {
      for (pid_t p : job_pids_in_other_netns()) {
        fd.reset(::open(("/proc/" + std::to_string(p) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC));
        if (fd) break;
      }
      if (!fd) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    held = fd.valid();
    for (int i = 0; i < 70 && !stop; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  });
  auto r = run(R"(name: holder
duration: 60s
phases:
  - name: churn
    actors:
      - type: netns-churn
        count: 3
        alive: 1
        payload: sleep
        payload_hold: 1500ms
options:
  netns_free_limit: 2s
  teardown_wait: 15s
  sample_interval: 200ms
)");
  stop = true;
  holder.join();
  ASSERT_TRUE(held) << "could not catch a job";
  const auto& s = r.summary;
  nlohmann::json finding;
  for (const auto& f : s["findings"])
    if (f["id"] == "netdev-refcount-leak") finding = f;
  ASSERT_FALSE(finding.is_null()) << s["findings"].dump(2);
  EXPECT_EQ(finding["verdict"], "suspect");  // no kernel message: not the bug itself
  auto eps = finding["evidence"]["not_freed_episodes"];
  ASSERT_GE(eps.size(), 1u);
  EXPECT_TRUE(eps[0].contains("cleared_at_s")) << eps.dump();
  EXPECT_GE(s["leaks"]["netns_not_freed"]["peak_stale"].get<int>(), 1);
  EXPECT_EQ(s["leaks"]["netns_not_freed"]["end"], 0);
  EXPECT_EQ(s["verdict"], "not_reproduced");
  EXPECT_EQ(s["churn"]["veth"]["destroyed"], 3);
  std::printf("holder: not-freed episode %s\n", eps[0].dump().c_str());
}

// Writes a forged netdev message with user facility during a run.
nlohmann::json run_with_forged_line(DetectKernel* self, bool trust, int64_t* written_ns,
                                    std::function<RunResult(const std::string&)> runner) {
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    UniqueFd k(::open("/dev/kmsg", O_WRONLY | O_CLOEXEC));
    std::string line =
        "<14>unregister_netdevice: waiting for krepro0 to become free. Usage count = 1\n";
    *written_ns = mono_ns();
    (void)!::write(k.get(), line.data(), line.size());
  });
  auto r = runner(std::string(R"(name: forged
duration: 30s
phases:
  - name: idle
    duration: 2500ms
    actors:
      - type: netns-churn
        rate: 20
options:
  trust_user_kmsg: )") +
                  (trust ? "true" : "false") + "\n");
  writer.join();
  return r.summary;
}

TEST_F(DetectKernel, UserFacilityRecordsIgnoredByDefaultDetectedWhenTrusted) {
  auto runner = [this](const std::string& y) { return run(y); };
  int64_t written = 0;
  auto plain = run_with_forged_line(this, false, &written, runner);
  EXPECT_TRUE(plain["signatures"].empty()) << plain["signatures"].dump();
  EXPECT_GE(plain["kmsg"]["ignored_user_records"].get<int>(), 1);
  EXPECT_EQ(plain["verdict"], "not_reproduced");

  auto trusted = run_with_forged_line(this, true, &written, runner);
  ASSERT_EQ(trusted["signatures"].size(), 1u) << trusted.dump(2);
  EXPECT_EQ(trusted["signatures"][0]["id"], "netdev-unregister-wait");
  // Within 1 s of the write: the signature event's receive time.
  std::ifstream ev(root_ + "/run1/events.jsonl");
  std::string line;
  int64_t seen = 0;
  while (std::getline(ev, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "signature") seen = j["mono_ns"];
  }
  ASSERT_GT(seen, 0);
  EXPECT_LT(seen - written, 1'000'000'000);
  EXPECT_GE(seen - written, 0);
  std::printf("forged user record: %d ignored by default; trusted: seen %.1f ms after write\n",
              plain["kmsg"]["ignored_user_records"].get<int>(),
              static_cast<double>(seen - written) / 1e6);
}

TEST_F(DetectKernel, DyingMemcgsPinnedByPageCacheThenDrain) {
  auto r = run(R"(name: dying
duration: 120s
phases:
  - name: churn
    actors:
      - type: cgroup-churn
        count: 1500
        alive: 20
        workers: 2
        payload: write
        payload_size: 4KiB
        keep_files: true
options:
  memcg_drain_wait: 15s
  sample_interval: 250ms
)");
  const auto& d = r.summary["leaks"]["dying_memcgs"];
  ASSERT_FALSE(d.is_null()) << r.summary.dump(2);
  // Kept files pin most of the 1,500 memcgs (mm/memcontrol.c: a memcg
  // lives on while pages are charged to it)...
  EXPECT_GE(d["peak"].get<int>(), 1000) << d.dump();
  // ...and once the files are gone they drain.
  EXPECT_LT(d["after_drain_wait"].get<int>(), d["peak"].get<int>() / 2) << d.dump();
  EXPECT_EQ(r.summary["churn"]["cgroups"]["destroyed"], 1500);
  std::printf("dying memcgs: %s\n", d.dump().c_str());
}

// A real task in D that does not switch: a vfork parent waits in
// TASK_KILLABLE (shown as D) until its child exits or execs (kernel/fork.c
// wait_for_vfork_done); the child here only sleeps, by raw syscall, then
// _exits. The detector must list the parent as stuck, with no context
// switch, and make the blocked-tasks finding of it.
TEST_F(DetectKernel, VforkParentInDWithoutASwitchIsABlockedTask) {
  pid_t helper = ::fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    pid_t c = ::vfork();
    if (c == 0) {
      struct timespec ts {
        5, 0
      };
      ::syscall(SYS_nanosleep, &ts, nullptr);
      ::_exit(0);
    }
    int st = 0;
    ::waitpid(c, &st, 0);
    ::_exit(0);
  }
  auto r = run(R"(name: vfork-d
duration: 30s
phases:
  - name: idle
    duration: 4500ms
    actors:
      - type: netns-churn
        rate: 5
options:
  dstate_threshold: 2s
  sample_interval: 250ms
)");
  int st = 0;
  ::waitpid(helper, &st, 0);
  const auto& s = r.summary;
  nlohmann::json mine;
  for (const auto& t : s.value("blocked_tasks", nlohmann::json::array()))
    if (t["pid"] == helper) mine = t;
  ASSERT_FALSE(mine.is_null()) << s.value("blocked_tasks", nlohmann::json()).dump(2);
  EXPECT_TRUE(mine["stuck"].get<bool>()) << mine.dump();
  EXPECT_EQ(mine["context_switches"], 0) << mine.dump();
  EXPECT_GE(mine["longest_without_switch_s"].get<double>(), 2.0);
  bool finding = false;
  for (const auto& f : s["findings"]) finding |= f["id"] == "blocked-tasks";
  EXPECT_TRUE(finding) << s["findings"].dump(2);
  EXPECT_EQ(s["verdict"], "not_reproduced");  // a blocked task alone is not a target bug
  std::printf("vfork parent: %s\n", mine.dump().c_str());
}

}  // namespace
}  // namespace krepro::detect
