#include "harness/kernel/taint.h"

#include <array>
#include <cerrno>
#include <charconv>

#include "harness/util/fs.h"

namespace krepro::kernel {
namespace {

// kernel/panic.c taint_flags[] (TAINT_FLAG(name, c_true, c_false, module)).
constexpr std::array<TaintFlag, 20> kFlags = {{
    {0, 'P', "PROPRIETARY_MODULE", "proprietary module loaded"},
    {1, 'F', "FORCED_MODULE", "module force-loaded"},
    {2, 'S', "CPU_OUT_OF_SPEC", "CPU out of spec / SMP unsafe"},
    {3, 'R', "FORCED_RMMOD", "module force-unloaded"},
    {4, 'M', "MACHINE_CHECK", "machine check exception"},
    {5, 'B', "BAD_PAGE", "bad page referenced or unexpected page flags"},
    {6, 'U', "USER", "tainted by userspace request"},
    {7, 'D', "DIE", "kernel died recently (oops or BUG)"},
    {8, 'A', "OVERRIDDEN_ACPI_TABLE", "ACPI table overridden"},
    {9, 'W', "WARN", "kernel issued a warning"},
    {10, 'C', "CRAP", "staging driver loaded"},
    {11, 'I', "FIRMWARE_WORKAROUND", "platform firmware bug workaround"},
    {12, 'O', "OOT_MODULE", "out-of-tree module loaded"},
    {13, 'E', "UNSIGNED_MODULE", "unsigned module loaded"},
    {14, 'L', "SOFTLOCKUP", "soft lockup occurred"},
    {15, 'K', "LIVEPATCH", "kernel live patched"},
    {16, 'X', "AUX", "auxiliary taint (distribution defined)"},
    {17, 'T', "RANDSTRUCT", "built with struct randomization plugin"},
    {18, 'N', "TEST", "in-kernel test run"},
    {19, 'J', "FWCTL", "fwctl firmware access used"},
}};

std::string letters_of(uint64_t mask, char sign) {
  std::string out;
  for (int bit = 0; bit < 64; ++bit) {
    if (!(mask & (uint64_t{1} << bit))) continue;
    if (sign != 0) {
      if (!out.empty()) out.push_back(' ');
      out.push_back(sign);
    }
    out.push_back(bit < static_cast<int>(kFlags.size()) ? kFlags[bit].letter : '?');
  }
  return out;
}

}  // namespace

std::span<const TaintFlag> taint_flags() { return kFlags; }

bool Taint::has(char letter) const {
  for (const auto& f : kFlags) {
    if (f.letter == letter) return (mask & (uint64_t{1} << f.bit)) != 0;
  }
  return false;
}

std::string Taint::letters() const { return letters_of(mask, 0); }

std::vector<const TaintFlag*> Taint::flags() const {
  std::vector<const TaintFlag*> out;
  for (const auto& f : kFlags) {
    if (mask & (uint64_t{1} << f.bit)) out.push_back(&f);
  }
  return out;
}

std::string Taint::describe() const {
  if (mask == 0) return "none";
  std::string out;
  for (int bit = 0; bit < 64; ++bit) {
    if (!(mask & (uint64_t{1} << bit))) continue;
    if (!out.empty()) out += ", ";
    if (bit < static_cast<int>(kFlags.size())) {
      out += kFlags[bit].letter;
      out += " (";
      out += kFlags[bit].name;
      out += ")";
    } else {
      out += "bit " + std::to_string(bit);
    }
  }
  return out;
}

Result<Taint> parse_taint(std::string_view text) {
  std::string t = fs::trim(text);
  Taint taint;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), taint.mask);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size()) {
    return make_error(EINVAL, "tainted: not a number: '" + t + "'");
  }
  return taint;
}

Result<Taint> read_taint(const std::string& path) {
  auto text = fs::read_file(path, 4096);
  if (!text) return Unexpected(std::move(text.error()).wrap("read taint"));
  auto t = parse_taint(*text);
  if (!t) return Unexpected(std::move(t.error()).wrap(path));
  return t;
}

std::string TaintChange::describe() const {
  std::string a = letters_of(added, '+');
  std::string r = letters_of(removed, '-');
  if (a.empty()) return r;
  if (r.empty()) return a;
  return a + " " + r;
}

TaintChange taint_change(const Taint& before, const Taint& after) {
  return TaintChange{after.mask & ~before.mask, before.mask & ~after.mask};
}

}  // namespace krepro::kernel
