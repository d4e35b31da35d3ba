// Reading the kernel log from /dev/kmsg, one record per read(2).
//
// Record format (Documentation/ABI/testing/dev-kmsg, kernel/printk/printk.c
// info_print_ext_header / msg_add_ext_text / msg_add_dict_text):
//
//   "prio,seq,ts_usec,flags[,more...];message\n" then " KEY=value\n" lines
//
// prio = facility << 3 | level. Non-printable bytes and '\' in the message
// are escaped as \xNN by the kernel; parse_kmsg_record undoes that.
//
// ts_us is printk's local_clock() (kernel/printk/printk.c vprintk_store), a
// sched_clock based clock that tracks CLOCK_MONOTONIC closely but is not the
// same clock (it can drift by a few ms and differs across CPUs). Compare
// kernel records with the run timeline through received_mono_ns, which the
// reader stamps with CLOCK_MONOTONIC when the record is read.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "harness/util/result.h"

namespace krepro::kernel {

// Facility numbers from include/linux/syslog.h: 0 is the kernel itself, 1 is
// user (what a root process writing to /dev/kmsg gets, see devkmsg_write).
inline constexpr int kFacilityKernel = 0;
inline constexpr int kFacilityUser = 1;

struct KmsgRecord {
  int facility = 0;
  int level = 0;
  uint64_t seq = 0;
  uint64_t ts_us = 0;   // printk local_clock in microseconds (see above)
  char flags = '-';     // '-' or 'c' (continuation, older kernels)
  std::string message;  // unescaped
  // Extra header fields after flags (e.g. "caller=T123" with
  // CONFIG_PRINTK_CALLER), kept verbatim.
  std::vector<std::string> extra;
  // Dictionary lines " KEY=value" (SUBSYSTEM=, DEVICE=, ...).
  std::vector<std::pair<std::string, std::string>> dict;
  // CLOCK_MONOTONIC when the reader received it; 0 when parsed from text.
  int64_t received_mono_ns = 0;

  // Only facility-0 records come from the kernel; userspace can write any
  // text to /dev/kmsg but always lands in facility >= 1.
  bool from_kernel() const { return facility == kFacilityKernel; }
};

// Parses one record (header line, optional dict lines, trailing newline
// optional). Fails with EINVAL on a malformed header.
Result<KmsgRecord> parse_kmsg_record(std::string_view raw);

// Undoes the kernel's \xNN escaping; other backslashes are kept.
std::string unescape_kmsg(std::string_view text);

struct KmsgReaderOptions {
  // Read the whole ring buffer instead of only records after open().
  bool from_start = false;
};

// A reader thread over /dev/kmsg (or a FIFO / regular file for tests, in
// which case records are split on lines: a header line plus following lines
// that start with a space). Move-only; the destructor stops the thread.
class KmsgReader {
 public:
  using Options = KmsgReaderOptions;
  using Callback = std::function<void(const KmsgRecord&)>;

  static Result<KmsgReader> open(std::string path = "/dev/kmsg", Options opts = {});

  KmsgReader(KmsgReader&&) noexcept;
  // Stops and closes what this held before taking the other's reader.
  KmsgReader& operator=(KmsgReader&&) noexcept;
  KmsgReader(const KmsgReader&) = delete;
  KmsgReader& operator=(const KmsgReader&) = delete;
  ~KmsgReader();

  // Starts the reader thread; cb runs on it, once per record. Fails with
  // EBUSY when already started.
  Result<void> start(Callback cb);
  // Wakes the thread through an eventfd and joins it; never blocks on the
  // kernel. Safe to call more than once.
  void stop();

  bool running() const;
  // Records that were overwritten before we read them (sequence gaps, the
  // kernel reports them with EPIPE: kernel/printk/printk.c devkmsg_read).
  uint64_t lost() const;
  // EPIPE returns seen.
  uint64_t overruns() const;
  uint64_t records() const;
  // Malformed records skipped.
  uint64_t parse_errors() const;
  const std::string& path() const;

  struct State;

 private:
  explicit KmsgReader(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

}  // namespace krepro::kernel
