#include "harness/vm/initramfs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "harness/vm/vm_runner.h"

namespace krepro::vm {
namespace {

TEST(Ldd, ParsesLibrariesAndLoader) {
  const char* out =
      "\tlinux-vdso.so.1 (0x00007ffd)\n"
      "\tlibfmt.so.9 => /lib/x86_64-linux-gnu/libfmt.so.9 (0x00007f2a)\n"
      "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2b)\n"
      "\t/lib64/ld-linux-x86-64.so.2 (0x00007f2c)\n";
  std::vector<std::string> want = {"/lib/x86_64-linux-gnu/libfmt.so.9",
                                   "/lib/x86_64-linux-gnu/libc.so.6",
                                   "/lib64/ld-linux-x86-64.so.2"};
  EXPECT_EQ(parse_ldd(out), want);
  EXPECT_TRUE(parse_ldd("\tnot a dynamic executable\n").empty());
}

TEST(InitScript, MountOrderAndModules) {
  std::string s = make_init_script(
      {{"/lib/modules/v/kernel/a.ko", {}, false}, {"/lib/modules/v/kernel/b.ko", {}, false}},
      {true, 0});
  auto at = [&](const std::string& needle) {
    auto p = s.find(needle);
    EXPECT_NE(p, std::string::npos) << needle;
    return p;
  };
  // KERNEL-NOTES: cgroup2 first, release memory, then v1 memory.
  EXPECT_LT(at("mount -t cgroup2"), at("echo -memory"));
  EXPECT_LT(at("echo -memory"), at("mount -t cgroup -o memory"));
  EXPECT_LT(at("insmod /lib/modules/v/kernel/a.ko"), at("insmod /lib/modules/v/kernel/b.ko"));
  EXPECT_LT(at("insmod /lib/modules/v/kernel/b.ko"), at("/usr/bin/krepro check"));
  // Global-limit scenarios (memcg-id-leak) run in the guest without allow_host.
  EXPECT_LT(at("export KREPRO_VM_GUEST=1"), at("/usr/bin/krepro check"));
  EXPECT_LT(at("DISK=/dev/vda"), at("mount -t ext4 $DISK"));
  EXPECT_LT(at("mount -t ext4 $DISK"), at("--tee-events"));
  EXPECT_EQ(s.find("dmsetup"), std::string::npos);
  EXPECT_EQ(s.find("rmmod"), std::string::npos);  // nothing required, nothing unloaded
  at("mount -t tracefs");
  at("mount -t debugfs");
  at("mount -t configfs");
  at("poweroff -f");
  EXPECT_EQ(make_init_script({}, {false, 0}).find("/dev/vda"), std::string::npos);
}

// What the shell makes of the script: a syntax check with the host's sh.
bool shell_parses(const std::string& script) {
  char path[] = "/tmp/krepro-init-test-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) return false;
  bool ok = ::write(fd, script.data(), script.size()) == static_cast<ssize_t>(script.size());
  ::close(fd);
  ok = ok && std::system(("sh -n " + std::string(path)).c_str()) == 0;
  ::unlink(path);
  return ok;
}

TEST(InitScript, FixtureModulesAreRequiredQuotedAndUnloadedAfterTheRun) {
  std::string s = make_init_script(
      {{"/lib/modules/v/kernel/veth.ko", {}, false},
       {"/lib/modules/krepro-extra/krepro_netdev_hold.ko", {"pattern=krv*", "hold_ms=-1"}, true}},
      {true, 20});
  auto at = [&](const std::string& needle) {
    auto p = s.find(needle);
    EXPECT_NE(p, std::string::npos) << needle << "\n" << s;
    return p;
  };
  // The glob reaches insmod unexpanded; a failure is reported to the host.
  at("insmod /lib/modules/krepro-extra/krepro_netdev_hold.ko 'pattern=krv*' 'hold_ms=-1' || "
     "{ echo \"KREPRO-SETUP-FAILED insmod krepro_netdev_hold\" > $EV; SETUP_FAILED=1; }");
  EXPECT_LT(at("KREPRO-EXIT $rc"), at("rmmod krepro_netdev_hold"));
  EXPECT_LT(at("rmmod krepro_netdev_hold"), at("KREPRO-RESULT-BEGIN"));
  at("KREPRO-RMMOD krepro_netdev_hold $?");
  // dm-delay under the scratch filesystem, 20 ms on reads and writes.
  at("delay /dev/vda 0 20\"");
  EXPECT_LT(at("dmsetup --noudevsync create krepro-slow"), at("mount -t ext4 $DISK"));
  at("KREPRO-SETUP-FAILED dm-delay");
  EXPECT_TRUE(shell_parses(s));
  EXPECT_TRUE(shell_parses(make_init_script({}, {false, 0})));
}

TEST(ModuleRequest, NameOrFileThenParameters) {
  auto r = parse_module_request("ci/x/krepro_netdev_hold.ko pattern=krv* hold_ms=-1");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->is_file());
  EXPECT_EQ(r->name_or_path, "ci/x/krepro_netdev_hold.ko");
  EXPECT_EQ(r->params, (std::vector<std::string>{"pattern=krv*", "hold_ms=-1"}));
  auto n = parse_module_request("null_blk");
  ASSERT_TRUE(n);
  EXPECT_FALSE(n->is_file());
  EXPECT_TRUE(n->params.empty());
  EXPECT_FALSE(parse_module_request("x.ko name='a'"));
  EXPECT_FALSE(parse_module_request("x.ko a=$(reboot)"));
  EXPECT_FALSE(parse_module_request("x.ko novalue"));
  EXPECT_FALSE(parse_module_request("  "));
}

TEST(ArgsArchive, OneArgumentPerLine) {
  auto e = parse_cpio(args_archive({"run", "smoke", "--set", "a b=1"}));
  ASSERT_TRUE(e);
  ASSERT_EQ(e->size(), 3u);  // etc, etc/krepro, the file
  EXPECT_EQ(e->back().path, "etc/krepro/args");
  EXPECT_EQ(e->back().data, "run\nsmoke\n--set\na b=1\n");
}

TEST(Durations, Parse) {
  EXPECT_DOUBLE_EQ(parse_duration_s("120"), 120);
  EXPECT_DOUBLE_EQ(parse_duration_s("2m"), 120);
  EXPECT_DOUBLE_EQ(parse_duration_s("500ms"), 0.5);
  EXPECT_LT(parse_duration_s("abc"), 0);
  EXPECT_LT(parse_duration_s("5x"), 0);
}

TEST(ExitStatus, MatchesRun) {
  EXPECT_EQ(exit_status("not_reproduced", false), 0);
  EXPECT_EQ(exit_status("reproduced", false), 1);
  EXPECT_EQ(exit_status("skipped", false), 4);
  EXPECT_EQ(exit_status("inconclusive", false), 3);
  EXPECT_EQ(exit_status("error", false), 3);
  EXPECT_EQ(exit_status("reproduced", true), 1);
  EXPECT_EQ(exit_status("skipped", true), 125);
  EXPECT_EQ(exit_status("inconclusive", true), 125);
}

// Bad --module / --disk-delay requests are usage errors that start no
// guest and make no run folder.
TEST(RunVm, BadFixtureRequestsAreUsageErrorsAndMakeNothing) {
  auto out = std::filesystem::temp_directory_path() / ("krepro-vmu-" + std::to_string(::getpid()));
  VmConfig c;
  c.kernel = "/bin/true";  // exists; never booted
  c.out = out.string();
  c.quiet = true;
  c.guest_args = {"run", "smoke"};
  c.extra_modules = {"/nonexistent/krepro_fixture.ko pattern=krv*"};
  EXPECT_EQ(run_vm(c), 2);
  c.bisect = true;
  EXPECT_EQ(run_vm(c), 255);
  c.bisect = false;
  c.extra_modules = {"veth name=$(reboot)"};
  EXPECT_EQ(run_vm(c), 2);
  c.extra_modules = {};
  c.scratch_disk_mib = 0;  // no scratch disk: nothing to delay
  c.disk_delay_ms = 20;
  EXPECT_EQ(run_vm(c), 2);
  EXPECT_FALSE(std::filesystem::exists(out));
  std::filesystem::remove_all(out);  // what a failing run_vm made
}

TEST(BuildImage, CachedByContent) {
  auto dir = std::filesystem::temp_directory_path() / ("krepro-img-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "scen");
  std::ofstream(dir / "scen/x.yaml") << "name: x\n";
  if (!std::filesystem::exists("/bin/busybox")) GTEST_SKIP() << "no /bin/busybox";
  ImageSpec spec;
  spec.krepro_binary = "/proc/self/exe";
  spec.scenarios_dir = (dir / "scen").string();
  spec.cache_dir = (dir / "cache").string();
  auto a = build_image(spec);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_FALSE(a->from_cache);
  auto b = build_image(spec);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->from_cache);
  EXPECT_EQ(a->path, b->path);
  std::ofstream(dir / "scen/x.yaml") << "name: y\n";  // content change → new image
  auto c = build_image(spec);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->from_cache);
  EXPECT_NE(c->hash, a->hash);
  // Padded so that an appended archive starts aligned (init/initramfs.c).
  EXPECT_EQ(std::filesystem::file_size(c->path) % 512, 0u);
  // The image holds init, busybox links, the binary and its libraries.
  std::string cmd = "gzip -dc " + c->path + " > " + (dir / "x.cpio").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f(dir / "x.cpio", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(f)), {});
  auto e = parse_cpio(raw);
  ASSERT_TRUE(e);
  std::set<std::string> paths;
  for (const auto& x : *e) paths.insert(x.path);
  EXPECT_TRUE(paths.count("init"));
  EXPECT_TRUE(paths.count("bin/sh"));
  EXPECT_TRUE(paths.count("usr/bin/krepro"));
  EXPECT_TRUE(paths.count("usr/share/krepro/scenarios/x.yaml"));
  EXPECT_TRUE(paths.count("lib64/ld-linux-x86-64.so.2"));
  EXPECT_TRUE(paths.count("dev/console"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace krepro::vm
