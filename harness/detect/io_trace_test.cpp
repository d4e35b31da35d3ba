// Parser tests on real trace_pipe lines (testdata/trace), attribution on
// synthetic events and stalls.
#include "harness/detect/io_trace.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "harness/util/fs.h"

namespace krepro::detect {
namespace {

using nlohmann::json;

std::vector<std::string> lines_of(const std::string& name) {
  std::ifstream f(std::string(KREPRO_TRACE_TESTDATA) + "/" + name);
  std::vector<std::string> out;
  std::string l;
  while (std::getline(f, l)) out.push_back(l);
  return out;
}

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kMs = 1'000'000;

TEST(TraceLineParse, RealIssueLine) {
  TraceLine t;
  std::string l =
      "            bash-16125   [001] .....  3874.167357: block_rq_issue: 254,0 RM 4096 () "
      "12729192 + 8 be,0,4 [bash]";
  ASSERT_TRUE(parse_trace_line(l, &t));
  EXPECT_EQ(t.comm, "bash");
  EXPECT_EQ(t.pid, 16125);
  EXPECT_EQ(t.cpu, 1);
  EXPECT_EQ(t.ts_ns, 3874167357000);
  EXPECT_EQ(t.event, "block_rq_issue");
  BlockRq rq;
  ASSERT_TRUE(parse_block_rq(t.fields, true, &rq));
  EXPECT_EQ(rq.major, 254u);
  EXPECT_EQ(rq.minor, 0u);
  EXPECT_EQ(rq.rwbs, "RM");
  EXPECT_EQ(rq.sector, 12729192u);
  EXPECT_EQ(rq.nr_sector, 8u);
  // The same fields do not parse as a completion (no bytes column there).
  EXPECT_FALSE(parse_block_rq(t.fields, false, &rq));
}

TEST(TraceLineParse, CommWithDashesSpacesAndTgid) {
  TraceLine t;
  ASSERT_TRUE(parse_trace_line(
      " qemu-system-x86-16084   [001] ..s..  3874.170175: block_rq_complete: 254,0 RM () 12729192 "
      "+ 8 be,0,4 [0]",
      &t));
  EXPECT_EQ(t.comm, "qemu-system-x86");
  EXPECT_EQ(t.pid, 16084);
  BlockRq rq;
  ASSERT_TRUE(parse_block_rq(t.fields, false, &rq));
  EXPECT_EQ(rq.sector, 12729192u);
  ASSERT_TRUE(parse_trace_line(
      "    kworker/u4:1 x-77      (   77) [000] d..1.    10.000001: foo: bar", &t));
  EXPECT_EQ(t.comm, "kworker/u4:1 x");
  EXPECT_EQ(t.pid, 77);
  EXPECT_EQ(t.ts_ns, 10000001000);
  EXPECT_EQ(t.fields, "bar");
  // Without the irq-info flags column.
  ASSERT_TRUE(parse_trace_line("  dd-5 [003]   12.5: ev: x=1", &t));
  EXPECT_EQ(t.cpu, 3);
  EXPECT_EQ(t.ts_ns, 12500000000);
  EXPECT_EQ(t.event, "ev");
}

TEST(TraceLineParse, WritebackAndBdpFields) {
  WbInode w;
  ASSERT_TRUE(parse_writeback_inode(
      "bdi 254:0: ino=403311 state=I_SYNC dirtied_when=4295860782 age=0 index=16", &w));
  EXPECT_EQ(w.bdi, "254:0");
  EXPECT_EQ(w.ino, 403311u);
  EXPECT_FALSE(parse_writeback_inode("bdi 254:0: inode=1", &w));
  EXPECT_FALSE(parse_writeback_inode("254:0: ino=1", &w));
  BdpPause b;
  ASSERT_TRUE(
      parse_bdp("bdi 8:16: limit=1 setpoint=2 dirtied=64 dirtied_pause=32 paused=4 "
                "pause=-12 period=2",
                &b));
  EXPECT_EQ(b.bdi, "8:16");
  EXPECT_EQ(b.pause_ms, -12);  // " pause=", not the tail of "dirtied_pause="
  EXPECT_FALSE(parse_bdp("bdi 8:16: limit=1 dirtied_pause=32", &b));
}

TEST(TraceLineParse, EveryCapturedLineParses) {
  auto lines = lines_of("fsync_capture.txt");
  ASSERT_GT(lines.size(), 800u);
  size_t issue = 0, complete = 0, wb = 0;
  for (const auto& l : lines) {
    TraceLine t;
    ASSERT_TRUE(parse_trace_line(l, &t)) << l;
    BlockRq rq;
    WbInode w;
    if (t.event == "block_rq_issue") {
      ASSERT_TRUE(parse_block_rq(t.fields, true, &rq)) << l;
      ++issue;
    } else if (t.event == "block_rq_complete") {
      ASSERT_TRUE(parse_block_rq(t.fields, false, &rq)) << l;
      ++complete;
    } else {
      ASSERT_TRUE(parse_writeback_inode(t.fields, &w)) << l;
      ++wb;
    }
  }
  EXPECT_EQ(issue, 277u);
  EXPECT_EQ(complete, 267u);
  EXPECT_EQ(wb, 318u);
}

TEST(TraceLineParse, NearMissesAndTruncationsAreRejected) {
  auto lines = lines_of("near_miss.txt");
  ASSERT_GE(lines.size(), 10u);
  for (const auto& l : lines) {
    TraceLine t;
    EXPECT_FALSE(parse_trace_line(l, &t)) << l;
  }
  // Every prefix of a real line short of the event name fails too.
  std::string full = lines_of("fsync_capture.txt").front();
  size_t colon = full.find(": block_rq_issue:");
  for (size_t n = 0; n < colon + 16; ++n) {
    TraceLine t;
    EXPECT_FALSE(parse_trace_line(full.substr(0, n), &t)) << n;
  }
  EXPECT_EQ(parse_lost_events("CPU:1 [LOST 42 EVENTS]"), 42u);
  EXPECT_EQ(parse_lost_events("CPU:1 LOST"), 0u);
  BlockRq rq;
  EXPECT_FALSE(parse_block_rq("254,0 RM 4096 () 12729192 +", true, &rq));
  EXPECT_FALSE(parse_block_rq("254 RM 4096 () 1 + 8", true, &rq));
  EXPECT_FALSE(parse_block_rq("254,0 RM 4096 (", true, &rq));
}

TEST(TraceLineParse, PsiAvg10) {
  double some = -1, full = -1;
  ASSERT_TRUE(
      parse_psi_avg10("some avg10=1.25 avg60=0.50 avg300=0.10 total=123\n"
                      "full avg10=0.75 avg60=0.00 avg300=0.00 total=45\n",
                      &some, &full));
  EXPECT_DOUBLE_EQ(some, 1.25);
  EXPECT_DOUBLE_EQ(full, 0.75);
  EXPECT_FALSE(parse_psi_avg10("garbage\n", &some, &full));
}

TEST(IoTraceAnalyzer, CaptureGivesDeviceHistogramsAndWriteback) {
  auto lines = lines_of("fsync_capture.txt");
  IoTraceAnalyzer a(3874 * kSec);
  for (const auto& l : lines) a.add_line(l);
  EXPECT_EQ(a.parse_errors(), 0u);
  json s = a.summary(10);
  ASSERT_TRUE(s["devices"].contains("254:0")) << s.dump(1);
  const auto& d = s["devices"]["254:0"];
  // Every data request pairs; the data-less flushes pair in order.
  EXPECT_GE(d["rq_lat_ns"]["count"].get<uint64_t>(), 200u);
  EXPECT_EQ(d["unmatched_completions"], 0);
  EXPECT_GT(d["rq_lat_ns"]["lat_ns"]["max"].get<uint64_t>(), 0u);
  EXPECT_LT(d["rq_lat_ns"]["lat_ns"]["max"].get<uint64_t>(), 1'000'000'000u);
  ASSERT_FALSE(d["series"].empty());
  uint64_t sum = 0;
  for (const auto& p : d["series"]) sum += p["count"].get<uint64_t>();
  EXPECT_EQ(sum, d["rq_lat_ns"]["count"].get<uint64_t>());
  EXPECT_EQ(s["writeback"]["inode_ns"]["count"], 159);
  EXPECT_FALSE(s["writeback"]["slowest"].empty());
  EXPECT_EQ(s["writeback"]["slowest"][0]["bdi"], "254:0");
}

TEST(IoTraceAnalyzer, SyntheticBdpKprobeAndLost) {
  IoTraceAnalyzer a(5000 * kSec);
  a.add_kprobe("krepro_0000abcd_0", "mempool_alloc");
  for (const auto& l : lines_of("synthetic.txt")) a.add_line(l);
  EXPECT_EQ(a.lost_events(), 42u);
  EXPECT_EQ(a.parse_errors(), 0u);
  json s = a.summary(10);
  EXPECT_EQ(s["balance_dirty_pages"]["count"], 1);
  EXPECT_EQ(s["balance_dirty_pages"]["pause_ns"]["lat_ns"]["max"], 200 * kMs);
  const auto& k = s["kprobes"]["mempool_alloc"];
  EXPECT_EQ(k["lat_ns"]["count"], 1);
  EXPECT_EQ(k["slow_count"], 1);
  EXPECT_NEAR(k["slow"][0]["ms"].get<double>(), 5010.0, 0.01);
  ASSERT_EQ(a.slow_events().size(), 2u);
}

// Synthetic trace lines at chosen monotonic times.
std::string ts(int64_t ns) {
  char b[64];
  snprintf(b, sizeof b, "%lld.%06lld", static_cast<long long>(ns / kSec),
           static_cast<long long>((ns % kSec) / 1000));
  return b;
}
std::string issue(int64_t t, uint64_t sector) {
  return "  w-1 [000] ..... " + ts(t) + ": block_rq_issue: 8,16 WS 4096 () " +
         std::to_string(sector) + " + 8 be,0,4 [w]";
}
std::string complete(int64_t t, uint64_t sector) {
  return "  w-1 [000] ..... " + ts(t) + ": block_rq_complete: 8,16 WS () " +
         std::to_string(sector) + " + 8 be,0,4 [0]";
}
json stall(int64_t start, int64_t dur) {
  return {{"actor", "tikv"}, {"op", "fdatasync"}, {"start_ns", start}, {"duration_ns", dur}};
}

TEST(IoTraceAnalyzer, AttributesStallsToLayers) {
  const int64_t t0 = 100 * kSec;
  IoTraceAnalyzer a(t0);
  a.add_kprobe("krepro_x_0", "mempool_alloc");
  // Stall 1 at t0+1s, 200 ms: a 150 ms request inside → device.
  a.add_line(issue(t0 + 1 * kSec + 10 * kMs, 100));
  a.add_line(complete(t0 + 1 * kSec + 160 * kMs, 100));
  // Stall 2 at t0+3s, 5.1 s: mempool_alloc slept 5 s → allocator (and
  // near a 5 s multiple); a short 2 ms request does not explain it.
  a.add_line("  kw-9 [001] ..... " + ts(t0 + 3 * kSec + 50 * kMs) +
             ": krepro_x_0: (mempool_alloc+0x0/0x1a0)");
  a.add_line(issue(t0 + 3 * kSec + 100 * kMs, 200));
  a.add_line(complete(t0 + 3 * kSec + 102 * kMs, 200));
  a.add_line("  kw-9 [001] ..... " + ts(t0 + 8 * kSec + 60 * kMs) +
             ": krepro_x_0_ret: (bvec_alloc+0x7c/0xe0 <- mempool_alloc)");
  // Stall 3 at t0+10s, 300 ms: a 100 ms dirty-throttle pause → throttle.
  a.add_line("  dd-5 [000] ..... " + ts(t0 + 10 * kSec + 20 * kMs) +
             ": balance_dirty_pages: bdi 8:16: limit=1 setpoint=1 dirty=2 wb_setpoint=1 "
             "wb_dirty=2 dirty_ratelimit=1 task_ratelimit=0 dirtied=1 dirtied_pause=1 paused=0 "
             "pause=100 period=100 think=0 cgroup_ino=1");
  // Stall 4 at t0+12s, 400 ms: a 300 ms inode writeback → writeback.
  a.add_line("  w-1 [000] ..... " + ts(t0 + 12 * kSec) +
             ": writeback_single_inode_start: bdi 8:16: ino=12 state=I_SYNC");
  a.add_line("  w-1 [000] ..... " + ts(t0 + 12 * kSec + 300 * kMs) +
             ": writeback_single_inode: bdi 8:16: ino=12 state=I_SYNC");
  // Stall 5 at t0+20s, 250 ms: nothing in the kernel trace → above-block.
  // Stall 6 at t0+30s, 9.6 s: nothing, but near 2 × 5 s.
  std::vector<json> stalls = {
      stall(t0 + 1 * kSec, 200 * kMs),  stall(t0 + 3 * kSec, 5100 * kMs),
      stall(t0 + 10 * kSec, 300 * kMs), stall(t0 + 12 * kSec - 50 * kMs, 400 * kMs),
      stall(t0 + 20 * kSec, 250 * kMs), stall(t0 + 30 * kSec, 9600 * kMs)};
  json r = a.attribute(stalls);
  ASSERT_EQ(r["count"], 6);
  const auto& e = r["entries"];
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[0]["layer"], "device");
  EXPECT_NEAR(e[0]["device_max_ms"].get<double>(), 150, 0.01);
  EXPECT_NEAR(e[0]["start_s"].get<double>(), 1.0, 1e-9);
  EXPECT_EQ(e[1]["layer"], "mempool/allocator");
  EXPECT_NEAR(e[1]["kprobe_max_ms"].get<double>(), 5010, 0.01);
  EXPECT_NEAR(e[1]["device_max_ms"].get<double>(), 2, 0.01);
  EXPECT_EQ(e[2]["layer"], "throttle");
  EXPECT_NEAR(e[2]["bdp_pause_ms"].get<double>(), 100, 0.01);
  EXPECT_EQ(e[3]["layer"], "writeback");
  EXPECT_NEAR(e[3]["writeback_max_ms"].get<double>(), 300, 0.01);
  EXPECT_EQ(e[4]["layer"], "above-block");
  EXPECT_EQ(e[4]["device_max_ms"], 0.0);
  EXPECT_EQ(e[5]["layer"], "above-block");
  EXPECT_EQ(r["near_5s_multiples"], 2);
  EXPECT_EQ(r["by_layer"]["above-block"], 2);
  EXPECT_EQ(r["by_layer"]["device"], 1);
  EXPECT_EQ(r["examples"].size(), 6u);
}

TEST(IoTraceAnalyzer, AttributionListIsCappedButCountsAll) {
  IoTraceLimits lim;
  lim.max_attributed = 3;
  IoTraceAnalyzer a(0, lim);
  std::vector<json> stalls;
  for (int i = 0; i < 25; ++i) stalls.push_back(stall(i * kSec, 150 * kMs));
  json r = a.attribute(stalls);
  EXPECT_EQ(r["count"], 25);
  EXPECT_EQ(r["entries"].size(), 3u);
  EXPECT_EQ(r["examples"].size(), 10u);
  EXPECT_EQ(r["near_5s_multiples"], 0);
}

TEST(IoTraceAnalyzer, SlowListAndInflightAreBounded) {
  IoTraceLimits lim;
  lim.max_slow = 4;
  lim.max_inflight = 8;
  IoTraceAnalyzer a(0, lim);
  for (int i = 0; i < 10; ++i) {
    a.add_line(issue(i * kSec, 1000 + i));
    a.add_line(complete(i * kSec + 5 * kMs, 1000 + i));
  }
  ASSERT_EQ(a.slow_events().size(), 4u);
  EXPECT_EQ(a.slow_events().front().start_ns, 6 * kSec);                // the newest are kept
  for (int i = 0; i < 20; ++i) a.add_line(issue(20 * kSec, 5000 + i));  // never complete
  json s = a.summary(30);
  EXPECT_LE(s["devices"]["8:16"]["inflight_at_end"].get<uint64_t>(), 8u);
  EXPECT_GT(s["devices"]["8:16"]["inflight_dropped"].get<uint64_t>(), 0u);
  EXPECT_EQ(s["slow_events"]["dropped"], 6);
  // Ten 1 s points, one request each.
  EXPECT_EQ(s["devices"]["8:16"]["series"].size(), 10u);
}

}  // namespace
}  // namespace krepro::detect
