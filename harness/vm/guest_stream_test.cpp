#include "harness/vm/guest_stream.h"

#include <gtest/gtest.h>

#include <string>

namespace krepro::vm {
namespace {

using L = GuestStream::Line;

TEST(GuestStream, MarkersEventsAndResult) {
  GuestStream g;
  EXPECT_EQ(g.feed_line("KREPRO-INIT"), L::kMarker);
  EXPECT_TRUE(g.init_started());
  EXPECT_EQ(g.feed_line("KREPRO-GUEST-KERNEL 6.1.0-42-amd64 "), L::kMarker);
  EXPECT_EQ(g.guest_kernel(), "6.1.0-42-amd64");
  EXPECT_EQ(g.feed_line(R"({"t":0.1,"type":"phase"})"), L::kEvent);
  EXPECT_EQ(g.feed_line("random console noise"), L::kOther);
  EXPECT_EQ(g.feed_line("KREPRO-SETUP-FAILED modprobe veth"), L::kMarker);
  EXPECT_EQ(g.feed_line("KREPRO-RMMOD krepro_netdev_hold 0"), L::kMarker);
  EXPECT_EQ(g.feed_line("KREPRO-EXIT 1"), L::kMarker);
  EXPECT_EQ(g.feed_line("KREPRO-RESULT-BEGIN"), L::kMarker);
  // Inside the archive even a '{' line is archive text, not an event.
  EXPECT_EQ(g.feed_line("aGVsbG8g"), L::kMarker);
  EXPECT_EQ(g.feed_line("d29ybGQ="), L::kMarker);
  EXPECT_FALSE(g.result_complete());
  EXPECT_EQ(g.feed_line("KREPRO-RESULT-END"), L::kMarker);
  EXPECT_EQ(g.feed_line("KREPRO-DONE"), L::kMarker);

  EXPECT_EQ(g.events(), 1u);
  EXPECT_EQ(g.guest_exit(), 1);
  ASSERT_EQ(g.setup_failures().size(), 1u);
  EXPECT_EQ(g.setup_failures()[0], "modprobe veth");
  EXPECT_EQ(g.unloaded().at("krepro_netdev_hold"), 0);
  EXPECT_TRUE(g.done());
  ASSERT_TRUE(g.result_complete());
  std::string out;
  ASSERT_TRUE(base64_decode(g.result_base64(), &out));
  EXPECT_EQ(out, "hello world");
}

TEST(GuestStream, HangInsideTheArchiveLeavesItIncomplete) {
  GuestStream g;
  g.feed_line("KREPRO-RESULT-BEGIN");
  g.feed_line("aGVsbG8g");
  EXPECT_FALSE(g.result_complete());
  EXPECT_FALSE(g.done());
  EXPECT_EQ(g.guest_exit(), -1);
}

TEST(GuestStream, OversizedArchiveIsDroppedNotKept) {
  GuestStream g(16);
  g.feed_line("KREPRO-RESULT-BEGIN");
  g.feed_line("aGVsbG8gd29y");
  g.feed_line("bGQgaGVsbG8g");  // 24 > 16
  g.feed_line("KREPRO-RESULT-END");
  EXPECT_TRUE(g.result_overflow());
  EXPECT_FALSE(g.result_complete());
  EXPECT_TRUE(g.result_base64().empty());
}

TEST(GuestStream, GarbledMarkersAreBounded) {
  GuestStream g;
  g.feed_line("KREPRO-EXIT banana");
  EXPECT_EQ(g.guest_exit(), -1);
  g.feed_line("KREPRO-RMMOD onlyname");
  EXPECT_TRUE(g.unloaded().empty());
  g.feed_line(std::string("KREPRO-GUEST-KERNEL 6.1\x01\x1b[31m") + std::string(1000, 'x'));
  EXPECT_LE(g.guest_kernel().size(), 256u);
  EXPECT_EQ(g.guest_kernel().find('\x1b'), std::string::npos);
  for (int i = 0; i < 1000; ++i) g.feed_line("KREPRO-SETUP-FAILED x");
  EXPECT_EQ(g.setup_failures().size(), GuestStream::kMaxSetupFailures);
}

TEST(Base64, Decodes) {
  std::string out;
  ASSERT_TRUE(base64_decode("aGVsbG8g\nd29ybGQ=\n", &out));
  EXPECT_EQ(out, "hello world");
  out.clear();
  EXPECT_FALSE(base64_decode("a*b", &out));
}

}  // namespace
}  // namespace krepro::vm
