// Kernel-side I/O evidence: block request latency, per-inode writeback time,
// dirty throttling pauses and (where kprobes exist) function latency, read
// from a tracefs instance of krepro's own, then used to say in which layer
// each workload stall spent its time.
//
// trace_pipe line format (kernel/trace/trace_output.c trace_print_context,
// with the default irq-info option; the flags column is absent without it):
//
//   "  comm-pid  [cpu] flags  SECONDS.USECS: event: fields"
//
// With trace_clock "mono" the timestamp is CLOCK_MONOTONIC.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "harness/engine/runner.h"
#include "harness/util/histogram.h"

namespace krepro::detect {

struct TraceLine {
  std::string_view comm;
  int32_t pid = 0;
  int32_t cpu = 0;
  int64_t ts_ns = 0;
  std::string_view event;
  std::string_view fields;
};

// False for anything that is not an event line (headers, "CPU:N [LOST M
// EVENTS]", truncated lines). Views point into line.
bool parse_trace_line(std::string_view line, TraceLine* out);
// "CPU:3 [LOST 120 EVENTS]" → 120 (trace_output.c / ring buffer overrun
// report); 0 when the line is not one.
uint64_t parse_lost_events(std::string_view line);

// block_rq_issue: "MAJ,MIN RWBS BYTES (CMD) SECTOR + NR ..."
// block_rq_complete: "MAJ,MIN RWBS (CMD) SECTOR + NR ..."
// (include/trace/events/block.h block_rq / block_rq_completion)
struct BlockRq {
  uint32_t major = 0, minor = 0;
  std::string_view rwbs;
  uint64_t sector = 0;
  uint32_t nr_sector = 0;
};
bool parse_block_rq(std::string_view fields, bool issue, BlockRq* out);

// writeback_single_inode[_start]: "bdi NAME: ino=N state=..."
// (include/trace/events/writeback.h writeback_single_inode_template)
struct WbInode {
  std::string_view bdi;
  uint64_t ino = 0;
};
bool parse_writeback_inode(std::string_view fields, WbInode* out);

// balance_dirty_pages: "bdi NAME: limit=... paused=MS pause=MS ..." where
// pause is the sleep about to start, in ms (writeback.h TP balance_dirty_pages:
// pause * 1000 / HZ).
struct BdpPause {
  std::string_view bdi;
  int64_t pause_ms = 0;
};
bool parse_bdp(std::string_view fields, BdpPause* out);

// One slow kernel event kept for stall attribution; CLOCK_MONOTONIC times.
struct SlowEvent {
  enum Kind : uint8_t { kRequest, kWriteback, kThrottle, kKprobe };
  Kind kind;
  uint32_t label;  // device key, bdi index or probe index
  int64_t start_ns;
  int64_t end_ns;
};

struct IoTraceLimits {
  int64_t rq_slow_ns = 1'000'000;          // requests at or over this are kept
  int64_t writeback_slow_ns = 10'000'000;  // per-inode writeback
  int64_t kprobe_threshold_ns = 10'000'000;
  size_t max_slow = 100'000;     // most recent slow events kept
  size_t max_inflight = 65'536;  // outstanding requests per device
  size_t max_attributed = 1000;  // stalls listed in stall_attribution
};

// Turns trace lines into histograms, series and the slow-event list. Fed by
// one thread; read after feeding stopped.
class IoTraceAnalyzer {
 public:
  explicit IoTraceAnalyzer(int64_t t0_ns, IoTraceLimits lim = {});

  // Entry event name of a kprobe pair (return is NAME_ret) and its function.
  void add_kprobe(const std::string& event, const std::string& func);
  void add_line(std::string_view line);
  void add_event(const TraceLine& l);
  void add_psi(int64_t now_ns, double some_avg10, double full_avg10);

  // {"devices", "writeback", "balance_dirty_pages", "kprobes", "psi_io",
  //  "lines", "events", "parse_errors", "lost_events", ...}. Call after
  // feeding stopped.
  nlohmann::json summary(double duration_s) const;
  // Per-device 1 s series and the psi series (latency/kernel-io.json).
  nlohmann::json series() const;
  // {"count", "by_layer", "near_5s_multiples", "entries": [...], "examples"}
  // for stalls {"start_ns","duration_ns",...}.
  nlohmann::json attribute(const std::vector<nlohmann::json>& stalls) const;

  uint64_t lines() const { return lines_; }
  uint64_t parse_errors() const { return parse_errors_; }
  uint64_t lost_events() const { return lost_; }
  const std::deque<SlowEvent>& slow_events() const { return slow_; }

 private:
  struct SeriesPoint {
    int64_t second;
    uint64_t count, p99_ns, max_ns;
  };
  struct Device {
    Histogram total;
    Histogram cur;
    int64_t cur_second = -1;
    std::vector<SeriesPoint> series;
    std::unordered_map<uint64_t, int64_t> inflight;  // sector → issue time
    std::deque<int64_t> flushes;                     // data-less flush issues, FIFO
    uint64_t unmatched = 0;
    uint64_t dropped_inflight = 0;
  };
  struct Slowest {
    int64_t start_ns, dur_ns;
    uint32_t bdi;
    uint64_t ino;
  };
  struct Probe {
    std::string event, ret_event, func;
    Histogram lat;
    std::unordered_map<int32_t, std::vector<int64_t>> entries;  // pid → entry times
    std::vector<std::pair<int64_t, int64_t>> slow;              // (start, duration)
    uint64_t slow_count = 0;
    uint64_t unmatched = 0;
  };
  struct Psi {
    int64_t t_ns;
    double some, full;
  };

  void on_issue(const TraceLine& l);
  void on_complete(const TraceLine& l);
  void on_wb(const TraceLine& l, bool start);
  void on_bdp(const TraceLine& l);
  bool on_kprobe(const TraceLine& l);
  void keep_slow(SlowEvent e);
  uint32_t bdi_index(std::string_view name);
  void close_second(Device& d) const;
  static std::string dev_name(uint32_t key);

  int64_t t0_ns_;
  IoTraceLimits lim_;
  // (major << 20) | minor; mutable: reading closes the open second.
  mutable std::map<uint32_t, Device> devices_;
  std::vector<std::string> bdis_;
  std::map<std::pair<uint32_t, uint64_t>, int64_t> wb_open_;
  Histogram wb_hist_;
  std::vector<Slowest> wb_slowest_;  // min-heap by duration, top 20
  Histogram bdp_hist_;
  uint64_t bdp_count_ = 0;
  std::vector<Probe> probes_;
  std::vector<Psi> psi_;
  std::deque<SlowEvent> slow_;
  uint64_t slow_dropped_ = 0;
  uint64_t lines_ = 0, events_ = 0, parse_errors_ = 0, lost_ = 0;
};

struct IoTracePaths {
  std::string proc = "/proc";
  std::string mounts = "/proc/self/mounts";
  std::string tracefs_root;                        // empty: find or mount
  std::string private_mount_base = "/run/krepro";  // krepro-<run-id>-tracefs in here
};

// Options read from the run: io_trace, kprobe_functions, kprobe_threshold.
std::unique_ptr<engine::RunObserver> make_io_trace_observer(const IoTracePaths& p = {});
void append_io_trace_observer(std::vector<std::unique_ptr<engine::RunObserver>>& v,
                              const IoTracePaths& p = {});

// "some avg10=1.23 avg60=..." / "full avg10=..." from /proc/pressure/io
// (kernel/sched/psi.c psi_show). False when the text has no some line.
bool parse_psi_avg10(std::string_view text, double* some, double* full);

}  // namespace krepro::detect
