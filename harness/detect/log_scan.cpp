#include "harness/detect/log_scan.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "harness/detect/signatures.h"
#include "harness/kernel/kmsg.h"

namespace krepro::detect {
namespace {

constexpr double kNoTime = std::numeric_limits<double>::quiet_NaN();
// Longer lines are cut: kernel lines are < 1 KiB (LOG_LINE_MAX), and the cap
// keeps memory bounded on garbage without newlines.
constexpr size_t kMaxLine = 64 * 1024;
// Share of control bytes in the first kProbeBytes above which input is not
// text.
constexpr size_t kProbeBytes = 64 * 1024;
constexpr double kMaxControlShare = 0.01;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

size_t skip_spaces(std::string_view s, size_t i) {
  while (i < s.size() && s[i] == ' ') ++i;
  return i;
}

size_t skip_digits(std::string_view s, size_t i) {
  while (i < s.size() && is_digit(s[i])) ++i;
  return i;
}

// Drops one separator space after a prefix: the kernel's own text may begin
// with spaces (trace frames, "  cache:" lines) and those must survive.
std::string_view after_prefix(std::string_view s, size_t end) {
  if (end < s.size() && s[end] == ' ') ++end;
  return s.substr(end);
}

// "[  123.456789]" at s[i] (kernel/printk/printk.c print_time). Returns the
// index after ']' or npos.
size_t parse_mono_bracket(std::string_view s, size_t i, double* ts) {
  if (i >= s.size() || s[i] != '[') return std::string_view::npos;
  size_t j = skip_spaces(s, i + 1);
  size_t d = skip_digits(s, j);
  if (d == j || d >= s.size() || s[d] != '.') return std::string_view::npos;
  size_t f = skip_digits(s, d + 1);
  if (f == d + 1 || f >= s.size() || s[f] != ']') return std::string_view::npos;
  *ts = std::strtod(std::string(s.substr(j, f - j)).c_str(), nullptr);
  return f + 1;
}

// "[ T1234]" / "[    C3]" after the time with CONFIG_PRINTK_CALLER.
size_t skip_caller_bracket(std::string_view s, size_t i) {
  if (i >= s.size() || s[i] != '[') return i;
  size_t j = skip_spaces(s, i + 1);
  if (j >= s.size() || (s[j] != 'T' && s[j] != 'C')) return i;
  size_t d = skip_digits(s, j + 1);
  if (d == j + 1 || d >= s.size() || s[d] != ']') return i;
  return d + 1;
}

int month_index(std::string_view m) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (m == kMonths[i]) return i;
  }
  return -1;
}

bool is_weekday(std::string_view d) {
  for (const char* w : {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}) {
    if (d == w) return true;
  }
  return false;
}

// Days since 1970-01-01 (proleptic Gregorian; Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// "HH:MM:SS" at s[i]; returns index after it or npos.
size_t parse_hms(std::string_view s, size_t i, int* secs) {
  if (i + 8 > s.size()) return std::string_view::npos;
  auto two = [&](size_t k) {
    return is_digit(s[k]) && is_digit(s[k + 1]) ? (s[k] - '0') * 10 + (s[k + 1] - '0') : -1;
  };
  int h = two(i), m = two(i + 3), sec = two(i + 6);
  if (h < 0 || m < 0 || sec < 0 || s[i + 2] != ':' || s[i + 5] != ':') {
    return std::string_view::npos;
  }
  *secs = h * 3600 + m * 60 + sec;
  return i + 8;
}

// "Mmm dD HH:MM:SS" at s[i] (syslog / journalctl short). Sets seconds since
// the start of an unknown year.
size_t parse_syslog_time(std::string_view s, size_t i, double* ts) {
  if (i + 15 > s.size()) return std::string_view::npos;
  int mon = month_index(s.substr(i, 3));
  if (mon < 0 || s[i + 3] != ' ') return std::string_view::npos;
  size_t j = i + 4;
  if (s[j] == ' ') ++j;
  size_t d = skip_digits(s, j);
  if (d == j || d - j > 2 || d >= s.size() || s[d] != ' ') return std::string_view::npos;
  int day = std::atoi(std::string(s.substr(j, d - j)).c_str());
  int secs = 0;
  size_t e = parse_hms(s, d + 1, &secs);
  if (e == std::string_view::npos) return e;
  double frac = 0;
  if (e < s.size() && s[e] == '.') {
    size_t f = skip_digits(s, e + 1);
    frac = std::strtod(std::string(s.substr(e, f - e)).c_str(), nullptr);
    e = f;
  }
  *ts = (days_from_civil(1970, mon + 1, day) * 86400.0) + secs + frac;
  return e;
}

// "2026-12-03T10:00:00[.frac][Z|+hh:mm|+hhmm]" at s[i].
size_t parse_iso_time(std::string_view s, size_t i, double* ts) {
  if (i + 19 > s.size()) return std::string_view::npos;
  for (size_t k : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!is_digit(s[i + k])) return std::string_view::npos;
  }
  if (s[i + 4] != '-' || s[i + 7] != '-' || (s[i + 10] != 'T' && s[i + 10] != ' ')) {
    return std::string_view::npos;
  }
  int y = std::atoi(std::string(s.substr(i, 4)).c_str());
  int mo = std::atoi(std::string(s.substr(i + 5, 2)).c_str());
  int d = std::atoi(std::string(s.substr(i + 8, 2)).c_str());
  int secs = 0;
  size_t e = parse_hms(s, i + 11, &secs);
  if (e == std::string_view::npos || mo < 1 || mo > 12 || d < 1 || d > 31) {
    return std::string_view::npos;
  }
  double frac = 0;
  if (e < s.size() && (s[e] == '.' || s[e] == ',')) {
    size_t f = skip_digits(s, e + 1);
    frac = std::strtod(("0." + std::string(s.substr(e + 1, f - e - 1))).c_str(), nullptr);
    e = f;
  }
  if (e < s.size() && s[e] == 'Z') {
    ++e;
  } else if (e < s.size() && (s[e] == '+' || s[e] == '-')) {
    size_t f = e + 1;
    while (f < s.size() && (is_digit(s[f]) || s[f] == ':')) ++f;
    e = f;  // offset ignored: only ordering within one file matters
  }
  *ts = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400.0 + secs +
        frac;
  return e;
}

// "[Mon Dec  3 10:00:00 2026]" at s[i] (dmesg -T).
size_t parse_ctime_bracket(std::string_view s, size_t i, double* ts) {
  if (i + 26 > s.size() || s[i] != '[' || !is_weekday(s.substr(i + 1, 3)) || s[i + 4] != ' ') {
    return std::string_view::npos;
  }
  double t = 0;
  size_t e = parse_syslog_time(s, i + 5, &t);
  if (e == std::string_view::npos || e + 6 > s.size() || s[e] != ' ') {
    return std::string_view::npos;
  }
  size_t y = skip_digits(s, e + 1);
  if (y != e + 5 || y >= s.size() || s[y] != ']') return std::string_view::npos;
  int year = std::atoi(std::string(s.substr(e + 1, 4)).c_str());
  // t counted from 1970-01-01 with the day-of-year; move it to the year.
  *ts = t + (days_from_civil(year, 1, 1) - days_from_civil(1970, 1, 1)) * 86400.0;
  return y + 1;
}

// After "host ident:" in a syslog/journal line: is ident the kernel?
// Returns the index after "ident:" or npos; sets *kernel.
size_t parse_host_ident(std::string_view s, size_t i, bool* kernel) {
  if (i >= s.size() || s[i] != ' ') return std::string_view::npos;
  size_t h = i + 1;
  size_t hend = s.find(' ', h);
  if (hend == std::string_view::npos || hend == h) return std::string_view::npos;
  size_t id = hend + 1;
  size_t colon = s.find(':', id);
  size_t space = s.find(' ', id);
  if (colon == std::string_view::npos || (space != std::string_view::npos && space < colon)) {
    return std::string_view::npos;
  }
  std::string_view ident = s.substr(id, colon - id);
  *kernel = ident == "kernel";
  return colon + 1;
}

bool parse_prio_prefix(std::string_view s, size_t* end, int* facility) {
  if (s.size() < 3 || s[0] != '<') return false;
  size_t d = skip_digits(s, 1);
  if (d == 1 || d > 4 || d >= s.size() || s[d] != '>') return false;
  *facility = std::atoi(std::string(s.substr(1, d - 1)).c_str()) >> 3;
  *end = d + 1;
  return true;
}

bool looks_like_kmsg_header(std::string_view s) {
  size_t i = skip_digits(s, 0);
  if (i == 0 || i >= s.size() || s[i] != ',') return false;
  size_t j = skip_digits(s, i + 1);
  if (j == i + 1 || j >= s.size() || s[j] != ',') return false;
  size_t k = skip_digits(s, j + 1);
  return k > j + 1 && k < s.size() && s[k] == ',' && s.find(';', k) != std::string_view::npos;
}

// The kernel text after "kernel: ", with an optional "[ 123.4]" inside.
void kernel_text(std::string_view s, size_t i, LogLine* out) {
  std::string_view rest = after_prefix(s, i);
  double t = 0;
  size_t e = parse_mono_bracket(rest, 0, &t);
  if (e != std::string_view::npos) {
    out->ts_s = t;
    e = skip_caller_bracket(rest, e);
    rest = after_prefix(rest, e);
  }
  out->message = rest;
}

}  // namespace

LogLine classify_log_line(std::string_view line, bool* in_kmsg) {
  LogLine out;
  out.ts_s = kNoTime;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

  // /dev/kmsg dictionary continuation (" SUBSYSTEM=net").
  if (*in_kmsg && !line.empty() && line[0] == ' ' && line.find('=') != std::string_view::npos) {
    out.origin = LineOrigin::kIgnored;
    return out;
  }
  *in_kmsg = false;

  if (!line.empty() && is_digit(line[0]) && looks_like_kmsg_header(line)) {
    size_t semi = line.find(';');
    auto rec = kernel::parse_kmsg_record(line.substr(0, semi + 1));
    if (rec) {
      *in_kmsg = true;
      out.origin = rec->from_kernel() ? LineOrigin::kKernel : LineOrigin::kOther;
      out.ts_s = static_cast<double>(rec->ts_us) / 1e6;
      out.time_text = line.substr(0, semi);
      // Escapes (\xNN) are left in place: signature text is plain ASCII.
      out.message = line.substr(semi + 1);
      return out;
    }
  }

  // "<6>" from dmesg -r or a raw console: facility != 0 is userspace.
  size_t p = 0;
  int facility = 0;
  std::string_view s = line;
  if (parse_prio_prefix(s, &p, &facility)) {
    if (facility != 0) {
      out.origin = LineOrigin::kOther;
      return out;
    }
    s = s.substr(p);
  }

  // syslog / journalctl: "Mmm dD HH:MM:SS host ident: msg" or ISO time.
  double t = 0;
  size_t e = parse_syslog_time(s, 0, &t);
  if (e == std::string_view::npos) e = parse_iso_time(s, 0, &t);
  if (e != std::string_view::npos) {
    bool kernel = false;
    size_t m = parse_host_ident(s, e, &kernel);
    if (m != std::string_view::npos) {
      if (!kernel) {
        out.origin = LineOrigin::kOther;
        return out;
      }
      out.origin = LineOrigin::kKernel;
      out.time_text = s.substr(0, e);
      out.ts_s = t;
      kernel_text(s, m, &out);
      return out;
    }
  }
  if (s.substr(0, 4) == "-- " || s.substr(0, 14) == "-- Logs begin " ||
      s.substr(0, 10) == "-- Journal") {
    out.origin = LineOrigin::kIgnored;
    return out;
  }

  // " kernel:unregister_netdevice: ..." (syslogd wall broadcast of an
  // emergency kernel message).
  size_t k = skip_spaces(s, 0);
  if (s.substr(k, 7) == "kernel:") {
    out.origin = LineOrigin::kKernel;
    kernel_text(s, k + 7, &out);
    return out;
  }

  // dmesg "[  123.4] msg" or dmesg -T "[Mon Dec  3 ...] msg", possibly after
  // other output on a serial console line.
  for (size_t b = s.find('['); b != std::string_view::npos && b < 512; b = s.find('[', b + 1)) {
    size_t end = parse_mono_bracket(s, b, &t);
    if (end != std::string_view::npos) {
      out.origin = LineOrigin::kKernel;
      out.ts_s = t;
      out.time_text = s.substr(b + 1, end - b - 2);
      while (!out.time_text.empty() && out.time_text[0] == ' ') out.time_text.remove_prefix(1);
      out.message = after_prefix(s, skip_caller_bracket(s, end));
      return out;
    }
    end = parse_ctime_bracket(s, b, &t);
    if (end != std::string_view::npos) {
      out.origin = LineOrigin::kKernel;
      out.ts_s = t;
      out.time_text = s.substr(b + 1, end - b - 2);
      out.message = after_prefix(s, end);
      return out;
    }
  }

  // Bare text (a pasted message without prefix). Signature headers are
  // anchored at the message start, so quoted text inside another
  // program's line does not match.
  out.origin = LineOrigin::kKernel;
  out.message = s;
  return out;
}

namespace {

nlohmann::json time_json(double ts) {
  if (std::isnan(ts)) return nullptr;
  return ts;
}

std::string time_human(double ts, const std::string& text) {
  if (!text.empty()) return text;
  if (std::isnan(ts)) return "-";
  std::ostringstream o;
  o.precision(6);
  o << std::fixed << ts << " s";
  return o.str();
}

}  // namespace

int scan_text(std::istream& in, const std::string& name, bool json, std::ostream& out,
              std::ostream& err) {
  SignatureMatcher matcher;
  SignatureSummarizer summary;
  uint64_t lines = 0, kernel_lines = 0;
  size_t probed = 0, control = 0;
  bool in_kmsg = false;
  std::string buf(1 << 16, '\0');
  std::string pending;
  bool truncating = false;

  auto handle = [&](std::string_view line) {
    ++lines;
    LogLine l = classify_log_line(line, &in_kmsg);
    if (l.origin != LineOrigin::kKernel) return;
    ++kernel_lines;
    summary.add(matcher.feed(l.message, l.ts_s, l.time_text));
  };

  while (true) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    size_t n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    std::string_view chunk(buf.data(), n);
    if (std::memchr(chunk.data(), '\0', n) != nullptr) {
      err << "krepro scan: " << name << ": binary data (NUL bytes), not a text log\n";
      return kScanBadInput;
    }
    if (probed < kProbeBytes) {
      for (size_t i = 0; i < n && probed < kProbeBytes; ++i, ++probed) {
        unsigned char c = static_cast<unsigned char>(chunk[i]);
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != 0x1b && c != '\b' &&
            c != '\f' && c != '\a') {
          ++control;
        }
      }
      if (probed >= 256 && static_cast<double>(control) > kMaxControlShare * probed) {
        err << "krepro scan: " << name << ": too many control bytes, not a text log\n";
        return kScanBadInput;
      }
    }
    while (!chunk.empty()) {
      size_t nl = chunk.find('\n');
      std::string_view part = chunk.substr(0, nl);
      if (!truncating) {
        size_t room = kMaxLine - pending.size();
        pending.append(part.substr(0, room));
        if (part.size() > room) truncating = true;
      }
      if (nl == std::string_view::npos) break;
      handle(pending);
      pending.clear();
      truncating = false;
      chunk.remove_prefix(nl + 1);
    }
    if (in.eof()) break;
  }
  if (in.bad()) {
    err << "krepro scan: " << name << ": read error\n";
    return kScanBadInput;
  }
  if (!pending.empty()) handle(pending);
  if (probed > 0 && probed < 256 && static_cast<double>(control) > kMaxControlShare * probed) {
    err << "krepro scan: " << name << ": too many control bytes, not a text log\n";
    return kScanBadInput;
  }
  summary.add(matcher.finish());

  auto sums = summary.summaries();
  if (json) {
    nlohmann::json j;
    j["source"] = name;
    j["lines"] = lines;
    j["kernel_lines"] = kernel_lines;
    j["signatures"] = nlohmann::json::array();
    for (const auto& s : sums) {
      const Signature* sig = find_signature(s.id);
      nlohmann::json e = {{"id", s.id},
                          {"bug", s.bug},
                          {"severity", severity_name(s.severity)},
                          {"count", s.count},
                          {"first", time_json(s.first_s)},
                          {"last", time_json(s.last_s)},
                          {"first_time", s.first_text},
                          {"last_time", s.last_text},
                          {"sample", s.sample}};
      if (sig) {
        e["help"] = sig->help;
        e["source"] = std::string(sig->source_file) + " " + std::string(sig->source_function);
      }
      if (!s.devices.empty()) e["devices"] = s.devices;
      if (!s.caches.empty()) e["caches"] = s.caches;
      j["signatures"].push_back(std::move(e));
    }
    // Kernel text is bytes, not necessarily UTF-8 (found by log_scan_fuzz):
    // nlohmann::json throws on invalid UTF-8 unless told to replace it.
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    out << "krepro scan: " << name << ": " << lines << " lines (" << kernel_lines
        << " from the kernel), ";
    if (sums.empty()) {
      out << "no known kernel signatures\n";
    } else {
      out << sums.size() << (sums.size() == 1 ? " signature" : " signatures") << ", "
          << summary.total() << " hits\n";
    }
    for (const auto& s : sums) {
      const Signature* sig = find_signature(s.id);
      out << "\n  " << s.id << " [" << severity_name(s.severity) << "] x" << s.count
          << "  -> bug: " << s.bug << "\n";
      out << "    first: " << time_human(s.first_s, s.first_text)
          << "  last: " << time_human(s.last_s, s.last_text) << "\n";
      out << "    sample: " << s.sample << "\n";
      if (!s.devices.empty()) {
        out << "    devices:";
        for (const auto& [d, c] : s.devices) out << " " << d << " x" << c;
        out << "\n";
      }
      if (!s.caches.empty()) {
        out << "    caches:";
        for (const auto& [d, c] : s.caches) out << " " << d << " x" << c;
        out << "\n";
      }
      if (sig) {
        out << "    why: " << sig->help << "\n";
        out << "    kernel: " << sig->source_file << " " << sig->source_function << "\n";
      }
    }
  }
  return sums.empty() ? kScanClean : kScanMatched;
}

int scan_main(const std::string& path_or_dash, bool json) {
  if (path_or_dash == "-") return scan_text(std::cin, "<stdin>", json, std::cout, std::cerr);
  std::ifstream f(path_or_dash, std::ios::binary);
  if (!f) {
    std::cerr << "krepro scan: cannot open " << path_or_dash << ": " << std::strerror(errno)
              << "\n";
    return kScanBadInput;
  }
  return scan_text(f, path_or_dash, json, std::cout, std::cerr);
}

}  // namespace krepro::detect
