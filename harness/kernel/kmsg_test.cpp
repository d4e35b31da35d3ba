#include "harness/kernel/kmsg.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "harness/util/clock.h"
#include "harness/util/fs.h"

namespace krepro::kernel {
namespace {

using namespace std::chrono_literals;

// Collects records from the reader thread.
struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<KmsgRecord> recs;

  KmsgReader::Callback cb() {
    return [this](const KmsgRecord& r) {
      std::lock_guard lk(mu);
      recs.push_back(r);
      cv.notify_all();
    };
  }
  // Waits until pred(recs) holds or the timeout passes.
  template <class Pred>
  bool wait_for(std::chrono::milliseconds timeout, Pred pred) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, timeout, [&] { return pred(recs); });
  }
  size_t size() {
    std::lock_guard lk(mu);
    return recs.size();
  }
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/krepro-kmsg-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

#ifndef KREPRO_KMSG_KERNEL_TEST

TEST(ParseKmsgRecord, HeaderFieldsAndPrio) {
  auto r = parse_kmsg_record("6,1234,5678901,-;unregister_netdevice: waiting for lo\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->facility, 0);
  EXPECT_EQ(r->level, 6);
  EXPECT_EQ(r->seq, 1234u);
  EXPECT_EQ(r->ts_us, 5678901u);
  EXPECT_EQ(r->flags, '-');
  EXPECT_EQ(r->message, "unregister_netdevice: waiting for lo");
  EXPECT_TRUE(r->from_kernel());
  EXPECT_TRUE(r->dict.empty());
}

TEST(ParseKmsgRecord, UserFacilityIsNotKernel) {
  // <14> = facility 1 (user), level 6, what a /dev/kmsg write produces.
  auto r = parse_kmsg_record("14,7,100,-;krepro-test: hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->facility, 1);
  EXPECT_EQ(r->level, 6);
  EXPECT_FALSE(r->from_kernel());
}

TEST(ParseKmsgRecord, UnescapesHexAndKeepsOtherBackslashes) {
  auto r = parse_kmsg_record("4,1,2,-;tab\\x09here \\x5c done \\q \\x4");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message, "tab\there \\ done \\q \\x4");
}

TEST(ParseKmsgRecord, DictLinesAndExtraHeaderFields) {
  auto r =
      parse_kmsg_record("3,99,1000,c,caller=T42;eth0: link down\n SUBSYSTEM=net\n DEVICE=n2\n");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->flags, 'c');
  ASSERT_EQ(r->extra.size(), 1u);
  EXPECT_EQ(r->extra[0], "caller=T42");
  ASSERT_EQ(r->dict.size(), 2u);
  EXPECT_EQ(r->dict[0].first, "SUBSYSTEM");
  EXPECT_EQ(r->dict[0].second, "net");
  EXPECT_EQ(r->dict[1].first, "DEVICE");
  EXPECT_EQ(r->dict[1].second, "n2");
}

TEST(ParseKmsgRecord, EmptyMessageIsValid) {
  auto r = parse_kmsg_record("6,1,2,-;");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message, "");
}

TEST(ParseKmsgRecord, RejectsMalformed) {
  for (const char* bad : {"", "no semicolon", "6,1,2;msg", "x,1,2,-;m", "6,1,2,--;m", "6,-1,2,-;m",
                          "6,1,,-;m", "99999999999,1,2,-;m"}) {
    auto r = parse_kmsg_record(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().err(), EINVAL) << bad;
    }
  }
}

TEST(KmsgReader, OpenMissingFails) {
  auto r = KmsgReader::open("/nonexistent/krepro-kmsg");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), ENOENT);
}

TEST(KmsgReader, RegularFileFromStartReadsAllAndCountsGaps) {
  TempDir dir;
  std::string path = dir.path() + "/kmsg";
  ASSERT_TRUE(fs::write_file(path,
                             "6,10,100,-;first\n SUBSYSTEM=net\n"
                             "6,11,200,-;second\n"
                             "14,15,300,-;third after a gap of 3\n"
                             "garbage line\n",
                             true));
  auto rd = KmsgReader::open(path, {.from_start = true});
  ASSERT_TRUE(rd) << rd.error().message();
  Sink sink;
  ASSERT_TRUE(rd->start(sink.cb()));
  ASSERT_TRUE(sink.wait_for(2s, [](auto& v) { return v.size() == 3; }));
  // The reader ends by itself at end of file.
  for (int i = 0; i < 200 && rd->running(); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(rd->running());
  rd->stop();
  std::lock_guard lk(sink.mu);
  EXPECT_EQ(sink.recs[0].message, "first");
  ASSERT_EQ(sink.recs[0].dict.size(), 1u);
  EXPECT_EQ(sink.recs[1].message, "second");
  EXPECT_EQ(sink.recs[2].facility, 1);
  EXPECT_GT(sink.recs[2].received_mono_ns, 0);
  EXPECT_EQ(rd->lost(), 3u);
  EXPECT_EQ(rd->records(), 3u);
  EXPECT_EQ(rd->parse_errors(), 1u);
}

TEST(KmsgReader, RegularFileDefaultSeeksToEnd) {
  TempDir dir;
  std::string path = dir.path() + "/kmsg";
  ASSERT_TRUE(fs::write_file(path, "6,1,1,-;old record\n", true));
  auto rd = KmsgReader::open(path);
  ASSERT_TRUE(rd);
  Sink sink;
  ASSERT_TRUE(rd->start(sink.cb()));
  for (int i = 0; i < 200 && rd->running(); ++i) std::this_thread::sleep_for(5ms);
  rd->stop();
  EXPECT_EQ(sink.size(), 0u);
}

TEST(KmsgReader, FifoStreamsRecordsAndStopDoesNotHang) {
  TempDir dir;
  std::string path = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto rd = KmsgReader::open(path);
  ASSERT_TRUE(rd) << rd.error().message();
  Sink sink;
  ASSERT_TRUE(rd->start(sink.cb()));
  EXPECT_EQ(rd->start(sink.cb()).error().err(), EBUSY);
  int w = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(w, 0);
  std::string a = "6,1,10,-;one\n";
  std::string b = "6,2,20,-;two\n";
  ASSERT_EQ(::write(w, a.data(), a.size()), static_cast<ssize_t>(a.size()));
  ASSERT_EQ(::write(w, b.data(), b.size()), static_cast<ssize_t>(b.size()));
  // "one" is complete once "two" has started; "two" waits for more input.
  ASSERT_TRUE(sink.wait_for(2s, [](auto& v) { return v.size() >= 1; }));
  EXPECT_TRUE(rd->running());
  // The writer stays open: the thread is blocked in poll and stop() must
  // still return promptly.
  int64_t t0 = mono_ns();
  rd->stop();
  EXPECT_LT(mono_ns() - t0, 1'000'000'000);
  EXPECT_FALSE(rd->running());
  ::close(w);
  std::lock_guard lk(sink.mu);
  EXPECT_EQ(sink.recs[0].message, "one");
}

TEST(KmsgReader, FifoFlushesLastRecordWhenWriterCloses) {
  TempDir dir;
  std::string path = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto rd = KmsgReader::open(path);
  ASSERT_TRUE(rd);
  Sink sink;
  ASSERT_TRUE(rd->start(sink.cb()));
  int w = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(w, 0);
  std::string a = "6,5,10,-;only\n DEVICE=+net:lo\n";
  ASSERT_EQ(::write(w, a.data(), a.size()), static_cast<ssize_t>(a.size()));
  ::close(w);
  ASSERT_TRUE(sink.wait_for(2s, [](auto& v) { return v.size() == 1; }));
  std::lock_guard lk(sink.mu);
  ASSERT_EQ(sink.recs[0].dict.size(), 1u);
  EXPECT_EQ(sink.recs[0].dict[0].second, "+net:lo");
}

TEST(KmsgReader, MoveAssignmentReleasesHeldReader) {
  TempDir dir;
  std::string p1 = dir.path() + "/f1";
  std::string p2 = dir.path() + "/f2";
  ASSERT_EQ(::mkfifo(p1.c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(p2.c_str(), 0600), 0);
  auto a = KmsgReader::open(p1);
  auto b = KmsgReader::open(p2);
  ASSERT_TRUE(a && b);
  Sink s1, s2;
  ASSERT_TRUE(a->start(s1.cb()));
  ASSERT_TRUE(b->start(s2.cb()));
  *a = std::move(*b);
  EXPECT_EQ(a->path(), p2);
  EXPECT_TRUE(a->running());
  EXPECT_FALSE(b->running());
  // The first reader's fd is closed: opening p1 for writing without a
  // reader fails with ENXIO (fifo(7)).
  int w = ::open(p1.c_str(), O_WRONLY | O_NONBLOCK);
  EXPECT_LT(w, 0);
  EXPECT_EQ(errno, ENXIO);
  if (w >= 0) ::close(w);
  a->stop();
}

#else  // KREPRO_KMSG_KERNEL_TEST

// Writes one line to the real /dev/kmsg. "<14>" makes it facility 1 (user),
// level 6: kernel/printk/printk.c devkmsg_write keeps the facility the
// writer asks for only when it is not 0, so user text cannot pose as kernel.
bool write_kmsg(const std::string& line) {
  int fd = ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = ::write(fd, line.data(), line.size());
  ::close(fd);
  return n == static_cast<ssize_t>(line.size());
}

TEST(KmsgReaderKernel, SeesUserRecordWrittenAfterOpenOnly) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to write /dev/kmsg";
  if (::access("/dev/kmsg", R_OK | W_OK) != 0) GTEST_SKIP() << "/dev/kmsg not accessible";
  std::string tag =
      "krepro-test: kmsg " + std::to_string(::getpid()) + "-" + std::to_string(mono_ns());
  // Rate-limited (printk_devkmsg=ratelimit): only two writes here.
  ASSERT_TRUE(write_kmsg("<14>" + tag + " before\n"));
  auto rd = KmsgReader::open("/dev/kmsg");
  ASSERT_TRUE(rd) << rd.error().message();
  Sink sink;
  ASSERT_TRUE(rd->start(sink.cb()));
  int64_t t0 = mono_ns();
  ASSERT_TRUE(write_kmsg("<14>" + tag + " after\n"));
  bool got = sink.wait_for(1s, [&](auto& v) {
    for (auto& r : v)
      if (r.message == tag + " after") return true;
    return false;
  });
  rd->stop();
  ASSERT_TRUE(got) << "record not received within 1 s";
  std::lock_guard lk(sink.mu);
  for (auto& r : sink.recs) {
    EXPECT_NE(r.message, tag + " before") << "record from before open() was delivered";
    if (r.message == tag + " after") {
      EXPECT_EQ(r.facility, kFacilityUser);
      EXPECT_EQ(r.level, 6);
      EXPECT_GE(r.received_mono_ns, t0);
      // printk's local_clock and CLOCK_MONOTONIC agree to well within 1 s.
      double skew_s = static_cast<double>(r.received_mono_ns) / 1e9 - r.ts_us / 1e6;
      EXPECT_LT(std::abs(skew_s), 1.0) << "skew " << skew_s;
    }
  }
}

#endif

}  // namespace
}  // namespace krepro::kernel
