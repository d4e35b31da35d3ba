#include "harness/vm/console.h"

#include <cmath>

#include "harness/detect/log_scan.h"

namespace krepro::vm {

std::vector<std::string> LineSplitter::feed(std::string_view bytes) {
  std::vector<std::string> out;
  for (char c : bytes) {
    if (c == '\r' || c == '\0') continue;
    if (c == '\n') {
      out.push_back(std::move(partial_));
      partial_.clear();
    } else {
      partial_.push_back(c);
      if (partial_.size() >= kMaxLine) {  // a guest writing without newlines
        out.push_back(std::move(partial_));
        partial_.clear();
      }
    }
  }
  return out;
}

std::string LineSplitter::flush() {
  std::string s = std::move(partial_);
  partial_.clear();
  return s;
}

namespace {
constexpr size_t kPanicLines = 60;
constexpr std::string_view kPanicHeader = "Kernel panic - not syncing";
}  // namespace

void ConsoleWatch::feed_line(std::string_view line) {
  ++lines_;
  tail_.emplace_back(line);
  if (tail_.size() > kTailLines) tail_.pop_front();
  if (panicked_ && panic_text_.size() < kPanicLines) panic_text_.emplace_back(line);
  if (!panicked_ && line.find(kPanicHeader) != std::string_view::npos) {
    panicked_ = true;
    panic_text_.emplace_back(line);
  }
  auto ll = detect::classify_log_line(line, &in_kmsg_);
  if (ll.origin != detect::LineOrigin::kKernel) return;
  sum_.add(matcher_.feed(ll.message, ll.ts_s, ll.time_text));
}

void ConsoleWatch::finish() { sum_.add(matcher_.finish()); }

bool ConsoleWatch::shows_reproduction() const {
  for (const auto& s : sum_.summaries())
    if (s.bug != "generic" && !s.bug.empty()) return true;
  return false;
}

}  // namespace krepro::vm
