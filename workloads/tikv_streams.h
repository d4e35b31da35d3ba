// A TiKV-like write workload: independent streams (raft log, kv WAL, memtable
// flush, compaction), each on its own thread with its own files under a
// directory the caller gives, total disk use bounded (files rotate and are
// deleted, never grow without bound). Every op's latency goes through the
// stream's OpRecorder.
//
// The single-stream "wal-append" pattern (wal_append_config) is fio's
// `ioengine=io_uring rw=write bs=4k fdatasync=1 iodepth=1`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <thread>
#include <vector>

#include "harness/util/result.h"
#include "workloads/io_engine.h"
#include "workloads/op_recorder.h"

namespace krepro::workloads {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = kKiB * 1024;

// 0 = as fast as possible. When both are set the slower one wins.
struct RateLimit {
  double ops_per_s = 0;
  double mib_per_s = 0;
};

// How a log file's space is reserved when it is opened.
enum class Prealloc {
  kNone,      // plain appends: every fdatasync also writes the new i_size
  kKeepSize,  // fallocate(FALLOC_FL_KEEP_SIZE), as RocksDB does for its WAL
  kFull,      // fallocate(mode 0), as fio's default fallocate=native
};

struct RaftLogConfig {
  bool enabled = true;
  uint64_t min_record = 4 * kKiB;
  uint64_t max_record = 64 * kKiB;
  int batch_records = 8;  // group commit: fdatasync after this many records
  double batch_ms = 2.0;  // ... or this long after the batch's first record
  uint64_t rotate_bytes = 64 * kMiB;
  int keep_files = 2;  // rotated logs kept (older ones unlinked)
  Prealloc prealloc = Prealloc::kNone;
  RateLimit rate;  // records/s or MiB/s
};

struct WalConfig {
  bool enabled = true;
  uint64_t record = 4 * kKiB;
  int sync_every = 1;  // fdatasync after every N appends
  uint64_t rotate_bytes = 64 * kMiB;
  int keep_files = 2;
  Prealloc prealloc = Prealloc::kNone;
  RateLimit rate;
};

struct FlushConfig {
  bool enabled = true;
  uint64_t min_sst = 8 * kMiB;
  uint64_t max_sst = 64 * kMiB;
  uint64_t write_size = 1 * kMiB;  // buffered writes, then one fsync
  double interval_s = 1.0;         // time between flush starts
  int max_ssts = 8;                // SSTs kept; the oldest goes first
  RateLimit rate;                  // MiB/s applies to the SST writes
};

struct CompactionConfig {
  bool enabled = true;
  int trigger = 4;              // compact when this many SSTs exist
  int inputs = 4;               // SSTs merged per step
  uint64_t io_size = 1 * kMiB;  // read and write size
  double poll_ms = 50;
  RateLimit rate;  // MiB/s applies to reads + writes
};

struct TikvConfig {
  std::string dir;              // must exist; streams make krepro-* subdirs
  std::string engine = "auto";  // auto | io_uring | psync
  // When set, used instead of make_engine(engine), once per stream (tests
  // inject slow or failing engines through it).
  std::function<Result<std::unique_ptr<IoEngine>>()> engine_factory;
  uint64_t seed = 1;
  int64_t stall_threshold_ns = OpRecorder::kDefaultStallNs;
  bool cleanup = true;  // remove all files and subdirs at stop()
  RaftLogConfig raft;
  WalConfig wal;
  FlushConfig flush;
  CompactionConfig compaction;

  // Upper bound of the bytes the workload keeps on disk at any time.
  uint64_t max_disk_bytes() const;
};

// Only the kv WAL: 4 KiB appends, fdatasync after each, queue depth 1, files
// fully fallocated like fio's default, one 256 MiB file reused by rotation.
TikvConfig wal_append_config(std::string dir);

struct StopReport {
  int64_t join_ns = 0;  // how long the threads took to exit
  // Notes, e.g. that stop waited for an in-flight fsync: a kernel stall of
  // an op already submitted cannot be interrupted, so stop() waits for it.
  std::vector<std::string> notes;
  std::vector<std::string> errors;  // per-stream I/O errors that ended a stream
};

class TikvWorkload {
 public:
  static Result<std::unique_ptr<TikvWorkload>> create(TikvConfig config);
  ~TikvWorkload();  // stops the threads if still running
  TikvWorkload(const TikvWorkload&) = delete;
  TikvWorkload& operator=(const TikvWorkload&) = delete;

  // Creates the engines, directories and threads.
  Result<void> start();
  // Asks every stream to exit after its current op and joins them.
  StopReport stop();
  bool running() const { return running_; }

  // After stop(): {"engine", "engine_reason", "streams": {NAME: recorder
  // JSON}} for the enabled streams (raft_log, kv_wal, flush, compaction).
  nlohmann::json results() const;
  // After stop(): the recorders, to merge them with others.
  std::vector<const OpRecorder*> recorders() const;
  // Ops finished so far by all streams (relaxed; for a live status line).
  uint64_t ops_done() const { return ops_done_.load(std::memory_order_relaxed); }
  // Bytes currently in the workload's files (walks the subdirectories).
  uint64_t disk_bytes() const;
  const TikvConfig& config() const { return config_; }
  // The krepro-tikv-PID-N directory under config.dir holding every file of
  // this run (empty before start() and after cleanup).
  const std::string& root_dir() const { return root_; }
  const std::string& engine_name() const { return engine_name_; }
  const std::string& engine_reason() const { return engine_reason_; }

  struct Stream;  // internal

 private:
  explicit TikvWorkload(TikvConfig config);
  void cleanup_files();

  TikvConfig config_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::thread> threads_;
  bool running_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ops_done_{0};
  std::mutex mu_;               // guards the SST set and the stop wait
  std::condition_variable cv_;  // wakes sleeping streams on stop
  struct SstSet;
  std::unique_ptr<SstSet> ssts_;
  std::string engine_name_, engine_reason_;
  std::string root_;

  friend struct StreamRunner;
};

}  // namespace krepro::workloads
