// Kernel log signatures: a data table of known kernel messages, each with the
// bug it points to, a severity, the kernel source that prints it and a
// one-line help; and a streaming matcher that groups multi-line reports
// (SLUB cache line, hung-task call trace, oops registers) into one hit.
//
// The matcher works on kernel message text (the part after "[  123.4] " or
// "kernel: "); log_scan.h strips those prefixes and drops lines that did not
// come from the kernel. Headers are anchored at the start of the message, so
// text quoting a kernel message in the middle of a line never matches.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace krepro::detect {

enum class Severity { kInfo, kWarning, kError, kCritical };
const char* severity_name(Severity s);

// How lines after a header are attached to its hit.
enum class Grouping {
  kNone,       // single line
  kSlubCache,  // "  cache: ..." and "  node N: slabs: ..." lines
  kTrace,      // taint line, "Call Trace:", frames, registers, "task:" line
};

// One way a signature shows up in the log.
struct SignaturePattern {
  // Cheap filter: the header must contain this literal before the regex
  // runs (std::regex is slow; almost all lines fail the literal test).
  std::string_view literal;
  // ECMAScript regex, matched from the start of the (left-trimmed) message.
  std::string_view regex;
  // Names for the capture groups, comma separated ("" for none).
  std::string_view fields;
  // When a hit of the same signature is open, a line matching this pattern
  // joins it instead of counting again (the "Oops:" line after "BUG: unable
  // to handle", "Memory cgroup out of memory" after "oom-kill:").
  bool joins_open = false;
  // Parse "key=value,key=value" after the literal into fields.
  bool key_values = false;
};

struct Signature {
  std::string_view id;
  std::string_view bug;  // netdev-refcount-leak | kmem-writeback-jitter | memcg-id-leak | generic
  Severity severity;
  Grouping grouping;
  std::string_view source_file;
  std::string_view source_function;
  std::string_view help;
  std::vector<SignaturePattern> patterns;
};

// The built-in table, in a stable order (reports follow it).
std::span<const Signature> builtin_signatures();
const Signature* find_signature(std::string_view id);

struct SignatureHit {
  std::string id;
  std::string bug;
  Severity severity = Severity::kInfo;
  double ts_s = 0;        // timestamp of the header line (NaN when unknown)
  std::string time_text;  // the log's own timestamp text, when given
  std::map<std::string, std::string> fields;
  std::string sample;  // the header line (message text)
  std::vector<std::string> extra_lines;
};

struct MatchEvent {
  enum class Kind {
    kHit,     // a new header line: counts once
    kUpdate,  // the same hit, completed by the lines that followed it
  };
  Kind kind;
  SignatureHit hit;
};

// Streams message lines; not thread-safe. Memory is bounded: a group keeps at
// most kMaxExtraLines lines.
class SignatureMatcher {
 public:
  static constexpr size_t kMaxExtraLines = 64;
  // Lines after a header within which a joining line (see
  // SignaturePattern::joins_open) still belongs to it.
  static constexpr uint64_t kJoinWindow = 12;

  // Compiles the built-in table.
  SignatureMatcher();
  // A custom table (tests); the span must outlive the matcher.
  explicit SignatureMatcher(std::span<const Signature> table);

  // One message line (no trailing newline). Returns a kHit for a new header
  // (emitted at once, so live detection is not delayed) and a kUpdate when
  // an open group closes with lines added to it.
  std::vector<MatchEvent> feed(std::string_view line, double ts_s, std::string_view time_text = {});
  // Closes the open group.
  std::vector<MatchEvent> finish();

  uint64_t lines() const { return lines_; }

 private:
  struct Compiled {
    const Signature* sig;
    const SignaturePattern* pat;
    std::regex re;
    std::vector<std::string> field_names;
  };
  static std::shared_ptr<const std::vector<Compiled>> compile(std::span<const Signature> table);
  std::optional<SignatureHit> match_header(std::string_view msg,
                                           const SignaturePattern** matched) const;
  bool continues(std::string_view raw) const;
  void close(std::vector<MatchEvent>& out);

  // Compiling the regexes costs ~100 us; the built-in table is compiled once
  // and shared (matching on a const std::regex is thread-safe).
  std::shared_ptr<const std::vector<Compiled>> compiled_;
  std::optional<SignatureHit> open_;
  Grouping open_grouping_ = Grouping::kNone;
  bool open_changed_ = false;
  uint64_t lines_ = 0;
  std::string last_id_;
  const SignaturePattern* last_pattern_ = nullptr;
  uint64_t last_header_line_ = 0;
};

// Per-signature totals for reports and summary.json.
struct SignatureSummary {
  std::string id;
  std::string bug;
  Severity severity = Severity::kInfo;
  uint64_t count = 0;
  double first_s = 0;
  double last_s = 0;
  std::string first_text;
  std::string last_text;
  std::string sample;
  std::map<std::string, uint64_t> devices;  // netdev-unregister-wait: per device
  std::map<std::string, uint64_t> caches;   // slub-alloc-failure: per cache (when known)
};

class SignatureSummarizer {
 public:
  void add(const MatchEvent& ev);
  void add(const std::vector<MatchEvent>& evs) {
    for (const auto& e : evs) add(e);
  }
  // In table order, only signatures that were seen.
  std::vector<SignatureSummary> summaries() const;
  uint64_t total() const { return total_; }

 private:
  std::map<std::string, SignatureSummary> by_id_;
  uint64_t total_ = 0;
};

}  // namespace krepro::detect
