// The guest's event port (its second serial line, ttyS1) as the host reads
// it: the init's KREPRO-* markers (initramfs.h), the run's events as JSON
// lines, and the base64 result archive between KREPRO-RESULT-BEGIN/END.
// Everything here comes from the guest kernel under test, which may be
// hanging or scribbling, so every field is bounded and nothing is trusted
// beyond its shape.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace krepro::vm {

class GuestStream {
 public:
  // Far above any run's archive (summary, events, latency series, gzipped);
  // beyond this the archive is dropped (result_overflow()).
  static constexpr size_t kMaxResultBase64 = 256u << 20;
  static constexpr size_t kMaxSetupFailures = 64;
  static constexpr size_t kMaxModules = 64;

  explicit GuestStream(size_t max_result_base64 = kMaxResultBase64)
      : max_result_(max_result_base64) {}

  enum class Line {
    kEvent,   // a JSON event line: the caller appends it to events.jsonl
    kMarker,  // a marker or a piece of the result archive: consumed
    kOther,   // anything else (ignored)
  };
  Line feed_line(std::string_view line);

  bool init_started() const { return init_started_; }
  bool done() const { return done_; }
  bool result_complete() const { return result_complete_; }
  bool result_overflow() const { return result_overflow_; }
  const std::string& result_base64() const { return result_b64_; }
  const std::string& guest_kernel() const { return guest_kernel_; }
  int guest_exit() const { return guest_rc_; }  // -1 until KREPRO-EXIT
  uint64_t events() const { return events_; }
  const std::vector<std::string>& setup_failures() const { return setup_failures_; }
  const std::map<std::string, int>& unloaded() const { return unloaded_; }

 private:
  size_t max_result_;
  std::string guest_kernel_;
  int guest_rc_ = -1;
  bool init_started_ = false;
  bool in_result_ = false;
  bool result_complete_ = false;
  bool result_overflow_ = false;
  bool done_ = false;
  std::string result_b64_;
  uint64_t events_ = 0;
  std::vector<std::string> setup_failures_;  // KREPRO-SETUP-FAILED lines
  std::map<std::string, int> unloaded_;      // fixture module -> rmmod status
};

// Decodes base64 (whitespace and padding ignored); false on a bad
// character. By hand: the Debian packages this project uses have no public
// base64 decoder (Boost's is in beast::detail), and this is 20 lines.
bool base64_decode(std::string_view in, std::string* out);

}  // namespace krepro::vm
