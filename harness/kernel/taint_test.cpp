#include "harness/kernel/taint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "harness/util/fs.h"

namespace krepro::kernel {
namespace {

TEST(Taint, FlagTableMatchesKernelOrder) {
  auto flags = taint_flags();
  ASSERT_EQ(flags.size(), 20u);
  std::string letters;
  for (size_t i = 0; i < flags.size(); ++i) {
    EXPECT_EQ(flags[i].bit, static_cast<int>(i));
    letters.push_back(flags[i].letter);
  }
  EXPECT_EQ(letters, "PFSRMBUDAWCIOELKXTNJ");
}

TEST(Taint, ParseAndDecode) {
  // W (bit 9) | O (bit 12) | E (bit 13) = 512 + 4096 + 8192.
  auto t = parse_taint("12800\n");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->letters(), "WOE");
  EXPECT_TRUE(t->has('W'));
  EXPECT_FALSE(t->has('D'));
  EXPECT_EQ(t->describe(), "W (WARN), O (OOT_MODULE), E (UNSIGNED_MODULE)");
  ASSERT_EQ(t->flags().size(), 3u);
  EXPECT_EQ(parse_taint("0")->describe(), "none");
  // Unknown high bits are kept and shown.
  EXPECT_EQ(parse_taint(std::to_string(uint64_t{1} << 40))->letters(), "?");
}

TEST(Taint, RejectsGarbage) {
  EXPECT_FALSE(parse_taint(""));
  EXPECT_FALSE(parse_taint("abc"));
  EXPECT_FALSE(parse_taint("12 3"));
  EXPECT_FALSE(parse_taint("-1"));
}

TEST(Taint, ReadFromInjectedPathAndReportChange) {
  char tmpl[] = "/tmp/krepro-taint-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::string path = tmpl;
  ASSERT_TRUE(fs::write_file(path, "4096\n", true));
  auto before = read_taint(path);
  ASSERT_TRUE(before);
  // A warning and an oops happen: W (512) and D (128) appear.
  ASSERT_TRUE(fs::write_file(path, std::to_string(4096 + 512 + 128) + "\n"));
  auto after = read_taint(path);
  ASSERT_TRUE(after);
  auto change = taint_change(*before, *after);
  EXPECT_TRUE(change.changed());
  EXPECT_EQ(change.added, 512u + 128u);
  EXPECT_EQ(change.removed, 0u);
  EXPECT_EQ(change.describe(), "+D +W");
  EXPECT_FALSE(taint_change(*after, *after).changed());
  EXPECT_EQ(taint_change(*after, *before).describe(), "-D -W");
  ::unlink(tmpl);
  auto gone = read_taint(path);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().err(), ENOENT);
}

TEST(Taint, RealProcfsParsesWhenPresent) {
  if (::access("/proc/sys/kernel/tainted", R_OK) != 0) GTEST_SKIP() << "no procfs tainted";
  auto t = read_taint();
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->letters().find('?'), std::string::npos);
}

}  // namespace
}  // namespace krepro::kernel
