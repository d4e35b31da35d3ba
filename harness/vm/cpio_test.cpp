#include "harness/vm/cpio.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace krepro::vm {
namespace {

TEST(Cpio, HeaderLayoutIsNewc) {
  CpioWriter w;
  w.add_file("a", "xyz", 0644);
  std::string a = w.finish();
  // init/initramfs.c do_header: magic, 13 fields of 8 hex digits.
  ASSERT_GE(a.size(), 110u);
  EXPECT_EQ(a.substr(0, 6), "070701");
  EXPECT_EQ(a.substr(6 + 8, 8), "000081A4");       // mode S_IFREG|0644
  EXPECT_EQ(a.substr(6 + 6 * 8, 8), "00000003");   // filesize
  EXPECT_EQ(a.substr(6 + 11 * 8, 8), "00000002");  // namesize "a\0"
  EXPECT_EQ(a.substr(110, 2), std::string("a\0", 2));
  // name padded to 4 bytes: 110 + 2 = 112, data at 112.
  EXPECT_EQ(a.substr(112, 3), "xyz");
  EXPECT_EQ(a.size() % 512, 0u);
  EXPECT_NE(a.find("TRAILER!!!"), std::string::npos);
}

TEST(Cpio, RoundTripWithParentsLinksAndDevices) {
  CpioWriter w;
  EXPECT_TRUE(w.add_file("/usr/bin/tool",
                         std::string("\x7f"
                                     "ELF\0\1",
                                     6),
                         0755));
  EXPECT_TRUE(w.add_symlink("bin/sh", "/bin/busybox"));
  EXPECT_TRUE(w.add_char_device("dev/console", 5, 1));
  EXPECT_FALSE(w.add_file("usr/bin/tool", "other"));  // first one wins
  auto entries = parse_cpio(w.finish());
  ASSERT_TRUE(entries) << entries.error().message();
  std::map<std::string, CpioEntry> by;
  for (auto& e : *entries) by[e.path] = e;
  ASSERT_TRUE(by.count("usr"));
  ASSERT_TRUE(by.count("usr/bin"));
  EXPECT_TRUE(S_ISDIR(by["usr/bin"].mode));
  ASSERT_TRUE(by.count("usr/bin/tool"));
  EXPECT_EQ(by["usr/bin/tool"].data, std::string("\x7f"
                                                 "ELF\0\1",
                                                 6));
  EXPECT_EQ(by["usr/bin/tool"].mode, static_cast<uint32_t>(S_IFREG | 0755));
  EXPECT_TRUE(S_ISLNK(by["bin/sh"].mode));
  EXPECT_EQ(by["bin/sh"].data, "/bin/busybox");
  EXPECT_TRUE(S_ISCHR(by["dev/console"].mode));
  EXPECT_EQ(by["dev/console"].rdev_major, 5u);
  EXPECT_EQ(by["dev/console"].rdev_minor, 1u);
  // Parents come before children, as the kernel needs them to exist.
  size_t i_usr = 0, i_tool = 0;
  for (size_t i = 0; i < entries->size(); ++i) {
    if ((*entries)[i].path == "usr") i_usr = i;
    if ((*entries)[i].path == "usr/bin/tool") i_tool = i;
  }
  EXPECT_LT(i_usr, i_tool);
}

TEST(Cpio, DeterministicBytes) {
  auto build = [] {
    CpioWriter w;
    w.add_file("etc/x", "1");
    w.add_dir("var/empty");
    return w.finish();
  };
  EXPECT_EQ(build(), build());
}

TEST(Cpio, ConcatenatedArchivesParse) {
  CpioWriter a, b;
  a.add_file("one", "1");
  b.add_file("two", "22");
  auto entries = parse_cpio(a.finish() + b.finish());
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[1].path, "two");
  EXPECT_EQ((*entries)[1].data, "22");
}

TEST(Cpio, RejectsGarbage) {
  EXPECT_FALSE(parse_cpio(std::string(200, 'x')));
  CpioWriter w;
  w.add_file("f", std::string(100, 'd'));
  std::string a = w.finish();
  EXPECT_FALSE(parse_cpio(a.substr(0, 150)));  // truncated data
}

TEST(Cpio, ReadableByGnuCpio) {
  // The real consumer is the kernel; GNU cpio reads the same format.
  if (std::system("command -v cpio >/dev/null 2>&1") != 0) GTEST_SKIP() << "no cpio";
  auto dir = std::filesystem::temp_directory_path() / ("krepro-cpio-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  CpioWriter w;
  w.add_file("a/b/c.txt", "hello\n", 0600);
  w.add_symlink("a/link", "b/c.txt");
  std::ofstream((dir / "x.cpio").string(), std::ios::binary) << w.finish();
  std::string cmd =
      "cd " + dir.string() + " && mkdir out && cd out && cpio -id --quiet < ../x.cpio";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f((dir / "out/a/b/c.txt").string());
  std::string got((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(got, "hello\n");
  EXPECT_EQ(std::filesystem::read_symlink(dir / "out/a/link").string(), "b/c.txt");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace krepro::vm
