#include "harness/vm/modules.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace krepro::vm {
namespace {

constexpr const char* kDep =
    "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n"
    "kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n"
    "kernel/net/llc/llc.ko:\n"
    "kernel/drivers/net/veth.ko:\n"
    "kernel/drivers/md/dm-delay.ko: kernel/drivers/md/dm-mod.ko\n"
    "kernel/drivers/md/dm-mod.ko:\n";

TEST(ModuleName, Normalises) {
  EXPECT_EQ(module_name("dm-delay"), "dm_delay");
  EXPECT_EQ(module_name("kernel/drivers/md/dm-delay.ko.xz"), "dm_delay");
  EXPECT_EQ(module_name("veth.ko"), "veth");
}

TEST(ModuleIndex, ResolvesDependenciesFirstEachOnce) {
  auto idx = ModuleIndex::from_modules_dep(kDep);
  ASSERT_TRUE(idx) << idx.error().message();
  EXPECT_EQ(idx->size(), 6u);
  auto order = idx->resolve({"veth", "bridge", "stp"});
  ASSERT_TRUE(order);
  std::vector<std::string> want = {"kernel/drivers/net/veth.ko", "kernel/net/llc/llc.ko",
                                   "kernel/net/802/stp.ko", "kernel/net/bridge/bridge.ko"};
  EXPECT_EQ(*order, want);
}

TEST(ModuleIndex, DashAndUnderscoreAreTheSame) {
  auto idx = ModuleIndex::from_modules_dep(kDep);
  ASSERT_TRUE(idx);
  auto order = idx->resolve({"dm_delay"});
  ASSERT_TRUE(order);
  std::vector<std::string> want = {"kernel/drivers/md/dm-mod.ko", "kernel/drivers/md/dm-delay.ko"};
  EXPECT_EQ(*order, want);
}

TEST(ModuleIndex, MissingAndBuiltinNames) {
  auto idx = ModuleIndex::from_modules_dep(kDep);
  ASSERT_TRUE(idx);
  idx->add_builtin("kernel/fs/ext4/ext4.ko\n");
  std::vector<std::string> missing;
  auto order = idx->resolve({"ext4", "null_blk", "veth"}, &missing);
  ASSERT_TRUE(order);
  EXPECT_EQ(order->size(), 1u);
  EXPECT_EQ(missing, std::vector<std::string>{"null_blk"});
  EXPECT_TRUE(idx->builtin("ext4"));
}

TEST(ModuleIndex, CycleIsAnError) {
  auto idx = ModuleIndex::from_modules_dep("a.ko: b.ko\nb.ko: a.ko\n");
  ASSERT_TRUE(idx);
  auto order = idx->resolve({"a"});
  ASSERT_FALSE(order);
  EXPECT_EQ(order.error().err(), ELOOP);
}

TEST(ModuleIndex, MalformedLine) {
  auto idx = ModuleIndex::from_modules_dep("kernel/x.ko kernel/y.ko\n");
  ASSERT_FALSE(idx);
  EXPECT_NE(idx.error().message().find(":1"), std::string::npos);
}

// A minimal ELF64 relocatable with a .shstrtab and a .modinfo section.
std::string fake_ko(const std::string& modinfo) {
  std::string shstr = std::string("\0.shstrtab\0.modinfo\0", 20);
  std::string b(64, '\0');
  std::memcpy(b.data(),
              "\x7f"
              "ELF\x02\x01\x01",
              7);
  size_t shstr_off = b.size();
  b += shstr;
  size_t mi_off = b.size();
  b += modinfo;
  while (b.size() % 8) b.push_back('\0');
  uint64_t shoff = b.size();
  auto sh = [&](uint32_t name, uint64_t off, uint64_t size) {
    std::string s(64, '\0');
    std::memcpy(s.data(), &name, 4);
    std::memcpy(s.data() + 24, &off, 8);
    std::memcpy(s.data() + 32, &size, 8);
    b += s;
  };
  sh(0, 0, 0);
  sh(1, shstr_off, shstr.size());
  sh(11, mi_off, modinfo.size());
  uint16_t shentsize = 64, shnum = 3, shstrndx = 1;
  std::memcpy(b.data() + 0x28, &shoff, 8);
  std::memcpy(b.data() + 0x3a, &shentsize, 2);
  std::memcpy(b.data() + 0x3c, &shnum, 2);
  std::memcpy(b.data() + 0x3e, &shstrndx, 2);
  return b;
}

TEST(Modinfo, ReadsKeyValues) {
  auto mi = read_modinfo(fake_ko(std::string("license=GPL\0depends=stp,llc\0name=bridge\0", 41)));
  ASSERT_TRUE(mi) << mi.error().message();
  EXPECT_EQ(mi->at("depends"), "stp,llc");
  EXPECT_EQ(mi->at("name"), "bridge");
  EXPECT_FALSE(read_modinfo("not an elf"));
}

TEST(ModuleIndex, WithoutModulesDepUsesModinfo) {
  auto dir = std::filesystem::temp_directory_path() / ("krepro-mods-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "kernel/net/bridge");
  std::filesystem::create_directories(dir / "kernel/net/802");
  std::filesystem::create_directories(dir / "kernel/net/llc");
  auto put = [&](const std::string& rel, const std::string& mi) {
    std::ofstream(dir / rel, std::ios::binary) << fake_ko(mi);
  };
  put("kernel/net/bridge/bridge.ko", std::string("depends=stp,llc\0name=bridge\0", 28));
  put("kernel/net/802/stp.ko", std::string("depends=llc\0name=stp\0", 21));
  put("kernel/net/llc/llc.ko", std::string("depends=\0name=llc\0", 18));
  auto idx = ModuleIndex::load(dir.string());
  ASSERT_TRUE(idx) << idx.error().message();
  auto order = idx->resolve({"bridge"});
  ASSERT_TRUE(order);
  std::vector<std::string> want = {"kernel/net/llc/llc.ko", "kernel/net/802/stp.ko",
                                   "kernel/net/bridge/bridge.ko"};
  EXPECT_EQ(*order, want);
  std::filesystem::remove_all(dir);
}

// modules_install of a kernel with everything built in (what
// ci/kernel-configs/krepro-guest.config makes): an empty modules.dep, a
// modules.builtin, no .ko. Every needed module is built in; none missing.
TEST(ModuleIndex, AllBuiltInKernelHasAnEmptyModulesDep) {
  auto dir = std::filesystem::temp_directory_path() /
             ("krepro-mods-builtin-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "kernel");
  std::ofstream(dir / "modules.dep");
  std::ofstream(dir / "modules.builtin") << "kernel/drivers/net/veth.ko\n"
                                         << "kernel/net/bridge/bridge.ko\n";
  auto idx = ModuleIndex::load(dir.string());
  ASSERT_TRUE(idx) << idx.error().message();
  std::vector<std::string> missing;
  auto order = idx->resolve({"veth", "bridge"}, &missing);
  ASSERT_TRUE(order);
  EXPECT_TRUE(order->empty());
  EXPECT_TRUE(missing.empty());
  // Without modules.dep and without any .ko it is not a modules folder.
  std::filesystem::remove(dir / "modules.dep");
  std::filesystem::remove(dir / "modules.builtin");
  EXPECT_FALSE(ModuleIndex::load(dir.string()));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace krepro::vm
