#include "harness/engine/runner.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <thread>

#include "harness/engine/hub.h"
#include "harness/engine/journal.h"
#include "harness/engine/registry.h"
#include "harness/engine/scratch_fs.h"
#include "harness/engine/timeline.h"
#include "harness/util/clock.h"
#include "harness/util/fs.h"
#include "workloads/op_recorder.h"

namespace krepro::engine {
std::string fmt_line(const char* f, ...);

namespace {

std::string iso_time_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string random_run_id(uint64_t seed) {
  std::mt19937_64 rng(seed ^ static_cast<uint64_t>(::getpid()) ^
                      static_cast<uint64_t>(realtime_ns()));
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rng()));
  return buf;
}

// One line of live status on a TTY.
std::string status_text(const std::string& phase, double elapsed, double remaining,
                        const std::vector<Actor*>& actors, double dt,
                        std::map<Actor*, uint64_t>& last, size_t findings) {
  std::string s = fmt_line("[%s] %.0fs/%.0fs", phase.c_str(), elapsed, elapsed + remaining);
  for (Actor* a : actors) {
    uint64_t c = a->progress().created.load();
    double rate = dt > 0 ? static_cast<double>(c - last[a]) / dt : 0;
    last[a] = c;
    s += fmt_line("  %s %.0f/s alive %lld", a->kind().c_str(), rate,
                  static_cast<long long>(a->progress().alive.load()));
    if (double p99 = a->progress().recent_p99_ms(); p99 >= 0) s += fmt_line(" p99 %.1fms", p99);
    if (a->progress().pending.load() > 0)
      s += fmt_line(" pending %lld", static_cast<long long>(a->progress().pending.load()));
    if (a->progress().errors.load() > 0)
      s += fmt_line(" err %llu", static_cast<unsigned long long>(a->progress().errors.load()));
  }
  s += fmt_line("  findings %zu", findings);
  return s;
}

}  // namespace

std::string fmt_line(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// Each finding gets its time window and the stalls and churn errors
// nearest to it (within 10 s), read back from the timeline, so a report can
// show cause and symptom together.
void attach_context(nlohmann::json& findings, const std::string& events_path) {
  std::vector<nlohmann::json> nearby;
  if (FILE* f = std::fopen(events_path.c_str(), "re")) {
    char* line = nullptr;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
      if (!std::strstr(line, "\"type\":\"stall\"") &&
          !std::strstr(line, "\"type\":\"churn_error\""))
        continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) nearby.push_back(std::move(j));
    }
    std::free(line);
    std::fclose(f);
  }
  for (auto& f : findings) {
    if (!f.contains("first_seen_s") || !f["first_seen_s"].is_number()) continue;
    double first = f["first_seen_s"].get<double>();
    double last = f.contains("last_seen_s") && f["last_seen_s"].is_number()
                      ? f["last_seen_s"].get<double>()
                      : first;
    f["window"] = {{"first_s", first}, {"last_s", last}};
    std::vector<std::pair<double, const nlohmann::json*>> close;
    for (const auto& e : nearby) {
      double t = e.value("t", 0.0);
      double d = t < first ? first - t : t > last ? t - last : 0;
      if (d <= 10) close.emplace_back(d, &e);
    }
    std::sort(close.begin(), close.end(), [](auto& a, auto& b) { return a.first < b.first; });
    nlohmann::json stalls = nlohmann::json::array(), errs = nlohmann::json::array();
    for (auto& [d, e] : close) {
      auto& dst = (*e)["type"] == "stall" ? stalls : errs;
      if (dst.size() < 3) dst.push_back(*e);
    }
    f["nearby"] = {{"stalls", stalls}, {"churn_errors", errs}};
  }
}

std::string verdict_of(const std::vector<nlohmann::json>& findings) {
  // Suspect findings are listed but do not flip the run's verdict.
  for (const auto& f : findings)
    if (f.value("verdict", "") == "reproduced") return "reproduced";
  return "not_reproduced";
}

int exit_code_of(const std::string& verdict) {
  if (verdict == "not_reproduced") return 0;
  if (verdict == "reproduced") return 1;
  if (verdict == "skipped") return 4;
  return 3;  // error, inconclusive
}

std::vector<std::string> missing_features(const CompiledScenario& sc,
                                          const kernel::HostProbe& host) {
  std::vector<std::string> out;
  for (const auto& ph : sc.phases) {
    for (const auto& a : ph.actors) {
      for (const auto& req : a.type->requires_features) {
        bool ok = false;
        std::string why;
        for (const auto& alt : fs::split(req, '|')) {
          if (alt == "cgroup-v1-memory|cgroup-v2") continue;
          if (host.has(alt)) ok = true;
          const auto* f = host.find(alt);
          why += (why.empty() ? "" : "; ") + alt + (f ? ": " + f->detail : ": not probed");
        }
        if (!ok) {
          std::string m = a.name + " needs " + req + " (" + why + ")";
          if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
        }
      }
    }
  }
  return out;
}

RunOutcome run_scenario(const CompiledScenario& sc, const RunOptions& opts,
                        const kernel::HostProbe& host, StopState& stop,
                        std::vector<std::unique_ptr<RunObserver>> observers) {
  RunOutcome out;
  RunContext ctx;
  ctx.t0_ns = mono_ns();
  ctx.seed = opts.seed ? opts.seed : static_cast<uint64_t>(realtime_ns());
  ctx.run_id = opts.run_id.empty() ? random_run_id(ctx.seed) : opts.run_id;
  ctx.prefix = "krepro-" + ctx.run_id;
  ctx.out_dir = opts.out_dir;
  ctx.options = &sc.options;
  ctx.stop = &stop;
  std::string started_at = iso_time_now();

  nlohmann::json& S = out.summary;
  S["schema"] = "krepro.summary/1";
  S["run_id"] = ctx.run_id;
  S["scenario"] = {{"name", sc.name}, {"file", sc.file}, {"description", sc.description}};
  S["host"] = {{"kernel_release", host.kernel_release},
               {"machine", host.machine},
               {"cgroup_mode", host.cgroup_mode},
               {"features_used", nlohmann::json::array()}};
  S["started_at"] = started_at;
  S["seed"] = ctx.seed;
  S["findings"] = nlohmann::json::array();
  S["signatures"] = nlohmann::json::array();
  S["workload"] = nlohmann::json::object();
  S["churn"] = nlohmann::json::object();
  S["leaks"] = nlohmann::json::object();
  S["phases"] = nlohmann::json::array();
  S["duration_s"] = 0;
  S["partial"] = false;

  auto fail = [&](const std::string& verdict, const std::string& reason) {
    S["verdict"] = verdict;
    S["reason"] = reason;
    out.exit_code = exit_code_of(verdict);
    S["duration_s"] = (mono_ns() - ctx.t0_ns) / 1e9;
    return out;
  };

  if (auto mk = fs::make_dirs(opts.out_dir + "/latency"); !mk)
    return fail("error", "run folder: " + mk.error().message());
  std::unique_ptr<EventLog> events;
  {
    auto ev = EventLog::open(opts.out_dir + "/events.jsonl", ctx.t0_ns);
    if (!ev) return fail("error", ev.error().message());
    events.reset(*ev);
  }
  ctx.events = events.get();
  std::unique_ptr<FILE, int (*)(FILE*)> tee(nullptr, &std::fclose);
  if (!opts.tee_events.empty()) {
    tee.reset(std::fopen(opts.tee_events.c_str(), "ae"));
    if (!tee) return fail("error", "--tee-events " + opts.tee_events + ": " + std::strerror(errno));
    events->tee(tee.get());
  }

  auto missing = missing_features(sc, host);
  if (!missing.empty()) {
    std::string why;
    for (const auto& m : missing) why += (why.empty() ? "" : "; ") + m;
    events->emit("skipped", {{"reason", why}});
    return fail("skipped", why);
  }

  auto layout = kernel::CgroupLayout::discover();
  if (!layout) return fail("error", layout.error().message());
  ctx.layout = std::move(*layout);
  std::string want = sc.options.get_string("cgroup_version");
  if (want == "v2" || (want == "auto" && !ctx.layout.v1("memory")))
    ctx.cg_version = kernel::CgroupVersion::kV2;

  // What the actors' parameters ask of this host (cgroup controllers, ...)
  // and cgroup_parent, checked before anything is created.
  if (const std::string& cp = sc.options.get_string("cgroup_parent"); !cp.empty()) {
    if (auto r = ctx.layout.check_cgroup_parent(cp); !r) {
      fail("error", r.error().message());
      out.exit_code = 2;
      return out;
    }
  }
  for (const auto& ph : sc.phases) {
    for (const auto& ca : ph.actors) {
      Precheck pc = ca.type->make(ca)->precheck(ctx);
      if (pc.kind == Precheck::Kind::kOk) continue;
      std::string why = "phase " + ph.name + ": " + pc.reason;
      if (pc.kind == Precheck::Kind::kSkip) {
        events->emit("skipped", {{"reason", why}});
        return fail("skipped", why);
      }
      fail("error", why);
      out.exit_code = 2;  // DESIGN.md: usage or scenario error, nothing created
      return out;
    }
  }

  auto journal = Journal::create(opts.journal_dir, ctx.run_id, opts.out_dir);
  if (!journal) return fail("error", journal.error().message());
  ctx.journal = &*journal;

  std::string scratch = sc.options.get_string("scratch_dir");
  ctx.scratch_dir = fs::join(scratch.empty() ? opts.out_dir : scratch, ctx.prefix + "-scratch");
  if (auto r = journal->add_scratch_dir(ctx.scratch_dir); !r)
    return fail("error", r.error().message());
  if (auto r = fs::make_dirs(ctx.scratch_dir); !r) return fail("error", r.error().message());
  std::unique_ptr<ScratchFs> scratch_fs;
  if (sc.options.get_string("scratch_device") == "loop") {
    auto sf = ScratchFs::create(ctx, sc.options.get_int("scratch_size"), ctx.scratch_dir);
    if (!sf) {
      CleanupReport rep;
      cleanup_journaled(journal->data(), rep);
      journal->remove();
      return fail("error", "scratch filesystem: " + sf.error().message());
    }
    scratch_fs = std::move(*sf);
    ctx.scratch_dev = scratch_fs->inner_dev();
    ctx.scratch_throttle_dev = scratch_fs->outer_dev();
    S["host"]["scratch"] = {{"device", ctx.scratch_dev},
                            {"throttle_device", ctx.scratch_throttle_dev}};
  }

  // Optional sysctl for the run, journaled with its original value.
  const std::string kUnregTimeout = "/proc/sys/net/core/netdev_unregister_timeout_secs";
  int64_t unreg = sc.options.get_int("netdev_unregister_timeout");
  if (unreg > 0) {
    auto orig = fs::read_line(kUnregTimeout);
    if (orig) {
      (void)journal->add_sysctl(kUnregTimeout, *orig);
      auto secs = std::max<int64_t>(1, unreg / 1'000'000'000);
      if (auto w = fs::write_file(kUnregTimeout, std::to_string(secs)); !w)
        events->emit("warning", {{"message", w.error().message()}});
      else
        events->emit("sysctl", {{"path", kUnregTimeout}, {"value", secs}, {"original", *orig}});
    }
  }

  events->emit("run_start", {{"run_id", ctx.run_id},
                             {"scenario", sc.name},
                             {"kernel", host.kernel_release},
                             {"seed", ctx.seed}});
  for (auto& o : observers) {
    if (auto r = o->start(ctx); !r) {
      events->emit("observer_unavailable",
                   {{"observer", o->name()}, {"reason", r.error().message()}});
    }
  }

  RunStats stats;
  bool harness_error = false;
  std::string harness_reason;
  int64_t run_deadline = ctx.t0_ns + sc.duration_ns;

  // Sampler: time series of churn, pending namespaces, dying memcgs, plus
  // observer sampling and the status line.
  std::mutex cur_mu;
  std::vector<Actor*> cur_actors;
  std::string cur_phase = "setup";
  std::atomic<bool> sampler_stop{false};
  nlohmann::json series = nlohmann::json::array();
  int64_t interval = sc.options.get_int("sample_interval");
  std::thread sampler([&] {
    std::map<Actor*, uint64_t> last_status, last_sample;
    int64_t last = mono_ns();
    while (!sampler_stop.load()) {
      int64_t next = last + interval;
      while (!sampler_stop.load() && mono_ns() < next)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (sampler_stop.load()) break;
      int64_t now = mono_ns();
      double dt = (now - last) / 1e9;
      last = now;
      nlohmann::json row = {{"t", std::round((now - ctx.t0_ns) / 1e6) / 1e3}};
      size_t nf = 0;
      {
        std::lock_guard<std::mutex> lk(cur_mu);
        row["phase"] = cur_phase;
        for (Actor* a : cur_actors) {
          const Progress& p = a->progress();
          uint64_t c = p.created.load();
          std::string k = a->name();
          row[k + ".rate"] = std::round(static_cast<double>(c - last_sample[a]) / dt);
          last_sample[a] = c;
          row[k + ".alive"] = p.alive.load();
          row[k + ".pending"] = p.pending.load();
          row[k + ".errors"] = p.errors.load();
        }
        for (auto& o : observers) {
          o->sample(ctx, now);
          nf += o->findings();
        }
        if (opts.status_line) {
          double el = (now - ctx.t0_ns) / 1e9;
          double rem = std::max(0.0, (ctx.phase_deadline_ns.load() - now) / 1e9);
          std::string line = status_text(cur_phase, el, rem, cur_actors, dt, last_status, nf);
          std::fprintf(stderr, "\r\033[K%s", line.c_str());
          std::fflush(stderr);
        }
      }
      if (auto pc = kernel::read_proc_cgroups(); pc && pc->count("memory"))
        row["memcg.num_cgroups"] = pc->at("memory");
      if (ctx.hub_) row["netns.pending"] = ctx.hub_->pending();
      series.push_back(row);
      events->emit("sample", row, now);
    }
  });

  // Workload results per phase; summary.workload holds them directly
  // ("stream.op") when one phase ran a workload, else keyed by phase.
  std::map<std::string, nlohmann::json> phase_workload;
  for (const auto& ph : sc.phases) {
    if (stop.stopping() || harness_error) break;
    int64_t start = mono_ns();
    int64_t deadline =
        ph.duration_ns > 0 ? std::min(start + ph.duration_ns, run_deadline) : run_deadline;
    ctx.phase_deadline_ns.store(deadline);
    std::vector<std::unique_ptr<Actor>> actors;
    for (const auto& ca : ph.actors) actors.push_back(ca.type->make(ca));
    for (auto& a : actors) {
      if (auto r = a->prepare(ctx); !r) {
        harness_error = true;
        harness_reason = "phase " + ph.name + ": " + r.error().message();
        break;
      }
    }
    if (harness_error) break;
    {
      std::lock_guard<std::mutex> lk(cur_mu);
      cur_phase = ph.name;
      cur_actors.clear();
      for (auto& a : actors) cur_actors.push_back(a.get());
    }
    events->emit("phase_start", {{"phase", ph.name}, {"duration_s", ph.duration_ns / 1e9}});
    for (auto& o : observers) o->phase_changed(ctx, ph.name, start);
    std::vector<std::thread> threads;
    std::atomic<int> bounded_left{0};
    for (auto& a : actors) {
      bool b = a->bounded();
      if (b) bounded_left.fetch_add(1);
      threads.emplace_back([&, a = a.get(), b] {
        a->run(ctx, deadline);
        // A phase without a duration ends when its bounded actors are done.
        if (b && bounded_left.fetch_sub(1) == 1 && ph.duration_ns == 0)
          ctx.phase_deadline_ns.store(mono_ns());
      });
    }
    for (auto& t : threads) t.join();
    // Namespaces dropped in this phase get teardown_wait to be freed before
    // the actors report, so their teardown latencies are counted here.
    if (ctx.hub_) {
      int64_t wait = stop.hard() ? 0 : sc.options.get_int("teardown_wait");
      if (stop.stopping() && !stop.hard()) wait = std::min<int64_t>(wait, 2'000'000'000);
      ctx.hub_->wait_drained(mono_ns() + wait);
    }
    int64_t end = mono_ns();
    {
      std::lock_guard<std::mutex> lk(cur_mu);
      cur_actors.clear();
    }
    nlohmann::json pj = {{"name", ph.name},
                         {"start_s", (start - ctx.t0_ns) / 1e9},
                         {"end_s", (end - ctx.t0_ns) / 1e9},
                         {"actors", nlohmann::json::object()}};
    for (auto& a : actors) {
      RunStats ps;
      a->contribute(ps);
      nlohmann::json aj = nlohmann::json::object();
      for (auto& [kind, c] : ps.churn) {
        aj[kind] = {{"created", c.created}, {"destroyed", c.destroyed}};
        if (kind == a->kind()) {
          aj[kind]["peak_alive"] = a->progress().peak_alive.load();
          stats.peak_alive[kind] =
              std::max<int64_t>(stats.peak_alive[kind], a->progress().peak_alive.load());
        }
        auto& tot = stats.churn[kind];
        tot.created += c.created;
        tot.destroyed += c.destroyed;
        for (auto& [k, v] : c.errors) tot.errors[k] += v;
      }
      for (auto& [k, h] : ps.latency) stats.merge_latency(k, h);
      for (auto& f : ps.findings) {
        f["phase"] = ph.name;
        stats.findings.push_back(f);
      }
      for (auto& f : ps.features_used) stats.use_feature(f);
      for (auto& st : ps.stalls) {
        st["phase"] = ph.name;
        stats.stalls.push_back(std::move(st));
      }
      for (auto& [k, v] : ps.workload.items()) {
        phase_workload[ph.name][k] = v;
        aj["workload"][k] = v;
      }
      pj["actors"][a->name()] = aj;
    }
    S["phases"].push_back(pj);
    events->emit("phase_end", {{"phase", ph.name}, {"seconds", (end - start) / 1e9}});
  }

  // Teardown: wait for dropped namespaces to be freed.
  {
    std::lock_guard<std::mutex> lk(cur_mu);
    cur_phase = "teardown";
  }
  nlohmann::json leaks = nlohmann::json::object();
  if (ctx.hub_) {
    int64_t wait = sc.options.get_int("teardown_wait");
    if (stop.hard())
      wait = 0;
    else if (stop.stopping())
      wait = std::min<int64_t>(wait, 2'000'000'000);
    int64_t t = mono_ns();
    bool drained = ctx.hub_->wait_drained(t + wait);
    size_t pending = ctx.hub_->pending();
    leaks["netns_not_freed"] = {{"end", pending}, {"waited_s", (mono_ns() - t) / 1e9}};
    if (!drained) {
      events->emit("netns_not_freed", {{"count", pending}, {"waited_s", (mono_ns() - t) / 1e9}});
    }
    auto hc = ctx.hub_->counts();
    leaks["netns_not_freed"]["watched"] = hc.watched;
    leaks["netns_not_freed"]["freed"] = hc.freed + hc.freed_before_watch;
    leaks["netns_not_freed"]["hub_dellinks"] = hc.dellinks;
    uint64_t overruns = ctx.hub_->overruns();
    if (overruns) leaks["netns_not_freed"]["monitor_overruns"] = overruns;
  }

  sampler_stop.store(true);
  sampler.join();
  if (opts.status_line) std::fprintf(stderr, "\r\033[K");

  for (auto& [k, v] : leaks.items()) S["leaks"][k] = v;
  // Job files go before the observers finish, so the memcg detector sees
  // dying memcgs drain once the page cache pinning them is gone.
  {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(ctx.scratch_dir, ec))
      std::filesystem::remove_all(e.path(), ec);
  }
  for (auto& o : observers) o->finish(ctx, stats, S);

  scratch_fs.reset();
  // Remove the run's cgroup trees (children a churner could not remove,
  // e.g. after EBUSY, go here), the hub, scratch files; restore sysctls.
  ctx.hub_.reset();
  CleanupReport rep;
  {
    std::lock_guard<std::mutex> lk(ctx.mu);
    for (auto& [v, cg] : ctx.run_cgroups) {
      auto r = kernel::remove_cgroup_tree(cg.release(), true);
      rep.cgroups_removed += r.removed;
      for (auto& e : r.errors) rep.errors.push_back(e.message());
    }
    ctx.run_cgroups.clear();
    for (auto& [mp, cg] : ctx.run_cgroups_v1) {
      auto r = kernel::remove_cgroup_tree(cg.release(), true);
      rep.cgroups_removed += r.removed;
      for (auto& e : r.errors) rep.errors.push_back(e.message());
    }
    ctx.run_cgroups_v1.clear();
  }
  JournalData jd = journal->data();
  jd.cgroup_dirs.clear();  // done above
  cleanup_journaled(jd, rep);
  if (rep.errors.empty())
    journal->remove();
  else
    for (const auto& e : rep.errors) events->emit("cleanup_error", {{"message", e}});

  // Summary.
  for (const auto& f : stats.features_used) S["host"]["features_used"].push_back(f);
  double duration = (mono_ns() - ctx.t0_ns) / 1e9;
  for (auto& [kind, c] : stats.churn) {
    nlohmann::json errs = nlohmann::json::object();
    uint64_t failed = 0;
    for (auto& [k, v] : c.errors) {
      errs[k] = v;
      failed += v;
    }
    S["churn"][kind] = {{"created", c.created},
                        {"destroyed", c.destroyed},
                        {"failed", failed},
                        {"errors", errs},
                        {"rate_per_s", duration > 0 ? c.created / duration : 0}};
    if (stats.peak_alive.count(kind)) S["churn"][kind]["peak_alive"] = stats.peak_alive[kind];
  }
  nlohmann::json churn_lat = nlohmann::json::object();
  for (auto& [k, h] : stats.latency) churn_lat[k] = workloads::op_json(h, duration);
  S["churn_latency"] = churn_lat;
  if (phase_workload.size() == 1) {
    S["workload"] = phase_workload.begin()->second;
  } else {
    for (auto& [ph, w] : phase_workload) S["workload"][ph] = w;
  }
  for (auto& f : stats.findings) S["findings"].push_back(f);
  attach_context(S["findings"], opts.out_dir + "/events.jsonl");
  (void)fs::write_file(opts.out_dir + "/latency/series.json", series.dump() + "\n", true);
  (void)fs::write_file(opts.out_dir + "/latency/churn.json", churn_lat.dump(2) + "\n", true);

  std::string verdict;
  if (harness_error) {
    verdict = "error";
    S["reason"] = harness_reason;
  } else {
    std::vector<nlohmann::json> fl(S["findings"].begin(), S["findings"].end());
    verdict = verdict_of(fl);
    if (verdict != "reproduced" && stop.stopping()) {
      verdict = "inconclusive";
      S["reason"] = "interrupted by signal";
    }
  }
  S["partial"] = stop.stopping();
  S["verdict"] = verdict;
  S["duration_s"] = duration;
  events->emit("run_end", {{"verdict", verdict}, {"duration_s", duration}});
  out.exit_code = exit_code_of(verdict);
  return out;
}

}  // namespace krepro::engine
