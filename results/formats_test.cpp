// KTAP, JUnit, Prometheus and KCIDB writers, each checked by a strict parser
// of its own grammar, on the sample runs.
#include "results/formats.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "harness/util/fs.h"
#include "results/test_util.h"

namespace krepro::results {
namespace {

using testing::sample;
using testing::TempDir;

const char* kSamples[] = {"smoke", "holder", "dying", "repro", "skipped", "error"};

// ---- KTAP ---------------------------------------------------------------
struct KtapResult {
  int plan = -1;
  int ok = 0, not_ok = 0, skip = 0;
  std::vector<std::string> names;
  std::string error;  // grammar violation, empty when valid
};

// KTAP version 1 (Documentation/dev-tools/ktap.rst), top level only.
KtapResult parse_ktap(const std::string& text) {
  KtapResult r;
  std::istringstream in(text);
  std::string line;
  int lineno = 0, next = 1;
  std::regex plan_re(R"(^1\.\.(\d+)$)");
  std::regex test_re(
      R"(^(ok|not ok) (\d+) ([^#]*[^# ])(?: # (SKIP|TODO|XFAIL|TIMEOUT|ERROR)(?: (.*))?)?$)");
  while (std::getline(in, line)) {
    ++lineno;
    std::smatch m;
    auto fail = [&](const std::string& why) {
      if (r.error.empty()) r.error = "line " + std::to_string(lineno) + ": " + why + ": " + line;
    };
    if (lineno == 1) {
      if (line != "KTAP version 1") fail("first line must be the version");
      continue;
    }
    if (line.rfind("# ", 0) == 0 || line == "#") continue;
    if (std::regex_match(line, m, plan_re)) {
      if (r.plan >= 0) fail("second plan");
      if (next != 1) fail("plan after tests");
      r.plan = std::stoi(m[1]);
      continue;
    }
    if (std::regex_match(line, m, test_re)) {
      if (std::stoi(m[2]) != next) fail("test number out of sequence");
      ++next;
      r.names.push_back(m[3]);
      if (m[4] == "SKIP") {
        ++r.skip;
        if (m[1] != "ok") fail("SKIP must be ok");
        if (m[5].str().empty()) fail("SKIP without a reason");
      } else if (m[1] == "ok") {
        ++r.ok;
      } else {
        ++r.not_ok;
      }
      continue;
    }
    fail("not a KTAP line");
  }
  if (r.plan < 0 && r.error.empty()) r.error = "no plan";
  if (r.error.empty() && r.plan != next - 1)
    r.error = "plan " + std::to_string(r.plan) + " but " + std::to_string(next - 1) + " tests";
  return r;
}

TEST(Ktap, SamplesFollowTheGrammar) {
  for (const char* s : kSamples) {
    auto r = parse_ktap(render_ktap(sample(s)));
    EXPECT_EQ(r.error, "") << s << "\n" << render_ktap(sample(s));
    EXPECT_GE(r.plan, 3) << s;  // three target bugs at least
  }
}

TEST(Ktap, ParserRejectsBrokenOutput) {
  EXPECT_NE(parse_ktap("KTAP version 1\n1..2\nok 1 a\n").error, "");               // plan count
  EXPECT_NE(parse_ktap("KTAP version 1\n1..2\nok 1 a\nok 3 b\n").error, "");       // numbering
  EXPECT_NE(parse_ktap("KTAP version 1\n1..1\nnot ok 1 a # SKIP x\n").error, "");  // skip not ok
  EXPECT_NE(parse_ktap("TAP version 13\n1..1\nok 1 a\n").error, "");
  EXPECT_EQ(parse_ktap("KTAP version 1\n1..2\n# d\nok 1 a\nok 2 b # SKIP why\n").error, "");
}

TEST(Ktap, ReproducedBugIsNotOkAndUnexercisedIsSkip) {
  auto text = render_ktap(sample("repro"));
  EXPECT_NE(text.find("not ok 1 netdev-refcount-leak\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ok 2 kmem-writeback-jitter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("not ok"), std::string::npos);
  EXPECT_NE(text.find("detector.dstate # SKIP no /proc/<pid>/wchan"), std::string::npos) << text;
  auto r = parse_ktap(text);
  EXPECT_EQ(r.not_ok, 2);  // the bug and the detector that reported it

  // holder churns only netns: the memcg bugs are skipped with the reason.
  auto h = render_ktap(sample("holder"));
  EXPECT_NE(h.find("ok 2 kmem-writeback-jitter # SKIP not exercised (no memcg churn"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("ok 1 netdev-refcount-leak\n"), std::string::npos) << h;
  EXPECT_EQ(parse_ktap(h).not_ok, 0);

  // smoke churns memcgs but runs no write workload: the jitter bug is not
  // exercised (its symptom is the workload's latency), the ID leak is.
  auto sm = render_ktap(sample("smoke"));
  EXPECT_NE(sm.find("ok 2 kmem-writeback-jitter # SKIP not exercised (no memcg churn beside a "
                    "write workload"),
            std::string::npos)
      << sm;
  EXPECT_NE(sm.find("ok 3 memcg-id-leak\n"), std::string::npos) << sm;
}

TEST(Ktap, SkippedAndErrorRuns) {
  auto s = parse_ktap(render_ktap(sample("skipped")));
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(s.skip, s.plan);  // every bug, with the reason
  EXPECT_NE(render_ktap(sample("skipped")).find("# SKIP cgroup v1 memory controller"),
            std::string::npos);
  auto e = render_ktap(sample("error"));
  EXPECT_NE(e.find("# error: run folder: mkdir /x: EACCES"), std::string::npos) << e;
  EXPECT_EQ(parse_ktap(e).not_ok, 1);
}

// ---- JUnit ----------------------------------------------------------------
int count_of(const std::string& s, const std::string& needle) {
  int n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}
std::string attr(const std::string& xml, const std::string& elem, const std::string& name) {
  std::smatch m;
  std::regex re("<" + elem + "[^>]* " + name + "=\"([^\"]*)\"");
  return std::regex_search(xml, m, re) ? m[1].str() : "";
}

TEST(Junit, WellFormedAndCountsMatch) {
  bool have_xmllint = std::system("command -v xmllint >/dev/null 2>&1") == 0;
  TempDir tmp;
  for (const char* s : kSamples) {
    std::string xml = render_junit(sample(s));
    int cases = count_of(xml, "<testcase ");
    EXPECT_EQ(attr(xml, "testsuite", "tests"), std::to_string(cases)) << s;
    EXPECT_EQ(attr(xml, "testsuite", "failures"), std::to_string(count_of(xml, "<failure ")));
    EXPECT_EQ(attr(xml, "testsuite", "errors"), std::to_string(count_of(xml, "<error ")));
    EXPECT_EQ(attr(xml, "testsuite", "skipped"), std::to_string(count_of(xml, "<skipped ")));
    EXPECT_NE(xml.find("<property name=\"kernel_release\" value=\"6.18.44-fc-v1045\"/>"),
              std::string::npos);
    EXPECT_NE(xml.find("<property name=\"run_id\""), std::string::npos);
    if (!have_xmllint) continue;
    std::string f = tmp.path() + "/" + s + ".xml";
    std::ofstream(f) << xml;
    EXPECT_EQ(std::system(("xmllint --noout " + f).c_str()), 0) << s << "\n" << xml;
  }
  if (!have_xmllint) GTEST_SKIP() << "xmllint missing (Debian libxml2-utils)";
}

TEST(Junit, FailureCarriesEscapedEvidence) {
  std::string xml = render_junit(sample("repro"));
  EXPECT_EQ(attr(xml, "testsuite", "failures"), "2");
  EXPECT_NE(xml.find("type=\"reproduced\""), std::string::npos);
  EXPECT_NE(xml.find("&quot;device&quot;: &quot;eth0&quot;"), std::string::npos) << xml;
  std::string err = render_junit(sample("error"));
  EXPECT_EQ(attr(err, "testsuite", "errors"), "1");
  EXPECT_NE(err.find("<error message=\"run folder: mkdir /x: EACCES\""), std::string::npos);
}

// ---- Prometheus ----------------------------------------------------------
// Strict line parser for the text exposition format: returns "" or the first
// problem.
std::string check_prom(const std::string& text, std::set<std::string>* series_out = nullptr) {
  std::regex name_re("^[a-zA-Z_:][a-zA-Z0-9_:]*$");
  std::regex label_name_re("^[a-zA-Z_][a-zA-Z0-9_]*$");
  std::set<std::string> series, typed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) return "empty line";
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream ls(line.substr(7));
      std::string n, t;
      ls >> n >> t;
      if (!std::regex_match(n, name_re)) return "bad family name: " + line;
      if (t != "gauge" && t != "counter" && t != "summary" && t != "histogram" && t != "untyped")
        return "bad type: " + line;
      if (!typed.insert(n).second) return "family typed twice: " + n;
      continue;
    }
    if (line[0] == '#') return "stray comment: " + line;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string name = line.substr(0, i);
    if (!std::regex_match(name, name_re)) return "bad metric name: " + line;
    std::string fam = name;
    for (const char* suf : {"_sum", "_count"})
      if (!typed.count(fam) && fam.size() > strlen(suf) &&
          fam.compare(fam.size() - strlen(suf), strlen(suf), suf) == 0)
        fam = fam.substr(0, fam.size() - strlen(suf));
    if (!typed.count(fam)) return "sample before its TYPE: " + line;
    std::string labels;
    if (i < line.size() && line[i] == '{') {
      size_t j = i + 1;
      std::set<std::string> seen;
      while (j < line.size() && line[j] != '}') {
        size_t eq = line.find('=', j);
        if (eq == std::string::npos) return "label without =: " + line;
        std::string ln = line.substr(j, eq - j);
        if (!std::regex_match(ln, label_name_re)) return "bad label name '" + ln + "': " + line;
        if (!seen.insert(ln).second) return "duplicate label: " + line;
        if (eq + 1 >= line.size() || line[eq + 1] != '"') return "unquoted value: " + line;
        size_t k = eq + 2;
        for (; k < line.size() && line[k] != '"'; ++k) {
          if (line[k] == '\\') {
            if (k + 1 >= line.size() ||
                (line[k + 1] != '\\' && line[k + 1] != '"' && line[k + 1] != 'n'))
              return "bad escape: " + line;
            ++k;
          }
        }
        if (k >= line.size()) return "unterminated value: " + line;
        j = k + 1;
        if (j < line.size() && line[j] == ',') ++j;
      }
      if (j >= line.size()) return "unterminated labels: " + line;
      labels = line.substr(i, j + 1 - i);
      i = j + 1;
    }
    if (i >= line.size() || line[i] != ' ') return "no value: " + line;
    std::string value = line.substr(i + 1);
    char* end = nullptr;
    std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0') return "bad value '" + value + "': " + line;
    if (!series.insert(name + labels).second) return "duplicate series: " + line;
  }
  if (series_out) *series_out = series;
  return "";
}

TEST(Prom, SamplesParseStrictly) {
  for (const char* s : kSamples) {
    std::set<std::string> series;
    auto text = render_prom(sample(s));
    EXPECT_EQ(check_prom(text, &series), "") << s << "\n" << text;
    EXPECT_TRUE(series.count("krepro_run_verdict{scenario=\"" + scenario_name(sample(s).summary) +
                             "\",verdict=\"" + sample(s).summary["verdict"].get<std::string>() +
                             "\"}"))
        << s;
  }
}

TEST(Prom, KeyMetrics) {
  auto text = render_prom(sample("repro"));
  for (const char* want :
       {"krepro_run_verdict{scenario=\"netdev-leak\",verdict=\"reproduced\"} 1\n",
        "krepro_run_verdict{scenario=\"netdev-leak\",verdict=\"not_reproduced\"} 0\n",
        "krepro_reproduced{scenario=\"netdev-leak\",bug=\"netdev-refcount-leak\"} 1\n",
        "krepro_reproduced{scenario=\"netdev-leak\",bug=\"memcg-id-leak\"} 0\n",
        "krepro_churn_failed_total{kind=\"cgroups\",op=\"mkdir\",errno=\"ENOSPC\"} 12\n",
        "krepro_churn_created_total{kind=\"netns\"} 500\n", "krepro_dying_memcgs_peak 1400\n",
        "krepro_netns_not_freed 2\n", "krepro_run_duration_seconds{scenario=\"netdev-leak\"} 12\n",
        "krepro_signature_count{id=\"unregister-netdevice-wait\",bug=\"netdev-refcount-leak\"} 4\n",
        "krepro_latency_seconds{op=\"workload.kv_wal.fdatasync\",quantile=\"0.99\"} 0.0032\n"})
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
}

TEST(Prom, ParserCatchesBadLines) {
  const std::string head = "# TYPE m gauge\n";
  EXPECT_NE(check_prom(head + "m{a=\"x\"} 1\nm{a=\"x\"} 2\n"), "");  // duplicate
  EXPECT_NE(check_prom(head + "m{a=\"x\\q\"} 1\n"), "");             // bad escape
  EXPECT_NE(check_prom(head + "m{1a=\"x\"} 1\n"), "");               // label name
  EXPECT_NE(check_prom("m 1\n"), "");                                // untyped sample
  EXPECT_NE(check_prom(head + "m one\n"), "");
  EXPECT_EQ(check_prom(head + "m{a=\"x\\\"y\\\\z\\n\"} 1\n"), "");
}

TEST(Prom, LabelValuesAreEscaped) {
  RunData r = sample("repro");
  r.summary["scenario"]["name"] = "we\"ird\\name\nx";
  auto text = render_prom(r);
  EXPECT_EQ(check_prom(text), "") << text;
  EXPECT_NE(text.find("scenario=\"we\\\"ird\\\\name\\nx\""), std::string::npos) << text;
}

// ---- KCIDB ----------------------------------------------------------------
TEST(Kcidb, V4Shape) {
  for (const char* s : kSamples) {
    auto k = render_kcidb(sample(s));
    EXPECT_EQ(k["version"]["major"], 4);
    ASSERT_EQ(k["checkouts"].size(), 1u);
    const std::string id = "krepro:" + run_id_of(sample(s));
    EXPECT_EQ(k["checkouts"][0]["id"], id);
    EXPECT_EQ(k["builds"][0]["checkout_id"], id);
    std::set<std::string> keys = {"id",          "build_id", "origin",     "path",
                                  "status",      "waived",   "start_time", "duration",
                                  "environment", "misc",     "comment"};
    for (const auto& t : k["tests"]) {
      EXPECT_EQ(t["build_id"], id);
      EXPECT_EQ(t["origin"], "krepro");
      EXPECT_TRUE(std::regex_match(t["path"].get<std::string>(), std::regex("^[.a-zA-Z0-9_-]*$")));
      EXPECT_EQ(t["path"].get<std::string>().rfind("krepro.", 0), 0u);
      std::set<std::string> st = {"FAIL", "ERROR", "PASS", "DONE", "SKIP"};
      EXPECT_TRUE(st.count(t["status"])) << t.dump();
      for (const auto& [key, v] : t.items()) EXPECT_TRUE(keys.count(key)) << key;  // v4.0 only
      EXPECT_EQ(t["environment"]["misc"]["kernel_release"], "6.18.44-fc-v1045");
    }
  }
  auto r = render_kcidb(sample("repro"));
  EXPECT_EQ(r["tests"][0]["path"], "krepro.netdev-leak.netdev-refcount-leak");
  EXPECT_EQ(r["tests"][0]["status"], "FAIL");
  EXPECT_EQ(render_kcidb(sample("error"))["tests"].back()["status"], "ERROR");
}

// ---- write_formats / report_main --------------------------------------------
TEST(WriteFormats, WritesRequestedFilesAtomically) {
  TempDir tmp;
  std::string dir = testing::copy_sample("holder", tmp.path());
  auto s = load_run(dir);
  ASSERT_TRUE(s.has_value());
  ASSERT_TRUE(write_formats(dir, s->summary, {"json", "ktap", "junit", "prom", "kcidb", "html"}));
  for (const char* f : {"results.ktap", "junit.xml", "krepro.prom", "kcidb.json", "report.html"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
    EXPECT_FALSE(fs::exists(dir + "/" + f + ".tmp")) << f;
  }
  auto bad = write_formats(dir, s->summary, {"ktap", "yaml"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("yaml"), std::string::npos);
}

TEST(ReportMain, RerendersPresentFormatsAndHtml) {
  TempDir tmp;
  std::string dir = testing::copy_sample("repro", tmp.path());
  std::ofstream(dir + "/junit.xml") << "stale";
  std::ostringstream err;
  EXPECT_EQ(report_main(dir, {}, &err), 0) << err.str();
  EXPECT_TRUE(fs::exists(dir + "/report.html"));
  EXPECT_FALSE(fs::exists(dir + "/results.ktap"));  // neither present nor asked
  auto junit = fs::read_file(dir + "/junit.xml");
  ASSERT_TRUE(junit.has_value());
  EXPECT_NE(junit->find("<testsuites"), std::string::npos);
  EXPECT_EQ(report_main(dir, {"ktap"}, &err), 0);
  EXPECT_TRUE(fs::exists(dir + "/results.ktap"));
}

TEST(ReportMain, NoSummaryIsExit2NamingIt) {
  TempDir tmp;
  std::ostringstream err;
  EXPECT_EQ(report_main(tmp.path(), {}, &err), 2);
  EXPECT_NE(err.str().find("summary.json"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find(tmp.path()), std::string::npos) << err.str();
}

}  // namespace
}  // namespace krepro::results
