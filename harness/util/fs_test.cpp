#include "harness/util/fs.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

namespace krepro {
namespace {

TEST(Fs, SplitTrimJoin) {
  EXPECT_EQ(fs::split("a,,b", ','), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(fs::split("a,,b", ',', false), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(fs::trim("  x y\n"), "x y");
  EXPECT_EQ(fs::join("/a/", "/b"), "/a/b");
}

TEST(Fs, ReadWriteListMakeDirs) {
  char tmpl[] = "/tmp/krepro-fs-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  ASSERT_TRUE(fs::make_dirs(dir + "/x/y"));
  EXPECT_TRUE(fs::is_dir(dir + "/x/y"));
  ASSERT_TRUE(fs::write_file(dir + "/x/f", "hello\nworld\n", true));
  EXPECT_EQ(*fs::read_file(dir + "/x/f"), "hello\nworld\n");
  EXPECT_EQ(*fs::read_line(dir + "/x/f"), "hello");
  auto names = *fs::list_dir(dir + "/x");
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"f", "y"}));
  auto missing = fs::read_file(dir + "/nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().err(), ENOENT);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace krepro
