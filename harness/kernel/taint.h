// Kernel taint: /proc/sys/kernel/tainted is a decimal bitmask whose bits are
// the entries of kernel/panic.c taint_flags[] (TAINT_* in include/linux/panic.h).
// A run reads it before and after: a new 'W' (warning), 'D' (oops), 'L'
// (soft lockup) or 'B' (bad page) during a run is evidence in itself.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "harness/util/result.h"

namespace krepro::kernel {

struct TaintFlag {
  int bit;
  char letter;       // letter print_tainted() shows when the bit is set
  const char* name;  // TAINT_* without the prefix
  const char* help;
};

// All known flags in bit order (bit 0 'P' ... bit 19 'J').
std::span<const TaintFlag> taint_flags();

struct Taint {
  uint64_t mask = 0;

  bool has(char letter) const;
  // Letters of the set bits in bit order, e.g. "WOE"; unknown bits as '?'.
  std::string letters() const;
  // "W (WARN), O (OOT_MODULE)"; "none" when untainted.
  std::string describe() const;
  std::vector<const TaintFlag*> flags() const;
};

// Parses the procfs text ("0\n", "12800\n").
Result<Taint> parse_taint(std::string_view text);
Result<Taint> read_taint(const std::string& path = "/proc/sys/kernel/tainted");

struct TaintChange {
  uint64_t added = 0;
  uint64_t removed = 0;  // taint never clears on a live kernel; seen only
                         // when comparing different boots or fake files
  bool changed() const { return added != 0 || removed != 0; }
  // "+W +D" / "-O"; empty when unchanged.
  std::string describe() const;
};

TaintChange taint_change(const Taint& before, const Taint& after);

}  // namespace krepro::kernel
