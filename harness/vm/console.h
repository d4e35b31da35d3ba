// The guest's serial console as the host sees it: split into lines, the
// last lines kept for a hang report, kernel signatures matched
// (harness/detect/signatures.h) and a kernel panic noticed as soon as its
// header line arrives (kernel/panic.c panic prints "Kernel panic - not
// syncing: REASON", then the stack, then "---[ end Kernel panic").
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "harness/detect/signatures.h"

namespace krepro::vm {

// Bytes in, complete lines out (CR and NUL dropped: the guest tty turns
// "\n" into "\r\n", drivers/tty/n_tty.c do_output_char with ONLCR).
class LineSplitter {
 public:
  // A longer run of bytes without a newline is cut into lines of this size
  // (busybox base64 wraps the guest's archive at 76 bytes; an event is one
  // short JSON line).
  static constexpr size_t kMaxLine = 1u << 20;
  std::vector<std::string> feed(std::string_view bytes);
  // What is left without a newline.
  std::string flush();

 private:
  std::string partial_;
};

class ConsoleWatch {
 public:
  static constexpr size_t kTailLines = 50;
  void feed_line(std::string_view line);
  void finish();

  bool panicked() const { return panicked_; }
  // The panic line and the lines after it (bounded).
  const std::vector<std::string>& panic_text() const { return panic_text_; }
  std::vector<std::string> tail() const { return {tail_.begin(), tail_.end()}; }
  uint64_t lines() const { return lines_; }
  // Signatures seen, in table order.
  std::vector<detect::SignatureSummary> signatures() const { return sum_.summaries(); }
  // True when a signature pointing at one of krepro's target bugs was seen
  // (anything but "generic").
  bool shows_reproduction() const;

 private:
  detect::SignatureMatcher matcher_;
  detect::SignatureSummarizer sum_;
  std::deque<std::string> tail_;
  std::vector<std::string> panic_text_;
  bool panicked_ = false;
  bool in_kmsg_ = false;
  uint64_t lines_ = 0;
};

}  // namespace krepro::vm
