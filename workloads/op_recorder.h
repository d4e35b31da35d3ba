// Per-thread operation latency recording: a whole-run histogram per op kind,
// a 1-second interval series, and a bounded list of stalls.
//
// One OpRecorder per thread; record() takes no lock and allocates nothing
// except when a stall is kept. The interval roll-over check is a single
// compare of the op's end time against a precomputed deadline.
//
// Interval series and merging: when a second rolls over, each op's
// per-interval Histogram is stored as a sparse list of (bucket, count) pairs
// (a few hundred pairs for a busy second, against 43 KB for a full histogram)
// and reset. Sparse seconds are exact copies of the histogram's buckets, so
// merging recorders merges each second's buckets before p50/p99 are taken:
// a merged p99 is the p99 of all ops that ended in that second, not an
// average of per-thread p99s.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harness/util/clock.h"
#include "harness/util/histogram.h"

namespace krepro::workloads {

enum class Op : uint8_t {
  kWrite,
  kRead,
  kFdatasync,
  kFsync,
  kFlush,           // a whole memtable flush: SST writes + fsync
  kCompactionStep,  // a whole compaction: reads, merged writes, fsync, unlinks
  kUnlink,
  kCount,
};
inline constexpr size_t kOpCount = static_cast<size_t>(Op::kCount);
// "write", "read", "fdatasync", "fsync", "flush", "compaction_step", "unlink".
std::string_view op_name(Op op);
// Flush and compaction_step are made of many single ops.
inline bool op_is_composite(Op op) { return op == Op::kFlush || op == Op::kCompactionStep; }
// Ops whose slowness is a stall of the write path: the single reads,
// writes and syncs. Not the composites (seconds by nature) and not unlink:
// removing a rotated WAL or a compacted SST is background work in TiKV
// (raft-engine purge, RocksDB's obsolete-file deletion), and ext4 takes
// 100+ ms to free a 256 MiB preallocated file on this host. Their latency
// is still recorded; a per-op threshold can still be set.
inline bool op_is_stall_eligible(Op op) { return !op_is_composite(op) && op != Op::kUnlink; }

struct StallEvent {
  Op op;
  int64_t start_ns;  // CLOCK_MONOTONIC
  int64_t duration_ns;
  std::string stream;
  std::string file;
};

struct IntervalPoint {
  int64_t second;  // index since the recorder's start
  uint64_t count;
  uint64_t p50_ns, p99_ns, max_ns;
};

class OpRecorder {
 public:
  static constexpr int64_t kIntervalNs = 1'000'000'000;
  static constexpr int64_t kDefaultStallNs = 100'000'000;  // 100 ms
  static constexpr size_t kDefaultMaxStalls = 10'000;

  // start_ns is second 0 of the interval series; give every recorder of one
  // run the same start so that their seconds line up when merged.
  explicit OpRecorder(std::string stream = {}, int64_t start_ns = mono_ns());

  // Records one op that ran [start_ns, end_ns). file names the file for the
  // stall list only (copied only when the op is a stall). An op belongs to
  // the second it ended in; ops are expected in completion order (one
  // that ends before the open second is counted in the open second).
  void record(Op op, int64_t start_ns, int64_t end_ns, std::string_view file = {}) {
    if (end_ns >= deadline_ns_) [[unlikely]]
      roll_over(end_ns);
    const uint64_t d = end_ns > start_ns ? static_cast<uint64_t>(end_ns - start_ns) : 0;
    PerOp& p = ops_[static_cast<size_t>(op)];
    p.total.record(d);
    p.interval.record(d);
    if (d >= p.stall_ns) [[unlikely]]
      add_stall(op, start_ns, d, file);
  }

  // Stall threshold of the single I/O ops (write, read, fdatasync, fsync,
  // unlink). Composite ops (flush, compaction_step) span many I/Os and
  // pacing sleeps, so they are never stalls unless set per op.
  void set_stall_threshold_ns(int64_t ns);
  void set_stall_threshold_ns(Op op, int64_t ns) {
    ops_[static_cast<size_t>(op)].stall_ns = static_cast<uint64_t>(ns);
  }
  int64_t stall_threshold_ns() const { return static_cast<int64_t>(stall_threshold_ns_); }
  void set_max_stalls(size_t n) { max_stalls_ = n; }

  // Closes the current interval and sets the end time used for IOPS. Call
  // once the thread is done (merge and to_json call it on copies as needed).
  void finish(int64_t end_ns = mono_ns());

  // Adds o's ops into this. Seconds are aligned by the recorders' start
  // times (rounded to whole seconds, exact when both share a start).
  void merge(const OpRecorder& o);

  const std::string& stream() const { return stream_; }
  int64_t start_ns() const { return start_ns_; }
  int64_t end_ns() const { return end_ns_; }
  const Histogram& histogram(Op op) const { return ops_[static_cast<size_t>(op)].total; }
  uint64_t count(Op op) const { return histogram(op).count(); }
  // Dense series from second 0 to the last second with any op of this kind
  // (seconds without ops have count 0). Includes the open interval.
  std::vector<IntervalPoint> intervals(Op op) const;
  const std::vector<StallEvent>& stalls() const { return stalls_; }
  uint64_t stall_count() const { return stall_count_; }

  // {"stream", "duration_s", "stall_threshold_ns", "ops": {NAME: op_json +
  // "intervals"}, "stalls": {"count", "kept", "events": [...]}}; op kinds
  // with no ops are left out.
  nlohmann::json to_json() const;

 private:
  // One second of one op kind, sparse: (bucket index, count), index-sorted.
  struct Second {
    int64_t index;
    uint64_t count;
    uint64_t min, max;
    std::vector<std::pair<uint32_t, uint32_t>> buckets;
  };
  struct PerOp {
    Histogram total;
    Histogram interval;
    uint64_t stall_ns = UINT64_MAX;
    std::vector<Second> seconds;  // closed seconds, increasing index
  };

  void roll_over(int64_t end_ns);
  void close_interval();
  void add_stall(Op op, int64_t start_ns, uint64_t d, std::string_view file);
  static Second to_second(const Histogram& h, int64_t index);
  static Second merge_seconds(const Second& a, const Second& b);
  static IntervalPoint summarise(const Second& s);

  std::string stream_;
  int64_t start_ns_;
  int64_t end_ns_;
  int64_t cur_second_ = 0;
  int64_t deadline_ns_;
  uint64_t stall_threshold_ns_ = kDefaultStallNs;
  size_t max_stalls_ = kDefaultMaxStalls;
  std::array<PerOp, kOpCount> ops_;
  std::vector<StallEvent> stalls_;
  uint64_t stall_count_ = 0;
};

// fio-style summary of a histogram over duration_s seconds:
// {"count", "iops", "lat_ns": {"min", "max", "mean", "stddev", "N",
//  "percentile": {"1.000000": v, ..., "99.990000": v}}} with fio's default
// percentile list (1, 5, 10, 20, ..., 99.9, 99.95, 99.99).
nlohmann::json op_json(const Histogram& h, double duration_s);

// fio's default percentile list (fio options.c, percentile_list).
inline constexpr std::array<double, 17> kFioPercentiles = {
    1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99};

}  // namespace krepro::workloads
