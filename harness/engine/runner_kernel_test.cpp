// Kernel tier: a small scenario against the real kernel, end to end through
// the runner; nothing may be left behind.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "harness/engine/registry.h"
#include "harness/engine/runner.h"
#include "harness/engine/scenario.h"
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

}  // namespace
}  // namespace krepro::engine
