#include "harness/detect/log_scan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace krepro::detect {
namespace {

struct ScanOut {
  int rc;
  std::string out;
  std::string err;
};

ScanOut scan(const std::string& text, bool json = false) {
  std::istringstream in(text);
  std::ostringstream out, err;
  int rc = scan_text(in, "test", json, out, err);
  return {rc, out.str(), err.str()};
}

std::map<std::string, uint64_t> counts(const std::string& text) {
  auto r = scan(text, true);
  std::map<std::string, uint64_t> m;
  if (r.rc == kScanBadInput) return {{"<bad input>", 1}};
  auto j = nlohmann::json::parse(r.out);
  for (auto& s : j["signatures"]) m[s["id"]] = s["count"];
  return m;
}

TEST(ClassifyLogLine, Formats) {
  bool k = false;
  auto l = classify_log_line("[  123.456789] unregister_netdevice: x", &k);
  EXPECT_EQ(l.origin, LineOrigin::kKernel);
  EXPECT_EQ(l.message, "unregister_netdevice: x");
  EXPECT_DOUBLE_EQ(l.ts_s, 123.456789);
  EXPECT_EQ(l.time_text, "123.456789");

  l = classify_log_line("[  12.5][ T1234]  ? schedule+0x1/0x2\r", &k);
  EXPECT_EQ(l.message, " ? schedule+0x1/0x2");

  l = classify_log_line("[Mon Dec  3 10:00:00 2026] eth0: link up", &k);
  EXPECT_EQ(l.origin, LineOrigin::kKernel);
  EXPECT_EQ(l.message, "eth0: link up");
  EXPECT_EQ(l.time_text, "Mon Dec  3 10:00:00 2026");
  // 2026-12-03T10:00:00Z.
  EXPECT_DOUBLE_EQ(l.ts_s, 1796292000.0);

  l = classify_log_line("Dec  3 10:00:00 node1 kernel: [  99.1] SLUB: x", &k);
  EXPECT_EQ(l.origin, LineOrigin::kKernel);
  EXPECT_EQ(l.message, "SLUB: x");
  EXPECT_DOUBLE_EQ(l.ts_s, 99.1);
  EXPECT_EQ(l.time_text, "Dec  3 10:00:00");

  l = classify_log_line("Dec 03 10:00:00 node1 dockerd[123]: unregister_netdevice: x", &k);
  EXPECT_EQ(l.origin, LineOrigin::kOther);

  l = classify_log_line("2026-12-03T10:00:00.123456+00:00 node1 kernel: hello", &k);
  EXPECT_EQ(l.origin, LineOrigin::kKernel);
  EXPECT_EQ(l.message, "hello");

  l = classify_log_line("6,1234,5678000,-;msg here", &k);
  EXPECT_EQ(l.origin, LineOrigin::kKernel);
  EXPECT_DOUBLE_EQ(l.ts_s, 5.678);
  EXPECT_TRUE(k);
  l = classify_log_line(" SUBSYSTEM=net", &k);
  EXPECT_EQ(l.origin, LineOrigin::kIgnored);
  l = classify_log_line("14,1235,5679000,-;user text", &k);
  EXPECT_EQ(l.origin, LineOrigin::kOther);

  l = classify_log_line("root@node:~# [   12.300000] BUG: x", &k);
  EXPECT_EQ(l.origin, LineOrigin::kKernel);
  EXPECT_EQ(l.message, "BUG: x");

  l = classify_log_line(" kernel:unregister_netdevice: y", &k);
  EXPECT_EQ(l.origin, LineOrigin::kKernel);
  EXPECT_EQ(l.message, "unregister_netdevice: y");

  l = classify_log_line("<14>[ 1.0] user", &k);
  EXPECT_EQ(l.origin, LineOrigin::kOther);
}

TEST(ScanText, ExitCodesAndHumanOutput) {
  auto none = scan("[ 1.0] eth0: link up\n[ 2.0] br0: port 1(veth1) entered forwarding state\n");
  EXPECT_EQ(none.rc, kScanClean);
  EXPECT_NE(none.out.find("no known kernel signatures"), std::string::npos);

  auto hit = scan(
      "[  5.0] unregister_netdevice: waiting for lo to become free. Usage count = 1\r\n"
      "[ 15.0] unregister_netdevice: waiting for lo to become free. Usage count = 1\r\n");
  EXPECT_EQ(hit.rc, kScanMatched);
  EXPECT_NE(hit.out.find("netdev-unregister-wait"), std::string::npos);
  EXPECT_NE(hit.out.find("x2"), std::string::npos);
  EXPECT_NE(hit.out.find("netdev-refcount-leak"), std::string::npos);
  EXPECT_NE(hit.out.find("devices: lo x2"), std::string::npos);

  EXPECT_EQ(scan("").rc, kScanClean);
}

TEST(ScanText, JsonShape) {
  auto r = scan(
      "[  5.0] unregister_netdevice: waiting for eth0 to become free. Usage count = 1\n"
      "[  6.0] SLUB: Unable to allocate memory on node -1 (gfp=0x20)\n"
      "[  6.0]   cache: kmalloc-64(9:abc), object size: 64\n"
      "random text line\n",
      true);
  ASSERT_EQ(r.rc, kScanMatched);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["lines"], 4);
  ASSERT_EQ(j["signatures"].size(), 2u);
  auto& n = j["signatures"][0];
  EXPECT_EQ(n["id"], "netdev-unregister-wait");
  EXPECT_EQ(n["bug"], "netdev-refcount-leak");
  EXPECT_EQ(n["severity"], "error");
  EXPECT_EQ(n["count"], 1);
  EXPECT_DOUBLE_EQ(n["first"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(n["last"].get<double>(), 5.0);
  EXPECT_EQ(n["devices"]["eth0"], 1);
  EXPECT_EQ(j["signatures"][1]["caches"]["kmalloc-64"], 1);
  EXPECT_FALSE(j["signatures"][1].contains("devices"));
  // Bare lines have no time: null, not 0.
  auto b = nlohmann::json::parse(
      scan("unregister_netdevice: waiting for lo to become free. Usage count = 1\n", true).out);
  EXPECT_TRUE(b["signatures"][0]["first"].is_null());
}

TEST(ScanText, JsonSurvivesInvalidUtf8) {
  auto r = scan(
      "[ 1.0] unregister_netdevice: waiting for \xff\xfe to become free. Usage count = 1\n", true);
  ASSERT_EQ(r.rc, kScanMatched);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["signatures"][0]["count"], 1);
  EXPECT_NE(j["signatures"][0]["sample"].get<std::string>().find("\xEF\xBF\xBD"),
            std::string::npos);
}

TEST(ScanText, BadInput) {
  auto r = scan(std::string("[ 1.0] ok\n\0\0\x01garbage", 18));
  EXPECT_EQ(r.rc, kScanBadInput);
  EXPECT_NE(r.err.find("binary"), std::string::npos);
  std::string ctl(1000, '\x01');
  EXPECT_EQ(scan(ctl).rc, kScanBadInput);
  EXPECT_EQ(scan_main("/nonexistent/krepro-scan.log", false), kScanBadInput);
  EXPECT_EQ(scan_main("/", false), kScanBadInput);
}

TEST(ScanText, VeryLongLineIsCut) {
  std::string s = "[ 1.0] unregister_netdevice: waiting for lo to become free. Usage count = 1 " +
                  std::string(1 << 20, 'a') + "\n[ 2.0] ok\n";
  auto c = counts(s);
  EXPECT_EQ(c["netdev-unregister-wait"], 1u);
}

// Each corpus file starts with "# source: ..." and "# expect: id=count,..."
// (or "none"); the scan must agree exactly.
TEST(Corpus, EveryFileMatchesItsExpectation) {
  namespace stdfs = std::filesystem;
  size_t files = 0, positive = 0;
  std::set<std::string> covered;
  for (const auto& ent : stdfs::directory_iterator(KREPRO_CORPUS_DIR)) {
    if (ent.path().extension() != ".log") continue;
    ++files;
    std::ifstream f(ent.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();
    std::map<std::string, uint64_t> expect;
    bool have_expect = false, have_source = false;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("# source:", 0) == 0) have_source = true;
      if (line.rfind("# expect:", 0) != 0) continue;
      have_expect = true;
      std::string spec = line.substr(9);
      spec.erase(0, spec.find_first_not_of(' '));
      while (!spec.empty() && (spec.back() == ' ' || spec.back() == '\r')) spec.pop_back();
      if (spec == "none") continue;
      std::istringstream items(spec);
      for (std::string item; std::getline(items, item, ',');) {
        auto eq = item.find('=');
        ASSERT_NE(eq, std::string::npos) << ent.path() << ": " << item;
        expect[item.substr(0, eq)] = std::stoull(item.substr(eq + 1));
      }
    }
    EXPECT_TRUE(have_source) << ent.path();
    ASSERT_TRUE(have_expect) << ent.path();
    auto got = counts(text);
    EXPECT_EQ(got, expect) << ent.path();
    if (!expect.empty()) ++positive;
    for (auto& [id, c] : expect) covered.insert(id);
  }
  EXPECT_GE(positive, 12u);
  EXPECT_GE(files - positive, 5u);
  for (auto id : {"netdev-unregister-wait", "slub-alloc-failure", "hung-task", "page-alloc-failure",
                  "memcg-oom", "global-oom", "soft-lockup", "rcu-stall", "warning", "bug-oops",
                  "kernel-panic"}) {
    EXPECT_TRUE(covered.count(id)) << "no corpus file covers " << id;
  }
}

}  // namespace
}  // namespace krepro::detect
