// VM tier: boots Debian's 6.1 kernel (ci/fetch-test-kernel) under qemu TCG.
// Never KVM: /dev/kvm on the development machines is a nested device whose
// guests hang (shared KERNEL-NOTES), so these tests pass --accel tcg.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "harness/util/clock.h"
#include "harness/util/fs.h"
#include "harness/vm/initramfs.h"
#include "harness/vm/vm_runner.h"
#include "results/summary.h"

namespace krepro::vm {
namespace {

namespace stdfs = std::filesystem;

struct TestKernel {
  std::string kernel, modules, why_not;
};

const TestKernel& test_kernel() {
  static TestKernel k = [] {
    TestKernel t;
    if (std::system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0) {
      t.why_not = "qemu-system-x86_64 not installed";
      return t;
    }
    auto out = run_capture(std::string(KREPRO_SOURCE_DIR) + "/ci/fetch-test-kernel 2>/dev/null");
    if (!out) {
      t.why_not = "ci/fetch-test-kernel failed (no network or no Debian package lists?)";
      return t;
    }
    for (const auto& l : fs::split(*out, '\n')) {
      if (l.rfind("KERNEL=", 0) == 0) t.kernel = l.substr(7);
      if (l.rfind("MODULES=", 0) == 0) t.modules = l.substr(8);
    }
    if (t.kernel.empty() || !fs::exists(t.kernel))
      t.why_not = "ci/fetch-test-kernel gave no kernel";
    return t;
  }();
  return k;
}

class VmBoot : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test_kernel().why_not.empty()) GTEST_SKIP() << test_kernel().why_not;
    dir_ = stdfs::temp_directory_path() /
           ("krepro-vmtest-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    stdfs::remove_all(dir_);
  }
  void TearDown() override {
    // Removed also when the test failed (its output has the console tail);
    // KREPRO_KEEP_VM_TEST=1 keeps the run folder for a look.
    if (!dir_.empty() && !std::getenv("KREPRO_KEEP_VM_TEST")) stdfs::remove_all(dir_);
  }
  VmConfig base() const {
    VmConfig c;
    c.kernel = test_kernel().kernel;
    c.modules = test_kernel().modules;
    c.accel = AccelMode::kTcg;  // never KVM here
    c.krepro_binary = KREPRO_BINARY;
    c.scenarios_dir = std::string(KREPRO_SOURCE_DIR) + "/scenarios";
    c.out = (dir_ / "out").string();
    c.quiet = false;
    return c;
  }
  nlohmann::json summary() const {
    auto text = fs::read_file((dir_ / "out/summary.json").string());
    EXPECT_TRUE(text);
    return text ? nlohmann::json::parse(*text) : nlohmann::json();
  }
  stdfs::path dir_;
};

TEST_F(VmBoot, SmokeInsideDebian61) {
  VmConfig c = base();
  // CI scale: a quarter of smoke's counts and duration keeps this test at
  // about a minute under TCG.
  c.guest_args = {"run", "smoke", "--set", "scale=0.25"};
  c.watchdog_s = 120;
  c.timeout_s = 480;
  int rc = run_vm(c);
  auto s = summary();
  ASSERT_TRUE(s.contains("verdict"));
  EXPECT_EQ(rc, 0) << s.dump(2);
  EXPECT_EQ(s["verdict"], "not_reproduced") << s.value("reason", "");
  EXPECT_EQ(results::check_summary_shape(s), std::nullopt);
  EXPECT_TRUE(fs::exists((dir_ / "out/events.jsonl").string()));
  EXPECT_TRUE(fs::exists((dir_ / "out/console.log").string()));
  auto gk = fs::read_line((dir_ / "out/guest_kernel").string());
  ASSERT_TRUE(gk);
  EXPECT_EQ(gk->rfind("6.1.", 0), 0u) << *gk;
  EXPECT_EQ(s["host"]["kernel_release"], *gk);  // the guest's summary, not a host one
  ASSERT_TRUE(s["vm"].contains("boot_s"));
  EXPECT_GT(s["vm"]["events_streamed"].get<uint64_t>(), 0u);
  // The console carries `krepro check` output (first step in the guest).
  auto con = fs::read_file((dir_ / "out/console.log").string());
  ASSERT_TRUE(con);
  EXPECT_NE(con->find("krepro-init: krepro check"), std::string::npos);
  double boot = s["vm"]["boot_s"], total = s["vm"]["total_s"];
  RecordProperty("boot_s", std::to_string(boot));
  RecordProperty("total_s", std::to_string(total));
  std::printf("vm smoke: boot (first console line -> init) %.1f s, total %.1f s\n", boot, total);
}

TEST_F(VmBoot, IoScenarioGetsScratchDisk) {
  VmConfig c = base();
  // wal-append is an I/O scenario: the runner attaches an ext4 virtio disk
  // (formatted on the host) and points the run's scratch_dir at it.
  c.guest_args = {"run", "wal-append", "--duration", "8s"};
  c.scratch_disk_mib = -1;
  c.timeout_s = 300;
  int rc = run_vm(c);
  auto s = summary();
  EXPECT_EQ(rc, 0) << s.dump(2);
  EXPECT_EQ(s["verdict"], "not_reproduced") << s.value("reason", "");
  auto con = fs::read_file((dir_ / "out/console.log").string());
  ASSERT_TRUE(con);
  EXPECT_NE(con->find("scratch_dir=/mnt/scratch"), std::string::npos);
  EXPECT_EQ(con->find("no scratch disk"), std::string::npos);
  bool virtio_blk = false;
  for (const auto& m : s["vm"]["modules"])
    virtio_blk |= m.get<std::string>().find("virtio_blk") != std::string::npos;
  EXPECT_TRUE(virtio_blk);
  ASSERT_TRUE(s.contains("workload"));
  EXPECT_FALSE(s["workload"].empty()) << s.dump(2);
}

TEST_F(VmBoot, KernelPanicEndsWithErrorVerdict) {
  VmConfig c = base();
  c.guest_args = {"run", "smoke"};
  // No such rdinit: the kernel falls back to mounting root=, finds none and
  // panics (init/do_mounts.c mount_block_root "VFS: Unable to mount root fs").
  c.append = "rdinit=/krepro-no-such-init";
  c.watchdog_s = 60;
  c.timeout_s = 240;
  int rc = run_vm(c);
  auto s = summary();
  EXPECT_EQ(rc, 3);
  EXPECT_EQ(s["verdict"], "error");
  EXPECT_EQ(s.value("reason", ""), "guest kernel panic");
  ASSERT_TRUE(s["vm"].contains("panic_text"));
  EXPECT_NE(s["vm"]["panic_text"][0].get<std::string>().find("Kernel panic - not syncing"),
            std::string::npos);
  bool sig = false;
  for (const auto& g : s["signatures"]) sig |= g["id"] == "kernel-panic";
  EXPECT_TRUE(sig) << s.dump(2);
}

TEST_F(VmBoot, HungGuestEndsByWatchdogWithEventsKept) {
  VmConfig c = base();
  c.guest_args = {"run", "smoke"};  // never reached: init hangs first
  c.extra_files.emplace_back(std::string(KREPRO_SOURCE_DIR) + "/ci/vm-test-fixtures/hang",
                             "bin/krepro-hang");
  c.append = "rdinit=/bin/krepro-hang";
  c.watchdog_s = 8;
  c.timeout_s = 240;
  int64_t t0 = mono_ns();
  int rc = run_vm(c);
  double took = static_cast<double>(mono_ns() - t0) / 1e9;
  auto s = summary();
  EXPECT_EQ(rc, 3);
  EXPECT_EQ(s["verdict"], "inconclusive");
  EXPECT_NE(s.value("reason", "").find("guest hung: no progress for 8 s"), std::string::npos)
      << s.dump(2);
  EXPECT_EQ(s["vm"]["stopped_by"], "watchdog");
  EXPECT_EQ(results::check_summary_shape(s), std::nullopt);
  EXPECT_FALSE(s["vm"]["console_tail"].empty());
  // Boot (~6-20 s under TCG) + watchdog, well before the overall timeout.
  EXPECT_LT(took, 120.0);
  auto ev = fs::read_file((dir_ / "out/events.jsonl").string());
  ASSERT_TRUE(ev);
  auto lines = fs::split(*ev, '\n');
  ASSERT_EQ(lines.size(), 3u) << *ev;
  EXPECT_NE(lines[2].find("hang-test-3"), std::string::npos);
  std::printf("vm hang: ended after %.1f s (watchdog 8 s)\n", took);
}

// A guest that reports it is done but never powers off (a kernel without
// ACPI halts on poweroff): the host ends it 10 s after KREPRO-DONE, long
// before the 60 s watchdog.
TEST_F(VmBoot, GuestThatIsDoneButDoesNotPowerOffIsEnded) {
  VmConfig c = base();
  c.guest_args = {"run", "smoke"};  // never reached: the fixture is init
  c.extra_files.emplace_back(
      std::string(KREPRO_SOURCE_DIR) + "/ci/vm-test-fixtures/done-no-poweroff",
      "bin/krepro-done-no-poweroff");
  c.append = "rdinit=/bin/krepro-done-no-poweroff";
  c.watchdog_s = 60;
  c.timeout_s = 240;
  int64_t t0 = mono_ns();
  run_vm(c);
  double took = static_cast<double>(mono_ns() - t0) / 1e9;
  auto s = summary();
  EXPECT_EQ(s["vm"]["stopped_by"], "done") << s.dump(2);
  EXPECT_EQ(s["vm"]["guest_exit"], 0);
  EXPECT_LT(took, 60.0);  // boot + 10 s grace, not the watchdog
  std::printf("vm done-no-poweroff: ended after %.1f s\n", took);
}

#ifdef KREPRO_VM_CLI
// ci/bisect-step on a fake kernel tree whose "build" copies the Debian
// kernel: the step boots it, runs smoke and answers git bisect's codes.
class BisectStep : public VmBoot {
 protected:
  int step(const std::string& extra_env) {
    std::string tree = (dir_ / "tree").string();
    stdfs::create_directories(tree);
    std::string fix = std::string(KREPRO_SOURCE_DIR) + "/ci/vm-test-fixtures/fake-kernel-tree";
    stdfs::copy(fix + "/Makefile", tree + "/Makefile");
    auto release = stdfs::path(test_kernel().modules).filename().string();
    std::string cmd = "cd " + shell_quote(tree) + " && env " + extra_env +
                      " PREBUILT_KERNEL=" + shell_quote(test_kernel().kernel) +
                      " PREBUILT_MODULES=" + shell_quote(test_kernel().modules) +
                      " KRELEASE=" + shell_quote(release) +
                      " KREPRO_VM_GUEST_BINARY=" + shell_quote(KREPRO_BINARY) +
                      " KREPRO_BISECT_OUT=" + shell_quote((dir_ / "runs").string()) + " " +
                      shell_quote(std::string(KREPRO_SOURCE_DIR) + "/ci/bisect-step") +
                      " --config " + shell_quote(fix + "/config") +
                      " --scenario smoke --runs 1 --jobs 1 --krepro " + shell_quote(KREPRO_VM_CLI) +
                      " -- --set scale=0.25 > " + shell_quote((dir_ / "step.log").string()) +
                      " 2>&1";
    int st = std::system(cmd.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  std::string step_log() const { return fs::read_file((dir_ / "step.log").string()).value_or(""); }
};

TEST_F(BisectStep, GoodKernelExitsZero) {
  EXPECT_EQ(step(""), 0) << step_log();
  auto s = fs::read_file((dir_ / "runs/tree-1/summary.json").string());
  ASSERT_TRUE(s) << step_log();
  EXPECT_EQ(nlohmann::json::parse(*s)["verdict"], "not_reproduced");
}

TEST_F(BisectStep, BuildFailureSkips) {
  EXPECT_EQ(step("BROKEN=1"), 125) << step_log();
  EXPECT_FALSE(fs::exists((dir_ / "runs/tree-1").string()));  // nothing booted
}

TEST_F(VmBoot, NightlyWritesIndex) {
  std::string list = (dir_ / "images.list").string();
  stdfs::create_directories(dir_);
  {
    std::ofstream f(list);
    f << "# name kernel modules\n"
      << "deb61 " << test_kernel().kernel << " " << test_kernel().modules << "\n"
      << "deb61-nomerge " << test_kernel().kernel << " " << test_kernel().modules
      << " -- slab_nomerge\n";
  }
  std::string out = (dir_ / "nightly").string();
  std::string cmd = "KREPRO_VM_GUEST_BINARY=" + shell_quote(KREPRO_BINARY) + " " +
                    shell_quote(std::string(KREPRO_SOURCE_DIR) + "/ci/nightly") + " " +
                    shell_quote(list) + " --scenarios smoke --out " + shell_quote(out) +
                    " --krepro " + shell_quote(KREPRO_VM_CLI) + " -- --set scale=0.25 > " +
                    shell_quote((dir_ / "nightly.log").string()) + " 2>&1";
  int st = std::system(cmd.c_str());
  auto log = fs::read_file((dir_ / "nightly.log").string()).value_or("");
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << log;
  auto idx = fs::read_file(out + "/index.json");
  ASSERT_TRUE(idx) << log;
  auto j = nlohmann::json::parse(*idx);
  // Two images (the same kernel, the second with another command line):
  // a row each, in list order, each with its own run folder and report.
  ASSERT_EQ(j["runs"].size(), 2u) << j.dump(2);
  EXPECT_EQ(j["runs"][0]["image"], "deb61");
  EXPECT_EQ(j["runs"][1]["image"], "deb61-nomerge");
  auto html = fs::read_file(out + "/index.html");
  ASSERT_TRUE(html);
  for (const char* img : {"deb61", "deb61-nomerge"}) {
    SCOPED_TRACE(img);
    size_t i = std::string(img) == "deb61" ? 0 : 1;
    EXPECT_EQ(j["runs"][i]["scenario"], "smoke");
    EXPECT_EQ(j["runs"][i]["verdict"], "not_reproduced");
    std::string run = std::string(img) + "-smoke";
    EXPECT_NE(html->find(run + "/"), std::string::npos);
    EXPECT_TRUE(fs::exists(out + "/" + run + "/report.html"));
    auto sum = fs::read_file(out + "/" + run + "/summary.json");
    ASSERT_TRUE(sum);
    bool nomerge = nlohmann::json::parse(*sum)["vm"]["append"].get<std::string>().find(
                       "slab_nomerge") != std::string::npos;
    EXPECT_EQ(nomerge, i == 1);
  }
}
#endif

}  // namespace
}  // namespace krepro::vm
