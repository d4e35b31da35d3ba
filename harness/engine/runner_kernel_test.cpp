// Kernel tier: a small scenario against the real kernel, end to end through
// the runner; nothing may be left behind.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "harness/engine/registry.h"
#include "harness/engine/runner.h"
#include "harness/engine/scenario.h"
#include "harness/kernel/cgroup.h"
#include "harness/kernel/host_probe.h"
#include "harness/util/fs.h"

namespace krepro::engine {
namespace {

bool krepro_cgroups_of(const std::string& run_id) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(
           "/sys/fs/cgroup/memory", std::filesystem::directory_options::skip_permission_denied)) {
    if (e.path().filename().string().find(run_id) != std::string::npos) return true;
  }
  return false;
}

TEST(RunnerKernel, SmallChurnCountsAndCleansUp) {
  kernel::HostProbe host = kernel::probe_host();
  if (!host.root || !host.has("netns") || !host.has("cgroup-v1-memory"))
    GTEST_SKIP() << "needs root, netns and the v1 memory controller";
  Registry reg;
  register_builtin_actors(reg);
  auto raw = parse_scenario_text(R"(name: kt
duration: 60s
phases:
  - name: churn
    actors:
      - type: cgroup-churn
        count: 300
        alive: 40
        workers: 2
        payload: files
        payload_files: 4
      - type: netns-churn
        count: 60
        alive: 10
        bridge: true
        addresses: true
options:
  teardown_wait: 20s
)",
                                 "kt.yaml");
  ASSERT_TRUE(raw) << raw.error().message();
  auto sc = compile_scenario(*raw, reg);
  ASSERT_TRUE(sc) << sc.error().message();
  char t[] = "/tmp/krepro-runner-XXXXXX";
  ASSERT_NE(::mkdtemp(t), nullptr);
  RunOptions ro;
  ro.out_dir = std::string(t) + "/run";
  ro.journal_dir = std::string(t) + "/journal";
  ro.run_id = "kt" + std::to_string(::getpid() % 100000);
  StopState stop;
  auto out = run_scenario(*sc, ro, host, stop, {});
  const auto& s = out.summary;
  EXPECT_EQ(out.exit_code, 0) << s.dump(2);
  EXPECT_EQ(s["verdict"], "not_reproduced");
  EXPECT_EQ(s["churn"]["cgroups"]["created"], 300);
  EXPECT_EQ(s["churn"]["cgroups"]["destroyed"], 300);
  EXPECT_EQ(s["churn"]["cgroups"]["peak_alive"], 40);
  EXPECT_EQ(s["churn"]["netns"]["created"], 60);
  EXPECT_EQ(s["churn"]["netns"]["destroyed"], 60);
  EXPECT_EQ(s["churn"]["veth"]["created"], 60);
  // Every dropped namespace's hub-side veth was seen going away.
  EXPECT_EQ(s["churn"]["veth"]["destroyed"], 60);
  EXPECT_EQ(s["churn_latency"]["netns.teardown"]["count"], 60);
  EXPECT_EQ(s["churn"]["cgroups"]["failed"], 0) << s["churn"]["cgroups"]["errors"].dump();
  EXPECT_EQ(s["churn"]["netns"]["failed"], 0) << s["churn"]["netns"]["errors"].dump();
  EXPECT_FALSE(krepro_cgroups_of(ro.run_id));
  EXPECT_FALSE(fs::exists(ro.out_dir + "/krepro-" + ro.run_id + "-scratch"));
  EXPECT_TRUE(fs::list_dir(ro.journal_dir)->empty());
  EXPECT_TRUE(fs::exists(ro.out_dir + "/events.jsonl"));
  std::filesystem::remove_all(t);
}

// Any krepro-* cgroup of this run in any hierarchy, and a failure message
// for each.
std::vector<std::string> leftovers(const std::string& run_id) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           "/sys/fs/cgroup", std::filesystem::directory_options::skip_permission_denied, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->path().filename().string().find("krepro-" + run_id) == 0)
      out.push_back(it->path().string());
  }
  return out;
}

struct TempRun {
  TempRun() {
    char t[] = "/tmp/krepro-runner-XXXXXX";
    if (::mkdtemp(t)) dir = t;
  }
  ~TempRun() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  std::string dir;
};

RunOutcome run_text(const std::string& text, const std::vector<std::string>& sets,
                    const std::string& dir, const std::string& run_id) {
  Registry reg;
  register_builtin_actors(reg);
  auto raw = parse_scenario_text(text, "kt.yaml");
  EXPECT_TRUE(raw) << raw.error().message();
  for (const auto& s : sets) EXPECT_TRUE(apply_set(*raw, s)) << s;
  auto sc = compile_scenario(*raw, reg);
  EXPECT_TRUE(sc) << sc.error().message();
  RunOptions ro;
  ro.out_dir = dir + "/run";
  ro.journal_dir = dir + "/journal";
  ro.run_id = run_id;
  StopState stop;
  return run_scenario(*sc, ro, kernel::probe_host(), stop, {});
}

const char* kPods = R"(name: kt-pods
duration: 60s
phases:
  - name: churn
    actors:
      - type: cgroup-churn
        name: pod
        count: 200
        alive: 20
        workers: 2
        controllers: memory,pids,cpu
        pids_max: 64
        cpu_shares: 256
        payload: files
        payload_files: 2
options:
  teardown_wait: 1s
)";

// A pod in memory, pids and cpu, as kubelet places one: every job in all
// three hierarchies (a placement failure would count as job:exit121), the
// counts right, per-hierarchy latencies, and nothing left anywhere.
TEST(RunnerKernel, PodCgroupsInMemoryPidsAndCpu) {
  kernel::HostProbe host = kernel::probe_host();
  auto l = kernel::CgroupLayout::discover();
  if (!host.root || !l || !l->v1("memory") || !l->v1("pids") || !l->v1("cpu"))
    GTEST_SKIP() << "needs root and v1 memory, pids and cpu hierarchies";
  if (l->v1("memory") == l->v1("cpu") || l->v1("pids") == l->v1("cpu"))
    GTEST_SKIP() << "expects pids and cpu in hierarchies of their own";
  // Where krepro sits at a hierarchy root, say so explicitly.
  std::string parent;
  for (const char* c : {"memory", "pids", "cpu"})
    if (l->self_at_root_v1(c)) parent += (parent.empty() ? "" : ":") + l->v1(c)->mount_point;
  std::vector<std::string> sets;
  if (!parent.empty()) sets.push_back("cgroup_parent=" + parent);
  TempRun t;
  ASSERT_FALSE(t.dir.empty());
  std::string id = "kp" + std::to_string(::getpid() % 100000);
  auto out = run_text(kPods, sets, t.dir, id);
  const auto& s = out.summary;
  EXPECT_EQ(out.exit_code, 0) << s.dump(2);
  EXPECT_EQ(s["churn"]["cgroups"]["created"], 200);
  EXPECT_EQ(s["churn"]["cgroups"]["destroyed"], 200);
  EXPECT_EQ(s["churn"]["cgroups"]["failed"], 0) << s["churn"]["cgroups"]["errors"].dump();
  EXPECT_EQ(s["churn"]["cgroups"]["peak_alive"], 20);
  const auto& lat = s["churn_latency"];
  for (const char* op : {"cgroups.mkdir", "cgroups.rmdir", "cgroups.mkdir.memory",
                         "cgroups.mkdir.pids", "cgroups.mkdir.cpu", "cgroups.rmdir.pids"}) {
    ASSERT_TRUE(lat.contains(op)) << op << " in " << lat.dump();
    EXPECT_EQ(lat[op]["count"], 200) << op;
  }
  auto features = s["host"]["features_used"];
  for (const char* f : {"cgroup-v1-memory", "cgroup-v1-pids", "cgroup-v1-cpu"})
    EXPECT_NE(std::find(features.begin(), features.end(), f), features.end()) << f;
  EXPECT_EQ(leftovers(id), std::vector<std::string>{});
  EXPECT_TRUE(fs::list_dir(t.dir + "/journal")->empty());
}

// Not a controller: scenario error (2). A controller this host does not
// mount: skipped (4). Neither creates a cgroup.
TEST(RunnerKernel, BadOrUnmountedControllerCreatesNothing) {
  kernel::HostProbe host = kernel::probe_host();
  auto l = kernel::CgroupLayout::discover();
  if (!host.root || !l || !l->v1("memory")) GTEST_SKIP() << "needs root and v1 memory";
  std::string unmounted;
  for (const char* c : {"net_cls", "perf_event", "rdma", "misc", "hugetlb", "net_prio"})
    if (!l->v1(c)) {
      unmounted = c;
      break;
    }
  TempRun t;
  ASSERT_FALSE(t.dir.empty());
  std::string id = "kb" + std::to_string(::getpid() % 100000);
  auto bad = run_text(kPods, {"pod.controllers=memory,pids,cpux"}, t.dir, id);
  EXPECT_EQ(bad.exit_code, 2) << bad.summary.dump(2);
  EXPECT_NE(bad.summary.value("reason", "").find("cpux"), std::string::npos);
  EXPECT_EQ(bad.summary["churn"], nlohmann::json::object());
  // A bad cgroup_parent list is a usage error too.
  auto two = run_text(kPods, {"cgroup_parent=/a:/b"}, t.dir, id);
  EXPECT_EQ(two.exit_code, 2) << two.summary.dump(2);
  if (!unmounted.empty()) {
    auto skip = run_text(kPods, {"pod.controllers=memory,pids,cpu," + unmounted}, t.dir, id);
    EXPECT_EQ(skip.exit_code, 4) << skip.summary.dump(2);
    EXPECT_EQ(skip.summary["verdict"], "skipped");
    EXPECT_NE(skip.summary.value("reason", "").find(unmounted), std::string::npos);
  }
  EXPECT_EQ(leftovers(id), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(t.dir + "/journal") && !fs::list_dir(t.dir + "/journal")->empty());
}

}  // namespace
}  // namespace krepro::engine
