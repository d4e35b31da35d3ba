#include "harness/vm/accel.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace krepro::vm {
namespace {

class AccelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("krepro-accel-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    auto p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  std::filesystem::path dir_;
};

constexpr const char* kNoVirt =
    "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 hypervisor lahf_lm\n";
constexpr const char* kVmx = "processor\t: 0\nflags\t\t: fpu vme vmx sse2\n";
constexpr const char* kSvm = "processor\t: 0\nflags\t\t: fpu svm sse2\n";

TEST_F(AccelTest, ParsesModes) {
  EXPECT_EQ(*parse_accel_mode("auto"), AccelMode::kAuto);
  EXPECT_EQ(*parse_accel_mode("kvm"), AccelMode::kKvm);
  EXPECT_EQ(*parse_accel_mode("tcg"), AccelMode::kTcg);
  EXPECT_FALSE(parse_accel_mode("hvf"));
}

TEST_F(AccelTest, CpuinfoFlags) {
  EXPECT_FALSE(cpuinfo_has_virt(kNoVirt));
  EXPECT_TRUE(cpuinfo_has_virt(kVmx));
  EXPECT_TRUE(cpuinfo_has_virt(kSvm));
  // "vmx" inside another flag name or outside a flags line does not count.
  EXPECT_FALSE(cpuinfo_has_virt("flags\t: vmxfoo svm_lock\nmodel name\t: vmx\n"));
}

TEST_F(AccelTest, AutoWithoutVirtFlagsIsTcgAndNeverOpensKvm) {
  // The kvm path does not exist: if the code tried to open it first the
  // reason would name it; it must stop at cpuinfo.
  AccelProbe p{write("cpuinfo", kNoVirt), (dir_ / "no-kvm").string()};
  auto c = choose_accel(AccelMode::kAuto, p);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->accel, "tcg");
  EXPECT_NE(c->reason.find("neither vmx nor svm"), std::string::npos) << c->reason;
}

TEST_F(AccelTest, AutoWithVirtFlagsButNoKvmDeviceIsTcg) {
  AccelProbe p{write("cpuinfo", kVmx), (dir_ / "no-kvm").string()};
  auto c = choose_accel(AccelMode::kAuto, p);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->accel, "tcg");
  EXPECT_NE(c->reason.find("cannot open"), std::string::npos) << c->reason;
}

TEST_F(AccelTest, AutoWithVirtFlagsAndAFileThatIsNotKvmIsTcg) {
  // A regular file opens but KVM_GET_API_VERSION fails (ENOTTY).
  AccelProbe p{write("cpuinfo", kSvm), write("kvm", "")};
  auto c = choose_accel(AccelMode::kAuto, p);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->accel, "tcg");
  EXPECT_NE(c->reason.find("KVM_GET_API_VERSION"), std::string::npos) << c->reason;
}

TEST_F(AccelTest, ExplicitKvmFailsWhenProbeFails) {
  AccelProbe p{write("cpuinfo", kNoVirt), write("kvm", "")};
  auto c = choose_accel(AccelMode::kKvm, p);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().err(), ENODEV);
}

TEST_F(AccelTest, TcgNeedsNoProbe) {
  AccelProbe p{(dir_ / "missing-cpuinfo").string(), (dir_ / "missing-kvm").string()};
  auto c = choose_accel(AccelMode::kTcg, p);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->accel, "tcg");
}

TEST_F(AccelTest, UnreadableCpuinfoIsTcg) {
  AccelProbe p{(dir_ / "missing-cpuinfo").string(), (dir_ / "missing-kvm").string()};
  auto c = choose_accel(AccelMode::kAuto, p);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->accel, "tcg");
}

TEST_F(AccelTest, ThisHostPicksTcg) {
  // The development machines have /dev/kvm without vmx/svm (KERNEL-NOTES);
  // reading the real cpuinfo is safe: without the flags nothing is opened.
  auto text = std::ifstream("/proc/cpuinfo");
  std::string all((std::istreambuf_iterator<char>(text)), {});
  if (cpuinfo_has_virt(all)) GTEST_SKIP() << "host advertises vmx/svm; not probing /dev/kvm here";
  auto c = choose_accel(AccelMode::kAuto);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->accel, "tcg");
}

}  // namespace
}  // namespace krepro::vm
