#include "harness/vm/console.h"

#include <gtest/gtest.h>

namespace krepro::vm {
namespace {

TEST(LineSplitter, SplitsAcrossChunksAndDropsCr) {
  LineSplitter s;
  EXPECT_TRUE(s.feed("abc").empty());
  auto l = s.feed("def\r\nxy\r\nz");
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0], "abcdef");
  EXPECT_EQ(l[1], "xy");
  EXPECT_EQ(s.flush(), "z");
  EXPECT_EQ(s.flush(), "");
}

TEST(LineSplitter, EndlessBytesWithoutANewlineAreCutNotHeld) {
  LineSplitter s;
  std::string chunk(64 * 1024, 'x');
  size_t lines = 0;
  for (int i = 0; i < 40; ++i) {  // 2.5 MiB without a newline
    for (const auto& l : s.feed(chunk)) {
      EXPECT_EQ(l.size(), LineSplitter::kMaxLine);
      ++lines;
    }
  }
  EXPECT_EQ(lines, 2u);
  EXPECT_EQ(s.flush().size(), 40 * chunk.size() - 2 * LineSplitter::kMaxLine);
}

TEST(ConsoleWatch, DetectsPanicAndKeepsItsText) {
  ConsoleWatch w;
  w.feed_line("[    1.000000] Run /init as init process");
  EXPECT_FALSE(w.panicked());
  w.feed_line(
      "[    2.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100");
  EXPECT_TRUE(w.panicked());
  w.feed_line("[    2.000100] CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-57-amd64");
  w.feed_line("[    2.000200] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---");
  w.finish();
  ASSERT_GE(w.panic_text().size(), 2u);
  EXPECT_NE(w.panic_text()[0].find("Attempted to kill init"), std::string::npos);
  EXPECT_NE(w.panic_text()[1].find("Comm: init"), std::string::npos);
  bool sig = false;
  for (const auto& s : w.signatures()) sig |= s.id == "kernel-panic";
  EXPECT_TRUE(sig);
  EXPECT_FALSE(w.shows_reproduction());  // a panic is not one of the target bugs
}

TEST(ConsoleWatch, QuotedPanicTextInTheMiddleIsStillAPanicLine) {
  // The console carries only guest output; the words anywhere on a line
  // mean the guest kernel is going down (the "---[ end" trailer too).
  ConsoleWatch w;
  w.feed_line("krepro-init: start");
  EXPECT_FALSE(w.panicked());
  w.feed_line("[   9.1] Kernel panic - not syncing: VFS: Unable to mount root fs");
  EXPECT_TRUE(w.panicked());
}

TEST(ConsoleWatch, TargetSignatureCountsAsReproduction) {
  ConsoleWatch w;
  w.feed_line("[  100.5] unregister_netdevice: waiting for eth0 to become free. Usage count = 1");
  w.finish();
  EXPECT_TRUE(w.shows_reproduction());
  EXPECT_FALSE(w.panicked());
}

TEST(ConsoleWatch, TailIsBounded) {
  ConsoleWatch w;
  for (int i = 0; i < 200; ++i) w.feed_line("line " + std::to_string(i));
  auto t = w.tail();
  ASSERT_EQ(t.size(), ConsoleWatch::kTailLines);
  EXPECT_EQ(t.front(), "line 150");
  EXPECT_EQ(t.back(), "line 199");
  EXPECT_EQ(w.lines(), 200u);
}

}  // namespace
}  // namespace krepro::vm
