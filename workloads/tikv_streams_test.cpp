#include "workloads/tikv_streams.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "harness/util/clock.h"

namespace krepro::workloads {
namespace {

namespace stdfs = std::filesystem;
constexpr int64_t kMs = 1'000'000;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/var/tmp/krepro-tikv-test-XXXXXX";
    path_ = ::mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) stdfs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  bool empty() const { return stdfs::is_empty(path_); }

 private:
  std::string path_;
};

// Small sizes so a second of running touches every path (rotation, SST
// eviction, compaction) without much disk traffic.
TikvConfig small_config(const std::string& dir) {
  TikvConfig c;
  c.dir = dir;
  c.seed = 7;
  c.raft.min_record = 4 * kKiB;
  c.raft.max_record = 16 * kKiB;
  c.raft.rotate_bytes = 256 * kKiB;
  c.raft.rate.mib_per_s = 20;
  c.wal.rotate_bytes = 128 * kKiB;
  c.wal.rate.ops_per_s = 2000;
  c.flush.min_sst = 256 * kKiB;
  c.flush.max_sst = 1 * kMiB;
  c.flush.write_size = 64 * kKiB;
  c.flush.interval_s = 0.05;
  c.flush.max_ssts = 6;
  c.compaction.io_size = 64 * kKiB;
  c.compaction.poll_ms = 10;
  return c;
}

// Runs the workload for run_ms while sampling its disk use.
struct RunStats {
  uint64_t peak_bytes = 0;
  int64_t stop_ns = 0;
  StopReport report;
};

RunStats run_for(TikvWorkload& w, int64_t run_ms) {
  RunStats st;
  const int64_t end = mono_ns() + run_ms * kMs;
  while (mono_ns() < end) {
    st.peak_bytes = std::max(st.peak_bytes, w.disk_bytes());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int64_t t0 = mono_ns();
  st.report = w.stop();
  st.stop_ns = mono_ns() - t0;
  return st;
}

TEST(TikvWorkload, AllStreamsRunBoundedAndCleanUp) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  auto w = TikvWorkload::create(small_config(dir.path()));
  ASSERT_TRUE(w) << w.error().message();
  ASSERT_TRUE((*w)->start());
  EXPECT_TRUE((*w)->running());
  const std::string root = (*w)->root_dir();
  EXPECT_TRUE(stdfs::is_directory(root));
  RunStats st = run_for(**w, 1500);
  EXPECT_TRUE(st.report.errors.empty()) << st.report.errors.front();
  EXPECT_LT(st.stop_ns, 500 * kMs) << "stop() took " << st.stop_ns / kMs << " ms";
  EXPECT_GT(st.peak_bytes, 0u);
  EXPECT_LE(st.peak_bytes, (*w)->config().max_disk_bytes());

  nlohmann::json r = (*w)->results();
  EXPECT_FALSE(r["engine"].get<std::string>().empty());
  const auto& s = r["streams"];
  auto count = [&](const char* stream, const char* op) -> uint64_t {
    if (!s.contains(stream) || !s[stream]["ops"].contains(op)) return 0;
    return s[stream]["ops"][op]["count"].get<uint64_t>();
  };
  EXPECT_GT(count("raft_log", "write"), 0u);
  EXPECT_GT(count("raft_log", "fdatasync"), 0u);
  // Group commit: fewer syncs than records.
  EXPECT_LT(count("raft_log", "fdatasync"), count("raft_log", "write"));
  EXPECT_GT(count("raft_log", "unlink"), 0u);  // rotated and old logs deleted
  EXPECT_GT(count("kv_wal", "write"), 0u);
  EXPECT_EQ(count("kv_wal", "fdatasync"), count("kv_wal", "write"));
  EXPECT_GT(count("flush", "flush"), 0u);
  EXPECT_EQ(count("flush", "fsync"), count("flush", "flush"));
  EXPECT_GT(count("compaction", "compaction_step"), 0u);
  EXPECT_GT(count("compaction", "read"), 0u);
  EXPECT_GT(count("compaction", "unlink"), 0u);
  // The WAL's ops/s limit holds (2000/s for 1.5 s, with slack for start-up).
  EXPECT_LE(count("kv_wal", "write"), 2000u * 2);
  EXPECT_GT((*w)->ops_done(), 0u);

  // Every file and the run directory are gone; the caller's dir stays.
  EXPECT_FALSE(stdfs::exists(root));
  EXPECT_TRUE(dir.empty());
}

TEST(TikvWorkload, WalAppendPatternSyncsEveryWrite) {
  TempDir dir;
  TikvConfig c = wal_append_config(dir.path());
  c.wal.rotate_bytes = 4 * kMiB;  // keep the test's fallocation small
  auto w = TikvWorkload::create(c);
  ASSERT_TRUE(w) << w.error().message();
  ASSERT_TRUE((*w)->start());
  RunStats st = run_for(**w, 1000);
  EXPECT_TRUE(st.report.errors.empty());
  EXPECT_LT(st.stop_ns, 500 * kMs);
  nlohmann::json r = (*w)->results();
  ASSERT_EQ(r["streams"].size(), 1u);
  const auto& ops = r["streams"]["kv_wal"]["ops"];
  const uint64_t writes = ops["write"]["count"].get<uint64_t>();
  EXPECT_GT(writes, 10u);
  EXPECT_EQ(ops["fdatasync"]["count"].get<uint64_t>(), writes);
  EXPECT_GT(ops["fdatasync"]["lat_ns"]["percentile"]["50.000000"].get<uint64_t>(), 0u);
  // Fully fallocated: the one file takes rotate_bytes, no more.
  EXPECT_LE(st.peak_bytes, c.max_disk_bytes());
  EXPECT_GE(st.peak_bytes, c.wal.rotate_bytes);
  EXPECT_TRUE(dir.empty());
}

TEST(TikvWorkload, SeededSizesAreReproducible) {
  // Two runs with the same seed write the same raft record sizes, so the
  // bytes per record match for the ops both runs completed.
  auto bytes_of_first = [](uint64_t seed) {
    TempDir dir;
    TikvConfig c = small_config(dir.path());
    c.seed = seed;
    c.wal.enabled = c.flush.enabled = c.compaction.enabled = false;
    c.raft.rate.mib_per_s = 0;
    c.raft.rate.ops_per_s = 200;  // 0.3 s → ~60 records
    c.raft.rotate_bytes = 64 * kMiB;
    c.cleanup = false;
    auto w = TikvWorkload::create(c);
    EXPECT_TRUE(w);
    EXPECT_TRUE((*w)->start());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    (*w)->stop();
    std::vector<uint64_t> sizes;
    // Only one log file; its size is the sum of the records.
    for (const auto& e : stdfs::recursive_directory_iterator((*w)->root_dir())) {
      if (e.is_regular_file()) sizes.push_back(e.file_size());
    }
    uint64_t writes = (*w)->results()["streams"]["raft_log"]["ops"]["write"]["count"];
    return std::make_pair(sizes, writes);
  };
  auto [a, na] = bytes_of_first(11);
  auto [b, nb] = bytes_of_first(11);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  if (na == nb) {
    EXPECT_EQ(a, b);
  } else {
    // Different record counts: the shorter run's bytes are a prefix sum of
    // the same sequence, so it cannot be larger.
    EXPECT_EQ(na < nb, a[0] < b[0]);
  }
  auto [c, nc] = bytes_of_first(12);
  if (nc == na) {
    EXPECT_NE(c, a);  // another seed gives other sizes
  }
}

// psync, but every fdatasync takes sleep_ms: a kernel stall stand-in.
class SlowSyncEngine final : public IoEngine {
 public:
  explicit SlowSyncEngine(int sleep_ms) : sleep_ms_(sleep_ms) {}
  Result<size_t> write(int fd, const void* b, size_t n, uint64_t off) override {
    return inner_.write(fd, b, n, off);
  }
  Result<size_t> read(int fd, void* b, size_t n, uint64_t off) override {
    return inner_.read(fd, b, n, off);
  }
  Result<void> fdatasync(int fd) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    return inner_.fdatasync(fd);
  }
  Result<void> fsync(int fd) override { return inner_.fsync(fd); }
  std::string_view engine_name() const override { return "slow-sync"; }

 private:
  PsyncEngine inner_;
  int sleep_ms_;
};

TEST(TikvWorkload, StallsAreRecordedAndStopWaitsForInflightOp) {
  TempDir dir;
  TikvConfig c = wal_append_config(dir.path());
  c.wal.rotate_bytes = 1 * kMiB;
  c.engine_factory = []() -> Result<std::unique_ptr<IoEngine>> {
    return std::unique_ptr<IoEngine>(std::make_unique<SlowSyncEngine>(1500));
  };
  auto w = TikvWorkload::create(c);
  ASSERT_TRUE(w) << w.error().message();
  ASSERT_TRUE((*w)->start());
  // The first fdatasync is in flight from ~0 ms to ~1500 ms; stop during it.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int64_t t0 = mono_ns();
  StopReport rep = (*w)->stop();
  const int64_t took = mono_ns() - t0;
  EXPECT_GT(took, 900 * kMs);   // it waited for the op...
  EXPECT_LT(took, 1600 * kMs);  // ...and no more
  ASSERT_EQ(rep.notes.size(), 1u);
  EXPECT_NE(rep.notes[0].find("kv_wal fdatasync"), std::string::npos) << rep.notes[0];
  EXPECT_NE(rep.notes[0].find("cannot be interrupted"), std::string::npos);
  nlohmann::json r = (*w)->results();
  EXPECT_EQ(r["engine"], "slow-sync");
  const auto& stalls = r["streams"]["kv_wal"]["stalls"];
  ASSERT_EQ(stalls["count"], 1);
  const auto& ev = stalls["events"][0];
  EXPECT_EQ(ev["op"], "fdatasync");
  EXPECT_EQ(ev["stream"], "kv_wal");
  EXPECT_NE(ev["file"].get<std::string>().find("wal-000001.log"), std::string::npos);
  EXPECT_GE(ev["duration_ns"].get<int64_t>(), 1500 * kMs);
  EXPECT_TRUE(dir.empty());
}

TEST(TikvWorkload, RejectsBadConfig) {
  TempDir dir;
  TikvConfig c = small_config(dir.path());
  c.raft.max_record = 1;
  EXPECT_FALSE(TikvWorkload::create(c));
  c = small_config(dir.path() + "/missing");
  EXPECT_FALSE(TikvWorkload::create(c));
  c = small_config(dir.path());
  c.engine = "aio";
  EXPECT_FALSE(TikvWorkload::create(c));
  c = small_config(dir.path());
  c.raft.enabled = c.wal.enabled = c.flush.enabled = c.compaction.enabled = false;
  auto w = TikvWorkload::create(c);
  ASSERT_TRUE(w);
  EXPECT_FALSE((*w)->start());
  EXPECT_TRUE(dir.empty());
}

TEST(TikvWorkload, DestructorStopsAndCleansUp) {
  TempDir dir;
  {
    auto w = TikvWorkload::create(small_config(dir.path()));
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->start());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(dir.empty());
}

}  // namespace
}  // namespace krepro::workloads
