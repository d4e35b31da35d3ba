// results.ktap: KTAP version 1 as kselftest emits it
// (Documentation/dev-tools/ktap.rst): version line, plan, one result line per
// test, "# SKIP" directive, diagnostics as "# " lines before their test.
#include <fmt/format.h>

#include "results/formats.h"

namespace krepro::results {

namespace {

// A KTAP description must not contain '#' (it starts a directive) nor a
// newline; keep it to one printable line.
std::string ktap_text(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '#')
      out += "no.";
    else if (c == '\n' || c == '\r' || c == '\t')
      out += ' ';
    else if (static_cast<unsigned char>(c) >= 0x20)
      out += c;
  }
  return out;
}

void key_figures(const nlohmann::json& s, std::string& o) {
  if (s.contains("churn") && s["churn"].is_object())
    for (const auto& [kind, c] : s["churn"].items())
      o += fmt::format("# churn {}: created {} destroyed {} failed {}\n", kind, num(c, "created"),
                       num(c, "destroyed"), num(c, "failed"));
  if (s.contains("leaks") && s["leaks"].is_object()) {
    const auto& l = s["leaks"];
    if (l.contains("dying_memcgs"))
      o += fmt::format("# dying memcgs peak {} after drain {}\n", num(l["dying_memcgs"], "peak"),
                       num(l["dying_memcgs"], "after_drain_wait"));
    if (l.contains("netns_not_freed"))
      o += fmt::format("# netns not freed peak {} at end {}\n", num(l["netns_not_freed"], "peak"),
                       num(l["netns_not_freed"], "end"));
  }
  for (const auto& op : operations(s)) {
    auto p99 = percentile(*op.entry, 99);
    if (p99)
      o += fmt::format("# {} count {} p99 {:.3f} ms\n", ktap_text(op.name), num(*op.entry, "count"),
                       *p99 / 1e6);
  }
  if (s.contains("signatures") && s["signatures"].is_array())
    for (const auto& sig : s["signatures"])
      o += fmt::format("# signature {} x{}\n", ktap_text(sig.value("id", "?")), num(sig, "count"));
}

}  // namespace

std::string render_ktap(const RunData& run) {
  const auto& s = run.summary;
  auto cases = test_cases(run);
  std::string o = "KTAP version 1\n";
  o += fmt::format("# krepro run {} scenario {} kernel {} verdict {}\n", ktap_text(run_id_of(run)),
                   ktap_text(scenario_name(s)), ktap_text(kernel_release(s)),
                   ktap_text(s.value("verdict", "?")));
  o += fmt::format("1..{}\n", cases.size());
  key_figures(s, o);
  int n = 0;
  for (const auto& c : cases) {
    ++n;
    for (const auto& note : c.notes) o += "# " + ktap_text(note) + "\n";
    std::string name = ktap_text(c.name);
    switch (c.status) {
      case CaseStatus::kPass:
        o += fmt::format("ok {} {}\n", n, name);
        break;
      case CaseStatus::kFail:
        o += fmt::format("not ok {} {}\n", n, name);
        break;
      case CaseStatus::kSkip:
        o += fmt::format("ok {} {} # SKIP {}\n", n, name, ktap_text(c.reason));
        break;
      case CaseStatus::kError:
        // KTAP has no error directive; kselftest reports a harness fault as
        // "not ok" with the cause as a diagnostic.
        o += "# error: " + ktap_text(c.reason) + "\n";
        o += fmt::format("not ok {} {}\n", n, name);
        break;
    }
  }
  size_t pass = 0, fail = 0, skip = 0;
  for (const auto& c : cases) {
    if (c.status == CaseStatus::kPass)
      ++pass;
    else if (c.status == CaseStatus::kSkip)
      ++skip;
    else
      ++fail;
  }
  o += fmt::format("# Totals: pass:{} fail:{} xfail:0 xpass:0 skip:{} error:0\n", pass, fail, skip);
  return o;
}

}  // namespace krepro::results
