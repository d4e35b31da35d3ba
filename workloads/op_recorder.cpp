#include "workloads/op_recorder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "harness/util/check.h"

namespace krepro::workloads {

std::string_view op_name(Op op) {
  switch (op) {
    case Op::kWrite:
      return "write";
    case Op::kRead:
      return "read";
    case Op::kFdatasync:
      return "fdatasync";
    case Op::kFsync:
      return "fsync";
    case Op::kFlush:
      return "flush";
    case Op::kCompactionStep:
      return "compaction_step";
    case Op::kUnlink:
      return "unlink";
    case Op::kCount:
      break;
  }
  return "unknown";
}

OpRecorder::OpRecorder(std::string stream, int64_t start_ns)
    : stream_(std::move(stream)),
      start_ns_(start_ns),
      end_ns_(start_ns),
      deadline_ns_(start_ns + kIntervalNs) {
  set_stall_threshold_ns(kDefaultStallNs);
}

void OpRecorder::set_stall_threshold_ns(int64_t ns) {
  stall_threshold_ns_ = static_cast<uint64_t>(ns);
  for (size_t k = 0; k < kOpCount; ++k) {
    if (op_is_stall_eligible(static_cast<Op>(k))) ops_[k].stall_ns = stall_threshold_ns_;
  }
}

void OpRecorder::add_stall(Op op, int64_t start_ns, uint64_t d, std::string_view file) {
  ++stall_count_;
  if (stalls_.size() >= max_stalls_) return;
  stalls_.push_back(StallEvent{op, start_ns, static_cast<int64_t>(d), stream_, std::string(file)});
}

OpRecorder::Second OpRecorder::to_second(const Histogram& h, int64_t index) {
  Second s{index, h.count(), h.min(), h.max(), {}};
  const auto& c = h.counts();
  for (size_t i = 0; i < c.size(); ++i) {
    if (c[i] != 0) s.buckets.emplace_back(static_cast<uint32_t>(i), static_cast<uint32_t>(c[i]));
  }
  return s;
}

OpRecorder::Second OpRecorder::merge_seconds(const Second& a, const Second& b) {
  Second s{a.index, a.count + b.count, std::min(a.min, b.min), std::max(a.max, b.max), {}};
  s.buckets.reserve(a.buckets.size() + b.buckets.size());
  size_t i = 0, j = 0;
  while (i < a.buckets.size() || j < b.buckets.size()) {
    if (j == b.buckets.size() ||
        (i < a.buckets.size() && a.buckets[i].first < b.buckets[j].first)) {
      s.buckets.push_back(a.buckets[i++]);
    } else if (i == a.buckets.size() || b.buckets[j].first < a.buckets[i].first) {
      s.buckets.push_back(b.buckets[j++]);
    } else {
      s.buckets.emplace_back(a.buckets[i].first, a.buckets[i].second + b.buckets[j].second);
      ++i;
      ++j;
    }
  }
  return s;
}

IntervalPoint OpRecorder::summarise(const Second& s) {
  IntervalPoint p{s.index, s.count, 0, 0, s.max};
  if (s.count == 0) return p;
  // Nearest rank over the sparse buckets, reported as the bucket midpoint
  // clamped to the exact min/max, the same rule as Histogram::quantile.
  auto at = [&](double q) {
    auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(s.count)));
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (const auto& [idx, n] : s.buckets) {
      seen += n;
      if (seen >= rank) {
        uint64_t mid = Histogram::bucket_low(idx) + Histogram::bucket_width(idx) / 2;
        return std::clamp(mid, s.min, s.max);
      }
    }
    return s.max;
  };
  p.p50_ns = at(0.50);
  p.p99_ns = at(0.99);
  return p;
}

void OpRecorder::close_interval() {
  for (auto& p : ops_) {
    if (p.interval.count() == 0) continue;
    Second s = to_second(p.interval, cur_second_);
    if (!p.seconds.empty() && p.seconds.back().index == cur_second_) {
      // Reopened after finish(): fold into the same second.
      p.seconds.back() = merge_seconds(p.seconds.back(), s);
    } else {
      p.seconds.push_back(std::move(s));
    }
    p.interval.reset();
  }
}

void OpRecorder::roll_over(int64_t end_ns) {
  close_interval();
  cur_second_ = (end_ns - start_ns_) / kIntervalNs;
  deadline_ns_ = start_ns_ + (cur_second_ + 1) * kIntervalNs;
}

void OpRecorder::finish(int64_t end_ns) {
  close_interval();
  end_ns_ = std::max(end_ns_, end_ns);
}

void OpRecorder::merge(const OpRecorder& o) {
  if (&o == this) {
    // Merging into itself would read what it writes.
    const OpRecorder copy = o;  // NOLINT(performance-unnecessary-copy-initialization)
    merge(copy);
    return;
  }
  close_interval();
  const double off_s = static_cast<double>(o.start_ns_ - start_ns_) / kIntervalNs;
  const auto off = static_cast<int64_t>(std::llround(off_s));
  for (size_t k = 0; k < kOpCount; ++k) {
    PerOp& dst = ops_[k];
    const PerOp& src = o.ops_[k];
    dst.total.merge(src.total);
    std::vector<Second> theirs = src.seconds;
    if (src.interval.count() > 0) {
      Second open = to_second(src.interval, o.cur_second_);
      if (!theirs.empty() && theirs.back().index == open.index) {
        theirs.back() = merge_seconds(theirs.back(), open);
      } else {
        theirs.push_back(std::move(open));
      }
    }
    for (auto& s : theirs) s.index += off;
    std::vector<Second> out;
    out.reserve(dst.seconds.size() + theirs.size());
    size_t i = 0, j = 0;
    while (i < dst.seconds.size() || j < theirs.size()) {
      if (j == theirs.size() ||
          (i < dst.seconds.size() && dst.seconds[i].index < theirs[j].index)) {
        out.push_back(std::move(dst.seconds[i++]));
      } else if (i == dst.seconds.size() || theirs[j].index < dst.seconds[i].index) {
        out.push_back(std::move(theirs[j++]));
      } else {
        out.push_back(merge_seconds(dst.seconds[i++], theirs[j++]));
      }
    }
    dst.seconds = std::move(out);
  }
  for (const auto& s : o.stalls_) {
    if (stalls_.size() >= max_stalls_) break;
    stalls_.push_back(s);
  }
  stall_count_ += o.stall_count_;
  end_ns_ = std::max(end_ns_, o.end_ns_);
}

std::vector<IntervalPoint> OpRecorder::intervals(Op op) const {
  const PerOp& p = ops_[static_cast<size_t>(op)];
  std::vector<const Second*> all;
  all.reserve(p.seconds.size() + 1);
  for (const auto& s : p.seconds) all.push_back(&s);
  Second open;
  if (p.interval.count() > 0) {
    open = to_second(p.interval, cur_second_);
    all.push_back(&open);
  }
  std::vector<IntervalPoint> out;
  if (all.empty()) return out;
  const int64_t first = std::min<int64_t>(0, all.front()->index);
  int64_t next = first;
  for (const Second* s : all) {
    for (; next < s->index; ++next) out.push_back(IntervalPoint{next, 0, 0, 0, 0});
    IntervalPoint pt = summarise(*s);
    if (!out.empty() && out.back().second == s->index) {
      // The open interval after finish() in the same second as the last
      // closed one: summarise them together.
      Second m = merge_seconds(p.seconds.back(), *s);
      out.back() = summarise(m);
    } else {
      out.push_back(pt);
    }
    next = s->index + 1;
  }
  return out;
}

nlohmann::json op_json(const Histogram& h, double duration_s) {
  nlohmann::json pct = nlohmann::json::object();
  for (double q : kFioPercentiles) {
    char key[32];
    std::snprintf(key, sizeof key, "%f", q);  // fio's key format: "99.900000"
    pct[key] = h.quantile(q / 100.0);
  }
  nlohmann::json j;
  j["count"] = h.count();
  j["iops"] = duration_s > 0 ? static_cast<double>(h.count()) / duration_s : 0.0;
  j["lat_ns"] = {{"min", h.min()},       {"max", h.max()}, {"mean", h.mean()},
                 {"stddev", h.stddev()}, {"N", h.count()}, {"percentile", std::move(pct)}};
  return j;
}

nlohmann::json OpRecorder::to_json() const {
  const double duration_s = static_cast<double>(end_ns_ - start_ns_) / 1e9;
  nlohmann::json ops = nlohmann::json::object();
  for (size_t k = 0; k < kOpCount; ++k) {
    const Op op = static_cast<Op>(k);
    if (ops_[k].total.count() == 0) continue;
    nlohmann::json j = op_json(ops_[k].total, duration_s);
    nlohmann::json sec = nlohmann::json::array(), cnt = nlohmann::json::array(),
                   p50 = nlohmann::json::array(), p99 = nlohmann::json::array(),
                   mx = nlohmann::json::array();
    for (const auto& pt : intervals(op)) {
      sec.push_back(pt.second);
      cnt.push_back(pt.count);
      p50.push_back(pt.p50_ns);
      p99.push_back(pt.p99_ns);
      mx.push_back(pt.max_ns);
    }
    j["intervals"] = {{"interval_s", 1},          {"second", std::move(sec)},
                      {"count", std::move(cnt)},  {"p50_ns", std::move(p50)},
                      {"p99_ns", std::move(p99)}, {"max_ns", std::move(mx)}};
    ops[std::string(op_name(op))] = std::move(j);
  }
  nlohmann::json events = nlohmann::json::array();
  for (const auto& s : stalls_) {
    events.push_back({{"op", op_name(s.op)},
                      {"start_ns", s.start_ns},
                      {"duration_ns", s.duration_ns},
                      {"stream", s.stream},
                      {"file", s.file}});
  }
  return {{"stream", stream_},
          {"start_ns", start_ns_},
          {"duration_s", duration_s},
          {"stall_threshold_ns", stall_threshold_ns_},
          {"ops", std::move(ops)},
          {"stalls", {{"count", stall_count_}, {"kept", stalls_.size()}, {"events", events}}}};
}

}  // namespace krepro::workloads
