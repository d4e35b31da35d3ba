// Unit tests run on a fake tracefs tree (plain files in a temp dir); with
// KREPRO_TRACEFS_KERNEL_TEST the same binary makes a real instance (root).
#include "harness/kernel/tracefs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "harness/util/clock.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {
namespace {

namespace sfs = std::filesystem;

[[maybe_unused]] void put(const std::string& path, const std::string& text) {
  sfs::create_directories(sfs::path(path).parent_path());
  std::ofstream(path, std::ios::trunc) << text;
}
std::string get(const std::string& path) {
  auto r = fs::read_file(path);
  return r ? *r : std::string("<missing>");
}

#ifndef KREPRO_TRACEFS_KERNEL_TEST

TEST(TracefsParse, FindsTracefsMount) {
  std::string m =
      "sysfs /sys sysfs rw 0 0\n"
      "nodev /run/krepro/krepro-ab\\040c-tracefs tracefs rw,relatime 0 0\n"
      "tracefs /sys/kernel/tracing tracefs rw 0 0\n";
  auto p = find_tracefs_mount(m);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "/run/krepro/krepro-ab c-tracefs");
  EXPECT_FALSE(find_tracefs_mount("proc /proc proc rw 0 0\ndebugfs /d debugfs rw 0 0\n"));
  EXPECT_FALSE(find_tracefs_mount(""));
}

TEST(TracefsParse, ChoosesClock) {
  std::string note;
  EXPECT_EQ(choose_trace_clock("[local] global counter mono boot\n", "mono", &note), "mono");
  EXPECT_TRUE(note.empty());
  EXPECT_EQ(choose_trace_clock("[local] global counter\n", "mono", &note), "global");
  EXPECT_NE(note.find("not CLOCK_MONOTONIC"), std::string::npos) << note;
  note.clear();
  EXPECT_EQ(choose_trace_clock("[local] counter\n", "mono", &note), "local");
  EXPECT_NE(note.find("'local'"), std::string::npos) << note;
}

TEST(TracefsParse, KprobePrefix) {
  EXPECT_EQ(kprobe_event_prefix("krepro-1a2b3c4d"), "krepro_1a2b3c4d");
}

class FakeTracefs : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/krepro-tracefs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    tmp_ = t;
    root_ = tmp_ + "/tracing";
    sfs::create_directories(root_ + "/instances");
    opts_.root = root_;
    // What instance_mkdir populates, as plain files.
    opts_.after_mkdir = [](const std::string& d) {
      put(d + "/trace_clock", "[local] global counter uptime perf mono mono_raw boot\n");
      put(d + "/buffer_size_kb", "7\n");
      put(d + "/tracing_on", "1\n");
      put(d + "/trace_pipe", "");
      put(d + "/events/block/block_rq_issue/enable", "0\n");
      put(d + "/events/block/block_rq_complete/enable", "0\n");
    };
  }
  void TearDown() override { sfs::remove_all(tmp_); }
  std::string tmp_, root_;
  TracefsOptions opts_;
};

TEST_F(FakeTracefs, RejectsNamesWithoutPrefix) {
  auto r = TracefsInstance::create("mine", opts_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), EINVAL);
  EXPECT_FALSE(TracefsInstance::create("krepro-a/b", opts_));
  EXPECT_TRUE(sfs::is_empty(root_ + "/instances"));
}

TEST_F(FakeTracefs, CreatesConfiguresAndRemovesInstance) {
  std::string journaled;
  opts_.buffer_size_kb = 2048;
  opts_.before_mkdir = [&](const std::string& d) -> Result<void> {
    EXPECT_FALSE(sfs::exists(d)) << "journal must come before mkdir";
    journaled = d;
    return {};
  };
  std::string dir = root_ + "/instances/krepro-0000abcd";
  {
    auto r = TracefsInstance::create("krepro-0000abcd", opts_);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(journaled, dir);
    EXPECT_EQ(r->dir(), dir);
    EXPECT_EQ(r->clock(), "mono");
    EXPECT_TRUE(r->clock_note().empty());
    EXPECT_FALSE(r->private_mount());
    EXPECT_EQ(get(dir + "/trace_clock"), "mono");
    EXPECT_EQ(get(dir + "/buffer_size_kb"), "2048");
    ASSERT_TRUE(r->enable_event("block", "block_rq_issue"));
    EXPECT_EQ(get(dir + "/events/block/block_rq_issue/enable"), "1");
    auto miss = r->enable_event("writeback", "balance_dirty_pages");
    ASSERT_FALSE(miss);
    EXPECT_EQ(miss.error().err(), ENOENT);
    EXPECT_NE(miss.error().message().find("writeback:balance_dirty_pages"), std::string::npos);
    EXPECT_EQ(r->enabled_events(), std::vector<std::string>{"block:block_rq_issue"});
    EXPECT_TRUE(sfs::exists(dir));
  }
  EXPECT_FALSE(sfs::exists(dir));
}

TEST_F(FakeTracefs, CloseDisablesEventsAndTracing) {
  std::string dir = root_ + "/instances/krepro-1";
  auto r = TracefsInstance::create("krepro-1", opts_);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(r->enable_event("block", "block_rq_complete"));
  // Keep the instance dir after close so the final writes can be read back.
  std::string saved;
  auto enable = dir + "/events/block/block_rq_complete/enable";
  auto tracing_on = dir + "/tracing_on";
  // A hard link survives the fake rmdir (remove_all) and shows the last write.
  sfs::create_directories(tmp_ + "/keep");
  sfs::create_hard_link(enable, tmp_ + "/keep/enable");
  sfs::create_hard_link(tracing_on, tmp_ + "/keep/tracing_on");
  auto errs = r->close();
  EXPECT_TRUE(errs.empty()) << errs.front();
  EXPECT_EQ(get(tmp_ + "/keep/enable"), "0");
  EXPECT_EQ(get(tmp_ + "/keep/tracing_on"), "0");
  EXPECT_FALSE(sfs::exists(dir));
  EXPECT_TRUE(r->close().empty());  // idempotent
  EXPECT_FALSE(r->enable_event("block", "block_rq_issue"));
}

TEST_F(FakeTracefs, JournalFailureAbortsBeforeMkdir) {
  opts_.before_mkdir = [](const std::string&) -> Result<void> {
    return make_error(EROFS, "journal");
  };
  auto r = TracefsInstance::create("krepro-2", opts_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().err(), EROFS);
  EXPECT_FALSE(sfs::exists(root_ + "/instances/krepro-2"));
}

TEST_F(FakeTracefs, FindsRootThroughMounts) {
  TracefsOptions o = opts_;
  o.root.clear();
  o.mounts_path = tmp_ + "/mounts";
  put(o.mounts_path, "proc /proc proc rw 0 0\nnodev " + root_ + " tracefs rw 0 0\n");
  auto r = TracefsInstance::create("krepro-3", o);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->root(), root_);
  EXPECT_FALSE(r->private_mount());

  put(o.mounts_path, "proc /proc proc rw 0 0\n");
  auto none = TracefsInstance::create("krepro-4", o);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().err(), ENOENT);
  o.private_mount_dir = tmp_ + "/not-ours";
  auto bad = TracefsInstance::create("krepro-4", o);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().err(), EINVAL);
  EXPECT_FALSE(sfs::exists(tmp_ + "/not-ours"));
}

TEST_F(FakeTracefs, KprobesAppendAndRemoveOnlyOurs) {
  {
    auto r = TracefsInstance::create("krepro-5", opts_);
    ASSERT_TRUE(r);
    auto k = r->add_kprobe_pair("mempool_alloc");
    ASSERT_FALSE(k);
    EXPECT_EQ(k.error().err(), ENOENT);  // no kprobe_events: like this host
  }
  put(root_ + "/kprobe_events", "p:kprobes/other_user do_sys_open\n");
  std::string log = root_ + "/kprobe_events";
  {
    auto r = TracefsInstance::create("krepro-0000abcd", opts_);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->add_kprobe_pair("bad name;rm"));
    auto k = r->add_kprobe_pair("mempool_alloc");
    ASSERT_TRUE(k) << k.error().message();
    EXPECT_EQ(*k, "krepro_0000abcd_0");
    auto k2 = r->add_kprobe_pair("bvec_alloc");
    ASSERT_TRUE(k2);
    EXPECT_EQ(*k2, "krepro_0000abcd_1");
    EXPECT_EQ(get(log),
              "p:kprobes/other_user do_sys_open\n"
              "p:krepro_0000abcd_0 mempool_alloc\n"
              "r:krepro_0000abcd_0_ret mempool_alloc\n"
              "p:krepro_0000abcd_1 bvec_alloc\n"
              "r:krepro_0000abcd_1_ret bvec_alloc\n");
  }
  // Appended removals, newest first; the other user's line was never touched.
  EXPECT_EQ(get(log),
            "p:kprobes/other_user do_sys_open\n"
            "p:krepro_0000abcd_0 mempool_alloc\n"
            "r:krepro_0000abcd_0_ret mempool_alloc\n"
            "p:krepro_0000abcd_1 bvec_alloc\n"
            "r:krepro_0000abcd_1_ret bvec_alloc\n"
            "-:kprobes/krepro_0000abcd_1_ret\n"
            "-:kprobes/krepro_0000abcd_1\n"
            "-:kprobes/krepro_0000abcd_0_ret\n"
            "-:kprobes/krepro_0000abcd_0\n");
}

TEST_F(FakeTracefs, ReaderDeliversLinesIncludingLastPartial) {
  auto r = TracefsInstance::create("krepro-6", opts_);
  ASSERT_TRUE(r);
  std::string pipe = r->dir() + "/trace_pipe";
  put(pipe, "line one\nline two\n");
  std::mutex mu;
  std::vector<std::string> got;
  std::atomic<int> nice{-100};
  ASSERT_TRUE(r->start_reader(
      [&](std::string_view l) {
        std::lock_guard<std::mutex> lk(mu);
        got.emplace_back(l);
        nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
      },
      7));
  EXPECT_EQ(r->start_reader([](std::string_view) {}).error().err(), EBUSY);
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard<std::mutex> lk(mu);
      if (got.size() >= 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    std::ofstream f(pipe, std::ios::app);
    f << "line three\npartial";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  r->stop_reader();
  r->stop_reader();
  EXPECT_EQ(got, (std::vector<std::string>{"line one", "line two", "line three", "partial"}));
  EXPECT_EQ(r->lines_read(), 4u);
  EXPECT_EQ(nice.load(), 7) << "the reader thread runs niced";
  EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid())), 0) << "only it";
}

TEST_F(FakeTracefs, SumsPerCpuOverruns) {
  auto r = TracefsInstance::create("krepro-7", opts_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->overruns(), 0u);  // no per_cpu/ at all
  put(r->dir() + "/per_cpu/cpu0/stats", "entries: 5\ncommit overrun: 9\noverrun: 3\n");
  put(r->dir() + "/per_cpu/cpu1/stats", "entries: 1\noverrun: 4\n");
  EXPECT_EQ(r->overruns(), 7u);
  r->close();
  EXPECT_EQ(r->overruns(), 0u);
}

TEST_F(FakeTracefs, MoveAssignmentReleasesHeldInstance) {
  auto a = TracefsInstance::create("krepro-a", opts_);
  auto b = TracefsInstance::create("krepro-b", opts_);
  ASSERT_TRUE(a && b);
  std::string da = a->dir(), db = b->dir();
  *a = std::move(*b);
  EXPECT_FALSE(sfs::exists(da));
  EXPECT_TRUE(sfs::exists(db));
  EXPECT_EQ(a->dir(), db);
  TracefsInstance c(std::move(*a));
  EXPECT_TRUE(sfs::exists(db));
  c.close();
  EXPECT_FALSE(sfs::exists(db));
}

#else  // KREPRO_TRACEFS_KERNEL_TEST

bool mounted_at(const std::string& dir) {
  auto m = fs::read_file("/proc/self/mounts");
  return m && m->find(" " + dir + " ") != std::string::npos;
}

TEST(TracefsKernel, CapturesBlockRequestsForFsync) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string pid = std::to_string(::getpid());
  TracefsOptions o;
  o.private_mount_dir = "/run/krepro/krepro-tracefs-test-" + pid + "-tracefs";
  o.buffer_size_kb = 1024;
  std::string name = "krepro-tracefs-test-" + pid;
  auto r = TracefsInstance::create(name, o);
  if (!r && (r.error().err() == ENODEV || r.error().err() == ENOENT))
    GTEST_SKIP() << "no tracefs: " << r.error().message();
  ASSERT_TRUE(r) << r.error().message();
  std::string dir = r->dir();
  bool priv = r->private_mount();
  EXPECT_EQ(r->clock(), "mono") << r->clock_note();
  auto e1 = r->enable_event("block", "block_rq_issue");
  auto e2 = r->enable_event("block", "block_rq_complete");
  if (!e1 || !e2) GTEST_SKIP() << "no block tracepoints";
  EXPECT_FALSE(r->enable_event("block", "krepro_no_such_event"));
  std::mutex mu;
  std::vector<std::string> lines;
  ASSERT_TRUE(r->start_reader([&](std::string_view l) {
    std::lock_guard<std::mutex> lk(mu);
    lines.emplace_back(l);
  }));
  int64_t t0 = mono_ns();
  std::string file = "/var/tmp/krepro-tracefs-test-" + pid;
  {
    UniqueFd fd(::open(file.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd);
    std::string block(4096, 'k');
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(::write(fd.get(), block.data(), block.size()), 4096);
      ASSERT_EQ(::fdatasync(fd.get()), 0);
    }
  }
  ::unlink(file.c_str());
  int64_t t1 = mono_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  r->stop_reader();
  size_t issue = 0, complete = 0, in_window = 0;
  for (const auto& l : lines) {
    if (l.find(" block_rq_issue: ") != std::string::npos) ++issue;
    if (l.find(" block_rq_complete: ") != std::string::npos) ++complete;
    // "... TIMESTAMP: event:" with the mono clock is CLOCK_MONOTONIC.
    auto c = l.find(": block_rq_");
    if (c == std::string::npos) continue;
    auto sp = l.rfind(' ', c);
    double ts = std::atof(l.substr(sp + 1, c - sp - 1).c_str());
    if (ts * 1e9 >= t0 - 1e6 && ts * 1e9 <= t1 + 1e6) ++in_window;
  }
  EXPECT_GE(issue, 20u);
  EXPECT_GE(complete, 20u);
  EXPECT_GE(in_window, 40u) << "timestamps should be CLOCK_MONOTONIC";
  auto errs = r->close();
  EXPECT_TRUE(errs.empty()) << errs.front();
  EXPECT_FALSE(sfs::exists(dir));
  if (priv) {
    EXPECT_FALSE(mounted_at(o.private_mount_dir));
    EXPECT_FALSE(sfs::exists(o.private_mount_dir));
  }
}

TEST(TracefsKernel, KprobesUnavailableOrWork) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string pid = std::to_string(::getpid());
  TracefsOptions o;
  o.private_mount_dir = "/run/krepro/krepro-tracefs-ktest-" + pid + "-tracefs";
  o.buffer_size_kb = 256;
  auto r = TracefsInstance::create("krepro-tracefs-ktest-" + pid, o);
  ASSERT_TRUE(r) << r.error().message();
  std::string root = r->root();
  auto k = r->add_kprobe_pair("vfs_fsync_range");
  if (!fs::exists(root + "/kprobe_events")) {
    ASSERT_FALSE(k);
    EXPECT_EQ(k.error().err(), ENOENT);
    GTEST_SKIP() << "kernel has no kprobe_events: " << k.error().message();
  }
  ASSERT_TRUE(k) << k.error().message();
  EXPECT_NE(get(root + "/kprobe_events").find(*k), std::string::npos);
  r->close();
  // Look again through a fresh instance: a private mount went with close().
  auto again = TracefsInstance::create("krepro-tracefs-ktest2-" + pid, o);
  ASSERT_TRUE(again) << again.error().message();
  std::string ke = get(again->root() + "/kprobe_events");
  EXPECT_NE(ke, "<missing>");
  EXPECT_EQ(ke.find(*k), std::string::npos);
}

#endif

}  // namespace
}  // namespace krepro::kernel
