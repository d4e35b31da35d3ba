#include "harness/detect/io_trace.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>

#include "harness/engine/journal.h"
#include "harness/engine/timeline.h"
#include "harness/kernel/tracefs.h"
#include "harness/util/clock.h"
#include "harness/util/fs.h"
#include "workloads/op_recorder.h"

namespace krepro::detect {

using nlohmann::json;

namespace {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Unsigned decimal at s[i..]; advances i. False when no digit.
inline bool take_u64(std::string_view s, size_t& i, uint64_t* v) {
  size_t b = i;
  uint64_t x = 0;
  while (i < s.size() && is_digit(s[i])) x = x * 10 + static_cast<uint64_t>(s[i++] - '0');
  *v = x;
  return i > b;
}
inline bool take_i64(std::string_view s, size_t& i, int64_t* v) {
  bool neg = i < s.size() && s[i] == '-';
  if (neg) ++i;
  uint64_t u;
  if (!take_u64(s, i, &u)) return false;
  *v = neg ? -static_cast<int64_t>(u) : static_cast<int64_t>(u);
  return true;
}
inline bool take_char(std::string_view s, size_t& i, char c) {
  if (i < s.size() && s[i] == c) {
    ++i;
    return true;
  }
  return false;
}
inline void skip_spaces(std::string_view s, size_t& i) {
  while (i < s.size() && s[i] == ' ') ++i;
}
// "SECONDS.FRACTION" → ns; the kernel prints 6 digits (µs), some clocks 9.
inline bool take_timestamp(std::string_view s, size_t& i, int64_t* ns) {
  uint64_t sec;
  if (!take_u64(s, i, &sec) || !take_char(s, i, '.')) return false;
  size_t b = i;
  uint64_t frac;
  if (!take_u64(s, i, &frac)) return false;
  size_t digits = i - b;
  if (digits > 9) return false;
  static constexpr uint64_t kScale[] = {1000000000, 100000000, 10000000, 1000000, 100000,
                                        10000,      1000,      100,      10,      1};
  *ns = static_cast<int64_t>(sec * 1000000000ull + frac * kScale[digits]);
  return true;
}

}  // namespace

bool parse_trace_line(std::string_view s, TraceLine* out) {
  // The CPU column "[NNN]" ends the task column; comm may hold spaces and
  // dashes, so find the bracket first and split comm-pid backwards from it.
  size_t b = 0;
  while (true) {
    b = s.find('[', b);
    if (b == std::string_view::npos || b == 0) return false;
    size_t j = b + 1;
    uint64_t cpu;
    if (s[b - 1] == ' ' && take_u64(s, j, &cpu) && take_char(s, j, ']') && j < s.size() &&
        s[j] == ' ') {
      out->cpu = static_cast<int32_t>(cpu);
      break;
    }
    ++b;
  }
  size_t e = b;
  while (e > 0 && s[e - 1] == ' ') --e;
  std::string_view task = s.substr(0, e);
  // "(tgid)" column with options/record-tgid.
  if (!task.empty() && task.back() == ')') {
    size_t p = task.rfind('(');
    if (p == std::string_view::npos) return false;
    task = task.substr(0, p);
    while (!task.empty() && task.back() == ' ') task.remove_suffix(1);
  }
  size_t dash = task.rfind('-');
  if (dash == std::string_view::npos) return false;
  size_t k = dash + 1;
  uint64_t pid;
  if (!take_u64(task, k, &pid) || k != task.size()) return false;
  size_t cs = 0;
  while (cs < dash && task[cs] == ' ') ++cs;
  out->comm = task.substr(cs, dash - cs);
  out->pid = static_cast<int32_t>(pid);

  size_t i = s.find(']', b) + 1;
  skip_spaces(s, i);
  // Flags column (irq-info), then the timestamp; without irq-info the
  // timestamp comes first.
  size_t save = i;
  if (!take_timestamp(s, i, &out->ts_ns) || !take_char(s, i, ':')) {
    i = save;
    while (i < s.size() && s[i] != ' ') ++i;
    skip_spaces(s, i);
    if (!take_timestamp(s, i, &out->ts_ns) || !take_char(s, i, ':')) return false;
  }
  if (!take_char(s, i, ' ')) return false;
  size_t ev_end = s.find(':', i);
  if (ev_end == std::string_view::npos || ev_end == i) return false;
  out->event = s.substr(i, ev_end - i);
  i = ev_end + 1;
  take_char(s, i, ' ');
  out->fields = s.substr(i);
  return true;
}

uint64_t parse_lost_events(std::string_view s) {
  if (s.substr(0, 4) != "CPU:") return 0;
  size_t p = s.find("[LOST ");
  if (p == std::string_view::npos) return 0;
  size_t i = p + 6;
  uint64_t n = 0;
  return take_u64(s, i, &n) ? n : 0;
}

bool parse_block_rq(std::string_view s, bool issue, BlockRq* out) {
  size_t i = 0;
  uint64_t maj, min;
  if (!take_u64(s, i, &maj) || !take_char(s, i, ',') || !take_u64(s, i, &min) ||
      !take_char(s, i, ' '))
    return false;
  size_t r = i;
  while (i < s.size() && s[i] != ' ') ++i;
  if (i == r) return false;
  out->rwbs = s.substr(r, i - r);
  if (!take_char(s, i, ' ')) return false;
  if (issue) {
    uint64_t bytes;
    if (!take_u64(s, i, &bytes) || !take_char(s, i, ' ')) return false;
  }
  if (!take_char(s, i, '(')) return false;
  size_t c = s.find(')', i);
  if (c == std::string_view::npos) return false;
  i = c + 1;
  uint64_t sector, nr;
  if (!take_char(s, i, ' ') || !take_u64(s, i, &sector)) return false;
  if (s.substr(i, 3) != " + ") return false;
  i += 3;
  if (!take_u64(s, i, &nr)) return false;
  out->major = static_cast<uint32_t>(maj);
  out->minor = static_cast<uint32_t>(min);
  out->sector = sector;
  out->nr_sector = static_cast<uint32_t>(nr);
  return true;
}

namespace {
// "bdi NAME: " prefix shared by the writeback events; NAME may hold ':'.
bool take_bdi(std::string_view s, std::string_view next, std::string_view* bdi, size_t* pos) {
  if (s.substr(0, 4) != "bdi ") return false;
  size_t e = s.find(next, 4);
  if (e == std::string_view::npos) return false;
  *bdi = s.substr(4, e - 4);
  *pos = e + next.size();
  return true;
}
}  // namespace

bool parse_writeback_inode(std::string_view s, WbInode* out) {
  size_t i;
  if (!take_bdi(s, ": ino=", &out->bdi, &i)) return false;
  return take_u64(s, i, &out->ino);
}

bool parse_bdp(std::string_view s, BdpPause* out) {
  size_t i;
  if (!take_bdi(s, ": limit=", &out->bdi, &i)) return false;
  // " pause=" (with the space) is not the tail of "dirtied_pause=".
  size_t p = s.find(" pause=", i);
  if (p == std::string_view::npos) return false;
  i = p + 7;
  return take_i64(s, i, &out->pause_ms);
}

bool parse_psi_avg10(std::string_view text, double* some, double* full) {
  bool got = false;
  *full = 0;
  for (const auto& line : fs::split(text, '\n')) {
    auto p = line.find("avg10=");
    if (p == std::string::npos) continue;
    double v = std::atof(line.c_str() + p + 6);
    if (line.rfind("some", 0) == 0) {
      *some = v;
      got = true;
    } else if (line.rfind("full", 0) == 0) {
      *full = v;
    }
  }
  return got;
}

// ------------------------------------------------------------ analyzer --

IoTraceAnalyzer::IoTraceAnalyzer(int64_t t0_ns, IoTraceLimits lim) : t0_ns_(t0_ns), lim_(lim) {}

void IoTraceAnalyzer::add_kprobe(const std::string& event, const std::string& func) {
  Probe p;
  p.event = event;
  p.ret_event = event + "_ret";
  p.func = func;
  probes_.push_back(std::move(p));
}

void IoTraceAnalyzer::add_line(std::string_view line) {
  ++lines_;
  TraceLine l;
  if (!parse_trace_line(line, &l)) {
    if (uint64_t n = parse_lost_events(line)) {
      lost_ += n;
    } else if (!line.empty() && line[0] != '#') {
      ++parse_errors_;
    }
    return;
  }
  add_event(l);
}

void IoTraceAnalyzer::add_event(const TraceLine& l) {
  ++events_;
  const auto& ev = l.event;
  if (ev == "block_rq_issue") return on_issue(l);
  if (ev == "block_rq_complete") return on_complete(l);
  if (ev == "writeback_single_inode_start") return on_wb(l, true);
  if (ev == "writeback_single_inode") return on_wb(l, false);
  if (ev == "balance_dirty_pages") return on_bdp(l);
  if (!on_kprobe(l)) --events_;  // not an event of ours
}

void IoTraceAnalyzer::keep_slow(SlowEvent e) {
  if (slow_.size() >= lim_.max_slow) {
    slow_.pop_front();
    ++slow_dropped_;
  }
  slow_.push_back(e);
}

void IoTraceAnalyzer::on_issue(const TraceLine& l) {
  BlockRq rq;
  if (!parse_block_rq(l.fields, true, &rq)) {
    ++parse_errors_;
    return;
  }
  Device& d = devices_[(rq.major << 20) | rq.minor];
  // A data-less flush (rwbs "FF", 0 sectors) completes with sector ~0
  // (blk-flush.c: the flush rq has no position), so flushes pair in order.
  if (rq.nr_sector == 0) {
    if (d.flushes.size() < 1024) d.flushes.push_back(l.ts_ns);
    return;
  }
  if (d.inflight.size() >= lim_.max_inflight) {
    // Completions were lost (buffer overrun): start over rather than grow.
    d.dropped_inflight += d.inflight.size();
    d.inflight.clear();
  }
  d.inflight[rq.sector] = l.ts_ns;
}

void IoTraceAnalyzer::close_second(Device& d) const {
  if (d.cur_second >= 0 && d.cur.count() > 0) {
    d.series.push_back({d.cur_second, d.cur.count(), d.cur.quantile(0.99), d.cur.max()});
  }
  d.cur.reset();
}

void IoTraceAnalyzer::on_complete(const TraceLine& l) {
  BlockRq rq;
  if (!parse_block_rq(l.fields, false, &rq)) {
    ++parse_errors_;
    return;
  }
  uint32_t key = (rq.major << 20) | rq.minor;
  Device& d = devices_[key];
  int64_t issued;
  if (rq.nr_sector == 0) {
    // The flush's own completion ("FF") closes a flush; the data-less
    // write that carried the preflush ("WS () 0 + 0") has no issue of its own.
    if (rq.rwbs.empty() || rq.rwbs[0] != 'F' || d.flushes.empty()) return;
    issued = d.flushes.front();
    d.flushes.pop_front();
  } else {
    auto it = d.inflight.find(rq.sector);
    if (it == d.inflight.end()) {
      ++d.unmatched;
      return;
    }
    issued = it->second;
    d.inflight.erase(it);
  }
  int64_t lat = l.ts_ns - issued;
  if (lat < 0) lat = 0;
  int64_t sec = (l.ts_ns - t0_ns_) / 1'000'000'000;
  if (sec != d.cur_second) {
    close_second(d);
    d.cur_second = sec;
  }
  d.total.record(static_cast<uint64_t>(lat));
  d.cur.record(static_cast<uint64_t>(lat));
  if (lat >= lim_.rq_slow_ns) keep_slow({SlowEvent::kRequest, key, issued, l.ts_ns});
}

uint32_t IoTraceAnalyzer::bdi_index(std::string_view name) {
  for (size_t i = 0; i < bdis_.size(); ++i)
    if (bdis_[i] == name) return static_cast<uint32_t>(i);
  bdis_.emplace_back(name);
  return static_cast<uint32_t>(bdis_.size() - 1);
}

void IoTraceAnalyzer::on_wb(const TraceLine& l, bool start) {
  WbInode w;
  if (!parse_writeback_inode(l.fields, &w)) {
    ++parse_errors_;
    return;
  }
  auto key = std::make_pair(bdi_index(w.bdi), w.ino);
  if (start) {
    if (wb_open_.size() < lim_.max_inflight) wb_open_[key] = l.ts_ns;
    return;
  }
  auto it = wb_open_.find(key);
  if (it == wb_open_.end()) return;
  int64_t st = it->second;
  wb_open_.erase(it);
  int64_t dur = std::max<int64_t>(0, l.ts_ns - st);
  wb_hist_.record(static_cast<uint64_t>(dur));
  if (dur >= lim_.writeback_slow_ns) keep_slow({SlowEvent::kWriteback, key.first, st, l.ts_ns});
  auto cmp = [](const Slowest& a, const Slowest& b) { return a.dur_ns > b.dur_ns; };
  if (wb_slowest_.size() < 20) {
    wb_slowest_.push_back({st, dur, key.first, key.second});
    std::push_heap(wb_slowest_.begin(), wb_slowest_.end(), cmp);
  } else if (dur > wb_slowest_.front().dur_ns) {
    std::pop_heap(wb_slowest_.begin(), wb_slowest_.end(), cmp);
    wb_slowest_.back() = {st, dur, key.first, key.second};
    std::push_heap(wb_slowest_.begin(), wb_slowest_.end(), cmp);
  }
}

void IoTraceAnalyzer::on_bdp(const TraceLine& l) {
  BdpPause p;
  if (!parse_bdp(l.fields, &p)) {
    ++parse_errors_;
    return;
  }
  ++bdp_count_;
  if (p.pause_ms <= 0) return;
  int64_t ns = p.pause_ms * 1'000'000;
  bdp_hist_.record(static_cast<uint64_t>(ns));
  // mm/page-writeback.c balance_dirty_pages: the event fires right before
  // io_schedule_timeout(pause), so the sleep is [ts, ts + pause].
  keep_slow({SlowEvent::kThrottle, bdi_index(p.bdi), l.ts_ns, l.ts_ns + ns});
}

bool IoTraceAnalyzer::on_kprobe(const TraceLine& l) {
  for (size_t i = 0; i < probes_.size(); ++i) {
    Probe& p = probes_[i];
    if (l.event == p.event) {
      auto& v = p.entries[l.pid];
      if (v.size() < 64) v.push_back(l.ts_ns);
      return true;
    }
    if (l.event == p.ret_event) {
      auto it = p.entries.find(l.pid);
      if (it == p.entries.end() || it->second.empty()) {
        ++p.unmatched;
        return true;
      }
      int64_t st = it->second.back();
      it->second.pop_back();
      int64_t dur = std::max<int64_t>(0, l.ts_ns - st);
      p.lat.record(static_cast<uint64_t>(dur));
      if (dur >= lim_.kprobe_threshold_ns) {
        ++p.slow_count;
        if (p.slow.size() < 1000) p.slow.emplace_back(st, dur);
        keep_slow({SlowEvent::kKprobe, static_cast<uint32_t>(i), st, l.ts_ns});
      }
      return true;
    }
  }
  return false;
}

void IoTraceAnalyzer::add_psi(int64_t now_ns, double some, double full) {
  psi_.push_back({now_ns, some, full});
}

std::string IoTraceAnalyzer::dev_name(uint32_t key) {
  return std::to_string(key >> 20) + ":" + std::to_string(key & ((1u << 20) - 1));
}

json IoTraceAnalyzer::series() const {
  json out = json::object();
  json devs = json::object();
  for (auto& [key, d] : devices_) {
    // Close the open second once: later calls see it in series.
    if (d.cur.count() > 0) close_second(d);
    json s = json::array();
    for (const auto& p : d.series)
      s.push_back(
          {{"t", p.second}, {"count", p.count}, {"p99_ns", p.p99_ns}, {"max_ns", p.max_ns}});
    devs[dev_name(key)] = std::move(s);
  }
  out["devices"] = std::move(devs);
  json psi = json::array();
  for (const auto& p : psi_)
    psi.push_back({{"t", (p.t_ns - t0_ns_) / 1e9}, {"some_avg10", p.some}, {"full_avg10", p.full}});
  out["psi_io"] = std::move(psi);
  return out;
}

json IoTraceAnalyzer::summary(double duration_s) const {
  json ser = series();
  json out = json::object();
  json devs = json::object();
  for (const auto& [key, d] : devices_) {
    std::string n = dev_name(key);
    devs[n] = {{"rq_lat_ns", workloads::op_json(d.total, duration_s)},
               {"series", ser["devices"][n]},
               {"unmatched_completions", d.unmatched},
               {"inflight_at_end", d.inflight.size()},
               {"inflight_dropped", d.dropped_inflight}};
  }
  out["devices"] = std::move(devs);
  auto slowest = wb_slowest_;
  std::sort(slowest.begin(), slowest.end(),
            [](const Slowest& a, const Slowest& b) { return a.dur_ns > b.dur_ns; });
  json sl = json::array();
  for (const auto& s : slowest)
    sl.push_back({{"bdi", bdis_[s.bdi]},
                  {"ino", s.ino},
                  {"start_s", (s.start_ns - t0_ns_) / 1e9},
                  {"ms", s.dur_ns / 1e6}});
  out["writeback"] = {{"inode_ns", workloads::op_json(wb_hist_, duration_s)},
                      {"slowest", std::move(sl)}};
  out["balance_dirty_pages"] = {{"count", bdp_count_},
                                {"pauses", bdp_hist_.count()},
                                {"pause_ns", workloads::op_json(bdp_hist_, duration_s)}};
  if (!probes_.empty()) {
    json kp = json::object();
    for (const auto& p : probes_) {
      json slow = json::array();
      for (const auto& [st, dur] : p.slow)
        slow.push_back({{"start_s", (st - t0_ns_) / 1e9}, {"ms", dur / 1e6}});
      kp[p.func] = {{"event", p.event},
                    {"lat_ns", workloads::op_json(p.lat, duration_s)},
                    {"threshold_ns", lim_.kprobe_threshold_ns},
                    {"slow_count", p.slow_count},
                    {"slow", std::move(slow)},
                    {"unmatched_returns", p.unmatched}};
    }
    out["kprobes"] = std::move(kp);
  } else {
    out["kprobes"] = {{"functions", json::array()}};
  }
  out["psi_io"] = ser["psi_io"];
  out["lines"] = lines_;
  out["events"] = events_;
  out["parse_errors"] = parse_errors_;
  out["lost_events"] = lost_;
  out["slow_events"] = {{"kept", slow_.size()}, {"dropped", slow_dropped_}};
  return out;
}

namespace {
bool allocator_probe(const std::string& func) {
  return func.find("mempool") != std::string::npos || func.find("bvec_alloc") != std::string::npos;
}
}  // namespace

json IoTraceAnalyzer::attribute(const std::vector<json>& stalls) const {
  // Slow events sorted by start; each stall scans those that start before
  // it ends and may still overlap it (start > stall start - longest event).
  std::vector<SlowEvent> ev(slow_.begin(), slow_.end());
  std::sort(ev.begin(), ev.end(),
            [](const SlowEvent& a, const SlowEvent& b) { return a.start_ns < b.start_ns; });
  int64_t longest = 0;
  for (const auto& e : ev) longest = std::max(longest, e.end_ns - e.start_ns);

  json entries = json::array();
  json examples = json::array();
  std::map<std::string, uint64_t> by_layer;
  uint64_t near5 = 0, count = 0;
  for (const auto& st : stalls) {
    int64_t s = st.value("start_ns", int64_t{0});
    int64_t dur = st.value("duration_ns", int64_t{0});
    int64_t e = s + dur;
    ++count;
    int64_t dev_max = 0, wb_max = 0, bdp = 0, kp_max = 0, alloc_max = 0;
    auto lo = std::lower_bound(ev.begin(), ev.end(), s - longest,
                               [](const SlowEvent& a, int64_t v) { return a.start_ns < v; });
    for (auto it = lo; it != ev.end() && it->start_ns < e; ++it) {
      if (it->end_ns <= s) continue;
      int64_t d = it->end_ns - it->start_ns;
      switch (it->kind) {
        case SlowEvent::kRequest:
          dev_max = std::max(dev_max, d);
          break;
        case SlowEvent::kWriteback:
          wb_max = std::max(wb_max, d);
          break;
        case SlowEvent::kThrottle:
          // The part of the pause inside the stall.
          bdp += std::min(it->end_ns, e) - std::max(it->start_ns, s);
          break;
        case SlowEvent::kKprobe:
          kp_max = std::max(kp_max, d);
          if (it->label < probes_.size() && allocator_probe(probes_[it->label].func))
            alloc_max = std::max(alloc_max, d);
          break;
      }
    }
    // Most specific first: a writeback span contains its device time and
    // any allocator wait inside it (bvec_alloc runs under writepages), so
    // "writeback" is only the answer when neither explains the stall.
    const int64_t half = dur / 2;
    std::string layer;
    if (dev_max > 0 && dev_max >= half)
      layer = "device";
    else if (alloc_max > 0 && alloc_max >= half)
      layer = "mempool/allocator";
    else if (bdp > 0)
      layer = "throttle";
    else if (wb_max > 0 && wb_max >= half)
      layer = "writeback";
    else
      layer = "above-block";
    ++by_layer[layer];
    // bvec_alloc → mempool_alloc waits in io_schedule_timeout(5*HZ)
    // (mm/mempool.c mempool_alloc) and retries, so such stalls cluster at
    // multiples of 5 s.
    constexpr double k5 = 5e9;
    double m = std::round(dur / k5);
    if (m >= 1 && std::fabs(dur - m * k5) <= 0.1 * m * k5) ++near5;
    json j = {{"start_s", (s - t0_ns_) / 1e9},
              {"ms", dur / 1e6},
              {"layer", layer},
              {"device_max_ms", dev_max / 1e6},
              {"writeback_max_ms", wb_max / 1e6},
              {"bdp_pause_ms", bdp / 1e6},
              {"kprobe_max_ms", kp_max / 1e6}};
    if (st.contains("op")) j["op"] = st["op"];
    if (st.contains("actor")) j["actor"] = st["actor"];
    if (examples.size() < 10) examples.push_back(j);
    if (entries.size() < lim_.max_attributed) entries.push_back(std::move(j));
  }
  return {{"count", count},
          {"by_layer", by_layer},
          {"near_5s_multiples", near5},
          {"entries", std::move(entries)},
          {"examples", std::move(examples)}};
}

// ------------------------------------------------------------ observer --

namespace {

std::vector<std::string> split_functions(const std::string& s) {
  std::vector<std::string> out;
  for (auto& f : fs::split(s, ',')) {
    auto t = fs::trim(f);
    if (!t.empty()) out.push_back(t);
  }
  return out;
}

class IoTraceObserver final : public engine::RunObserver {
 public:
  explicit IoTraceObserver(IoTracePaths p) : paths_(std::move(p)) {}
  std::string name() const override { return "io-trace"; }

  Result<void> start(engine::RunContext& ctx) override {
    const auto* o = ctx.options;
    enabled_ = !o || !o->has("io_trace") || o->get_bool("io_trace");
    if (!enabled_) return {};
    IoTraceLimits lim;
    if (o && o->has("kprobe_threshold")) lim.kprobe_threshold_ns = o->get_int("kprobe_threshold");
    analyzer_ = std::make_unique<IoTraceAnalyzer>(ctx.t0_ns, lim);

    kernel::TracefsOptions to;
    to.mounts_path = paths_.mounts;
    to.root = paths_.tracefs_root;
    to.private_mount_dir = paths_.private_mount_base + "/" + ctx.prefix + "-tracefs";
    to.buffer_size_kb = 4096;
    engine::Journal* journal = ctx.journal;
    to.before_mkdir = [journal](const std::string& dir) -> Result<void> {
      if (!journal) return {};
      return journal->add_tracefs_instance(dir);
    };
    // A private tracefs mount is journaled before it may be made, so
    // `krepro cleanup` unmounts it after a SIGKILL (harness/engine/journal.cpp).
    if (journal) {
      if (auto r = journal->add_mount(to.private_mount_dir); !r) return r;
    }
    auto inst = kernel::TracefsInstance::create(ctx.prefix, to);
    if (!inst) {
      unavailable_ = inst.error().message();
      if (ctx.events)
        ctx.events->emit("io_trace_unavailable",
                         {{"detector", "io-trace"}, {"reason", unavailable_}});
      return {};
    }
    inst_ = std::make_unique<kernel::TracefsInstance>(std::move(*inst));
    static const std::pair<const char*, const char*> kEvents[] = {
        {"block", "block_rq_issue"},
        {"block", "block_rq_complete"},
        {"writeback", "writeback_single_inode_start"},
        {"writeback", "writeback_single_inode"},
        {"writeback", "balance_dirty_pages"},
    };
    for (const auto& [sys, ev] : kEvents) {
      auto r = inst_->enable_event(sys, ev);
      if (!r) missing_[std::string(sys) + ":" + ev] = r.error().message();
    }
    auto funcs = o && o->has("kprobe_functions")
                     ? split_functions(o->get_string("kprobe_functions"))
                     : std::vector<std::string>{};
    for (const auto& f : funcs) {
      auto k = inst_->add_kprobe_pair(f);
      if (!k) {
        kprobe_missing_[f] = k.error().message();
        continue;
      }
      analyzer_->add_kprobe(*k, f);
    }
    IoTraceAnalyzer* a = analyzer_.get();
    auto rd = inst_->start_reader([a](std::string_view l) { a->add_line(l); });
    if (rd) rd = inst_->set_tracing_on(true);
    if (!rd) {
      // Without a reader the evidence is gone, but the run goes on.
      unavailable_ = rd.error().message();
      inst_.reset();
      if (ctx.events)
        ctx.events->emit("io_trace_unavailable",
                         {{"detector", "io-trace"}, {"reason", unavailable_}});
      return {};
    }
    if (ctx.events) {
      json u = missing_;
      ctx.events->emit("detector_start", {{"detector", "io-trace"},
                                          {"instance", inst_->dir()},
                                          {"clock", inst_->clock()},
                                          {"clock_note", inst_->clock_note()},
                                          {"private_mount", inst_->private_mount()},
                                          {"unavailable", u}});
    }
    return {};
  }

  void sample(engine::RunContext& ctx, int64_t now) override {
    if (!enabled_ || !analyzer_) return;
    auto t = fs::read_file(paths_.proc + "/pressure/io", 4096);
    double some = 0, full = 0;
    if (t && parse_psi_avg10(*t, &some, &full)) {
      std::lock_guard<std::mutex> lk(psi_mu_);
      psi_.push_back({now, some, full});
    } else if (psi_unavailable_.empty()) {
      psi_unavailable_ = t ? "no 'some avg10' in /proc/pressure/io" : t.error().message();
    }
  }

  void finish(engine::RunContext& ctx, engine::RunStats& stats, json& summary) override {
    if (!enabled_) {
      summary["kernel_io"] = {{"enabled", false}};
      return;
    }
    if (!inst_) {
      summary["kernel_io"] = {{"unavailable", unavailable_}};
      return;
    }
    uint64_t overruns = inst_->overruns();  // before close: per_cpu/ goes with the instance
    auto errs = inst_->close();             // stops and drains the reader first
    {
      std::lock_guard<std::mutex> lk(psi_mu_);
      for (const auto& p : psi_) analyzer_->add_psi(p.t, p.some, p.full);
    }
    double dur = (mono_ns() - ctx.t0_ns) / 1e9;
    json k = analyzer_->summary(dur);
    k["clock"] = inst_->clock();
    if (!inst_->clock_note().empty()) k["clock_note"] = inst_->clock_note();
    k["instance"] = inst_->dir();
    k["ring_buffer_overruns"] = overruns;
    json un = missing_;
    if (!psi_unavailable_.empty()) {
      un["psi_io"] = psi_unavailable_;
      k["psi_io"] = {{"unavailable", psi_unavailable_}};
    }
    k["unavailable"] = std::move(un);
    if (!kprobe_missing_.empty()) {
      if (!k.contains("kprobes")) {
        k["kprobes"] = {{"unavailable", kprobe_missing_.begin()->second}};
      } else {
        for (const auto& [f, why] : kprobe_missing_) k["kprobes"][f] = {{"unavailable", why}};
      }
    }
    if (!errs.empty()) k["teardown_errors"] = errs;
    summary["kernel_io"] = k;

    std::string lat = ctx.out_dir + "/latency";
    if (fs::make_dirs(lat)) {
      (void)fs::write_file(lat + "/kernel-io.json", analyzer_->series().dump(1) + "\n", true);
    }

    if (stats.stalls.empty()) return;
    json a = analyzer_->attribute(stats.stalls);
    summary["stall_attribution"] = {{"count", a["count"]},
                                    {"by_layer", a["by_layer"]},
                                    {"near_5s_multiples", a["near_5s_multiples"]},
                                    {"entries", a["entries"]}};
    json f = {{"id", "io-stalls"},
              {"detector", "io-trace"},
              {"bug", "kmem-writeback-jitter"},
              {"verdict", "suspect"},
              {"evidence",
               {{"stalls", a["count"]},
                {"by_layer", a["by_layer"]},
                {"near_5s_multiples", a["near_5s_multiples"]},
                {"examples", a["examples"]}}}};
    if (!a["examples"].empty()) f["first_seen_s"] = a["examples"][0]["start_s"];
    stats.findings.push_back(f);
    findings_ = 1;
    if (ctx.events) ctx.events->emit("finding", {{"id", "io-stalls"}, {"detector", "io-trace"}});
  }

  size_t findings() const override { return findings_; }

 private:
  struct PsiPoint {
    int64_t t;
    double some, full;
  };
  IoTracePaths paths_;
  bool enabled_ = false;
  std::string unavailable_;
  std::unique_ptr<IoTraceAnalyzer> analyzer_;
  std::unique_ptr<kernel::TracefsInstance> inst_;
  std::map<std::string, std::string> missing_;
  std::map<std::string, std::string> kprobe_missing_;
  std::mutex psi_mu_;
  std::vector<PsiPoint> psi_;
  std::string psi_unavailable_;
  size_t findings_ = 0;
};

}  // namespace

std::unique_ptr<engine::RunObserver> make_io_trace_observer(const IoTracePaths& p) {
  return std::make_unique<IoTraceObserver>(p);
}

void append_io_trace_observer(std::vector<std::unique_ptr<engine::RunObserver>>& v,
                              const IoTracePaths& p) {
  v.push_back(make_io_trace_observer(p));
}

}  // namespace krepro::detect
