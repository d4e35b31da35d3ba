// `krepro compare A B`: patch validation across kernels. Each side is one or
// more run folders (or folders of run folders: repeated runs). B is worse
// than A when it reproduces more often, shows a kernel signature A never
// showed, or an operation's latency rose significantly (Mann–Whitney p <
// 0.05) by more than kRegression.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "harness/util/fs.h"
#include "results/formats.h"
#include "results/stats.h"

namespace krepro::results {

namespace {

using nlohmann::json;

constexpr double kAlpha = 0.05;
constexpr double kRegression = 0.10;  // p99 must rise by more than 10 %
constexpr size_t kMinRunsForPerRun = 3;

struct Side {
  std::vector<RunData> runs;
  std::vector<std::string> bad;  // folders without a readable summary
};

Side load_side(const std::vector<std::string>& paths) {
  Side s;
  for (const auto& p : paths) {
    if (fs::exists(fs::join(p, "summary.json"))) {
      if (auto r = load_run(p))
        s.runs.push_back(std::move(*r));
      else
        s.bad.push_back(p);
      continue;
    }
    auto entries = fs::list_dir(p);
    if (!entries) {
      s.bad.push_back(p);
      continue;
    }
    std::vector<std::string> names = *entries;
    std::sort(names.begin(), names.end());
    size_t before = s.runs.size();
    for (const auto& n : names) {
      std::string d = fs::join(p, n);
      if (!fs::exists(fs::join(d, "summary.json"))) continue;
      if (auto r = load_run(d)) s.runs.push_back(std::move(*r));
    }
    if (s.runs.size() == before) s.bad.push_back(p);
  }
  return s;
}

struct OpValues {
  std::vector<double> p50, p99;   // per run
  std::vector<double> intervals;  // per-interval p99 across runs
  std::vector<double> ladder;     // pooled percentile values
};

std::map<std::string, OpValues> op_values(const Side& side) {
  std::map<std::string, OpValues> m;
  for (const auto& run : side.runs)
    for (const auto& op : operations(run.summary)) {
      auto& v = m[op.name];
      if (auto x = percentile(*op.entry, 50)) v.p50.push_back(*x);
      if (auto x = percentile(*op.entry, 99)) v.p99.push_back(*x);
      const json& e = *op.entry;
      if (e.contains("intervals") && e["intervals"].is_object() &&
          e["intervals"].contains("p99_ns"))
        for (const auto& x : e["intervals"]["p99_ns"])
          if (x.is_number()) v.intervals.push_back(x.get<double>());
      const json& lat = e["lat_ns"];
      if (lat.contains("percentile") && lat["percentile"].is_object())
        for (const auto& [k, x] : lat["percentile"].items())
          if (x.is_number()) v.ladder.push_back(x.get<double>());
    }
  return m;
}

struct Leaks {
  double dying_peak = -1, netns_end = -1;
};
Leaks leaks_of(const Side& side) {
  Leaks l;
  for (const auto& r : side.runs) {
    const json lk = r.summary.value("leaks", json::object());
    if (lk.contains("dying_memcgs"))
      l.dying_peak = std::max(l.dying_peak, num(lk["dying_memcgs"], "peak"));
    if (lk.contains("netns_not_freed"))
      l.netns_end = std::max(l.netns_end, num(lk["netns_not_freed"], "end"));
  }
  return l;
}

std::string pct_str(double x) { return fmt::format("{:.0f}%", x * 100); }
std::string ms(double ns) { return fmt::format("{:.3f}", ns / 1e6); }

}  // namespace

int compare_main(const std::vector<std::string>& side_a, const std::vector<std::string>& side_b,
                 bool as_json, std::ostream& out) {
  Side A = load_side(side_a), B = load_side(side_b);
  if (A.runs.empty() || B.runs.empty() || !A.bad.empty() || !B.bad.empty()) {
    std::string bad;
    for (const auto& p : A.bad) bad += " " + p;
    for (const auto& p : B.bad) bad += " " + p;
    std::string msg = "no run folder (summary.json) in:" +
                      (bad.empty() ? std::string(A.runs.empty() ? " side A" : " side B") : bad);
    if (as_json)
      out << json{{"error", msg}}.dump() << "\n";
    else
      out << "krepro compare: " << msg << "\n";
    return 2;
  }
  json J;
  bool worse = false;
  std::vector<std::string> why;

  // Reproduction rates: reproduced / runs that reached a verdict.
  auto rate = [&](const Side& s, const char* label) {
    size_t k = 0, n = 0, other = 0;
    for (const auto& r : s.runs) {
      std::string v = r.summary.value("verdict", "error");
      if (v == "reproduced") ++k;
      if (v == "reproduced" || v == "not_reproduced" || v == "inconclusive")
        ++n;
      else
        ++other;
    }
    Interval ci = wilson_interval(k, n);
    std::set<std::string> kernels;
    for (const auto& r : s.runs) kernels.insert(kernel_release(r.summary));
    J["sides"][label] = {{"runs", s.runs.size()},
                         {"reproduced", k},
                         {"decided", n},
                         {"skipped_or_error", other},
                         {"rate", n ? double(k) / n : 0.0},
                         {"wilson95", {ci.lo, ci.hi}},
                         {"kernels", kernels}};
    return std::make_pair(n ? double(k) / n : 0.0, n);
  };
  auto [ra, na] = rate(A, "A");
  auto [rb, nb] = rate(B, "B");
  if (na && nb && rb > ra) {
    worse = true;
    why.push_back(fmt::format("reproduction rate rose {} -> {}", pct_str(ra), pct_str(rb)));
  }

  // Latency per operation. Each operation is one test; the family (a
  // dozen operations in a smoke run) is Holm-adjusted so that "significant"
  // keeps its 5 % meaning for the comparison as a whole.
  auto va = op_values(A), vb = op_values(B);
  struct OpTest {
    std::string name, basis;
    MannWhitney mw;
    double a50, a99, b50, b99, rel;
    bool b_higher;
  };
  std::vector<OpTest> tests;
  for (const auto& [name, a] : va) {
    auto it = vb.find(name);
    if (it == vb.end()) continue;
    const OpValues& b = it->second;
    const std::vector<double>*xa, *xb;
    std::string basis;
    // Repeated runs are the independent samples patch validation wants;
    // per-second intervals of one run are autocorrelated (and a periodic
    // disturbance hides among undisturbed seconds), so they are the basis
    // only when there are too few runs.
    if (a.p99.size() >= kMinRunsForPerRun && b.p99.size() >= kMinRunsForPerRun) {
      xa = &a.p99, xb = &b.p99, basis = "run_p99";
    } else if (!a.intervals.empty() && !b.intervals.empty()) {
      xa = &a.intervals, xb = &b.intervals, basis = "interval_p99";
    } else {
      // One or two runs a side: the percentile ladders stand in for the
      // distributions (quantiles, not independent samples: indicative).
      xa = &a.ladder, xb = &b.ladder, basis = "percentile_ladder";
    }
    OpTest t{
        name,          basis, mann_whitney_u(*xa, *xb), median(a.p50), median(a.p99), median(b.p50),
        median(b.p99), 0,     median(*xb) > median(*xa)};
    t.rel = t.a99 > 0 ? (t.b99 - t.a99) / t.a99 : 0;
    tests.push_back(std::move(t));
  }
  // Ladder quantiles are not independent samples: their test is shown but
  // is not part of the family and does not gate the exit status.
  std::vector<double> p2, p1;
  for (const auto& t : tests)
    if (t.basis != "percentile_ladder") p2.push_back(t.mw.p), p1.push_back(t.mw.p_b_greater);
  std::vector<double> h2 = holm_adjust(p2), h1 = holm_adjust(p1);
  J["operations"] = json::array();
  size_t k = 0;
  for (const auto& t : tests) {
    bool gated = t.basis != "percentile_ladder";
    double p_holm = gated ? h2[k] : 1, p_up_holm = gated ? h1[k] : 1;
    if (gated) ++k;
    bool sig = gated && p_holm < kAlpha;
    // Worse = B higher, one-sided test significant after adjustment, and a
    // rise of the median p99 that matters (noise-sized shifts do not).
    bool regress = gated && p_up_holm < kAlpha && t.rel > kRegression && t.b_higher;
    if (regress) {
      worse = true;
      why.push_back(fmt::format("{} p99 {} -> {} ms (+{:.0f}%, one-sided p={:.3g}, Holm {:.3g})",
                                t.name, ms(t.a99), ms(t.b99), t.rel * 100, t.mw.p_b_greater,
                                p_up_holm));
    }
    J["operations"].push_back({{"op", t.name},
                               {"a", {{"p50_ns", t.a50}, {"p99_ns", t.a99}}},
                               {"b", {{"p50_ns", t.b50}, {"p99_ns", t.b99}}},
                               {"p99_rel_diff", t.rel},
                               {"basis", t.basis},
                               {"n_a", t.mw.n1},
                               {"n_b", t.mw.n2},
                               {"U", t.mw.u},
                               {"U_a", t.mw.u1},
                               {"p", t.mw.p},
                               {"p_holm", p_holm},
                               {"p_b_greater", t.mw.p_b_greater},
                               {"p_b_greater_holm", p_up_holm},
                               {"exact", t.mw.exact},
                               {"significant", sig},
                               {"regression", regress}});
  }
  J["family"] = {{"tests", p2.size()}, {"correction", "holm"}};
  // Few runs a side cannot reach significance over a large family: say so
  // rather than let "no significant difference" read as evidence.
  if (!tests.empty() && tests.front().basis == "run_p99" && !p2.empty()) {
    auto min_p = [](size_t n1, size_t n2) {  // 2 / C(n1+n2, n1): complete separation
      double c = 1;
      for (size_t i = 1; i <= n1; ++i) c = c * static_cast<double>(n2 + i) / static_cast<double>(i);
      return 2 / c;
    };
    const size_t na = A.runs.size(), nb = B.runs.size();
    const double need = kAlpha / static_cast<double>(p2.size());
    if (min_p(na, nb) >= need) {
      size_t n = std::max(na, nb);
      while (min_p(n, n) >= need) ++n;
      J["power_hint"] = fmt::format(
          "with {} and {} runs the smallest possible p is {:.3g}, above the {:.3g} Holm needs for "
          "{} operations: {} runs a side can show a difference",
          na, nb, min_p(na, nb), need, p2.size(), n);
    }
  }

  Leaks la = leaks_of(A), lb = leaks_of(B);
  J["leaks"] = {{"dying_memcgs_peak", {{"a", la.dying_peak}, {"b", lb.dying_peak}}},
                {"netns_not_freed", {{"a", la.netns_end}, {"b", lb.netns_end}}}};

  auto sig_ids = [](const Side& s) {
    std::map<std::string, double> m;
    for (const auto& r : s.runs)
      for (const auto& sg : r.summary.value("signatures", json::array()))
        m[sg.value("id", "?")] += num(sg, "count");
    return m;
  };
  auto sa = sig_ids(A), sb = sig_ids(B);
  json only_a = json::array(), only_b = json::array();
  for (const auto& [id, n] : sa)
    if (!sb.count(id)) only_a.push_back({{"id", id}, {"count", n}});
  for (const auto& [id, n] : sb)
    if (!sa.count(id)) {
      only_b.push_back({{"id", id}, {"count", n}});
      worse = true;
      why.push_back("new kernel signature on B: " + id);
    }
  J["signatures"] = {{"only_a", only_a}, {"only_b", only_b}};
  J["b_worse"] = worse;
  J["reasons"] = why;
  J["thresholds"] = {{"alpha", kAlpha}, {"p99_regression", kRegression}};

  if (as_json) {
    out << J.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return worse ? 1 : 0;
  }
  for (const char* s : {"A", "B"}) {
    const auto& x = J["sides"][s];
    std::string kernels;
    for (const auto& k : x["kernels"])
      kernels += (kernels.empty() ? "" : ",") + k.get<std::string>();
    out << fmt::format("{}: {} run(s), kernel {}: reproduced {}/{} = {} (95% CI {}–{})\n", s,
                       x["runs"].get<size_t>(), kernels, x["reproduced"].get<size_t>(),
                       x["decided"].get<size_t>(), pct_str(x["rate"]), pct_str(x["wilson95"][0]),
                       pct_str(x["wilson95"][1]));
  }
  if (!J["operations"].empty()) {
    out << fmt::format("\n{:<30} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9}  {}\n", "operation",
                       "A p50 ms", "A p99 ms", "B p50 ms", "B p99 ms", "p99 Δ", "U", "p Holm",
                       "basis");
    for (const auto& o : J["operations"])
      out << fmt::format("{:<30} {:>9} {:>9} {:>9} {:>9} {:>+7.1f}% {:>9.1f} {:>9.3g}{} {}\n",
                         o["op"].get<std::string>(), ms(o["a"]["p50_ns"]), ms(o["a"]["p99_ns"]),
                         ms(o["b"]["p50_ns"]), ms(o["b"]["p99_ns"]),
                         o["p99_rel_diff"].get<double>() * 100, o["U"].get<double>(),
                         o["p_holm"].get<double>(), o["significant"].get<bool>() ? "*" : " ",
                         o["basis"].get<std::string>());
  }
  if (!J["operations"].empty()) {
    out << fmt::format("(Mann–Whitney U, two-sided, Holm-adjusted over {} operations; * p < {})\n",
                       p2.size(), kAlpha);
    if (J.contains("power_hint")) out << J["power_hint"].get<std::string>() << "\n";
  }
  auto leak = [](double v) { return v < 0 ? std::string("–") : fmt::format("{:.0f}", v); };
  out << fmt::format("\nleaks                          A        B\n");
  out << fmt::format("  dying memcgs peak    {:>10} {:>8}\n", leak(la.dying_peak),
                     leak(lb.dying_peak));
  out << fmt::format("  netns not freed      {:>10} {:>8}\n", leak(la.netns_end),
                     leak(lb.netns_end));
  for (const auto& x : only_a) out << "signature only on A: " << x["id"].get<std::string>() << "\n";
  for (const auto& x : only_b) out << "signature only on B: " << x["id"].get<std::string>() << "\n";
  out << "\n" << (worse ? "B is WORSE than A:" : "B is not worse than A") << "\n";
  for (const auto& w : why) out << "  - " << w << "\n";
  return worse ? 1 : 0;
}

}  // namespace krepro::results
