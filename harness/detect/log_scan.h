// `krepro scan FILE|-`: classify kernel log text from dmesg, dmesg -T,
// journalctl/syslog, /dev/kmsg records or a serial console capture, and say
// which known kernel signatures (signatures.h) it contains.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>

namespace krepro::detect {

enum class LineOrigin {
  kKernel,   // a kernel message (or text with no recognisable origin)
  kOther,    // another program's syslog line, a user-facility kmsg record
  kIgnored,  // a kmsg dictionary line, a journal banner
};

struct LogLine {
  LineOrigin origin = LineOrigin::kIgnored;
  std::string_view message;  // the kernel message text, prefixes removed
  double ts_s;               // NaN when the line has no usable time
  std::string_view time_text;
};

// Classifies one line (no newline, CR allowed). `in_kmsg` carries state
// across lines: after a kmsg record, " KEY=value" lines are its dictionary.
LogLine classify_log_line(std::string_view line, bool* in_kmsg);

// Exit codes: 0 nothing matched, 1 something matched, 2 bad input.
inline constexpr int kScanClean = 0;
inline constexpr int kScanMatched = 1;
inline constexpr int kScanBadInput = 2;

int scan_text(std::istream& in, const std::string& name, bool json, std::ostream& out,
              std::ostream& err);
// Opens path ("-" = stdin) and prints to stdout/stderr.
int scan_main(const std::string& path_or_dash, bool json);

}  // namespace krepro::detect
