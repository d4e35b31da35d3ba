// cgroup-churn: create a pod's cgroups (memory with kmem accounting switched
// on the way runc did, plus any other controller the scenario names), run a
// job in them, keep a number alive, destroy the oldest.
#include <algorithm>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "harness/engine/actor.h"
#include "harness/engine/churn_common.h"
#include "harness/engine/registry.h"
#include "harness/engine/scenario.h"
#include "harness/engine/timeline.h"
#include "harness/kernel/job.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::engine {

namespace {

// runc's cpu.shares -> cpu.weight mapping (libcontainer/cgroups/utils.go
// ConvertCPUSharesToCgroupV2Value), so one parameter means the same on both.
int64_t shares_to_weight(int64_t shares) { return 1 + ((shares - 2) * 9999) / 262142; }

class CgroupChurn final : public ChurnActor {
 public:
  explicit CgroupChurn(const CompiledActor& c) : ChurnActor(c.name, c.params, "cgroups") {
    kmem_ = p_.get_bool("kmem");
    payload_ = payload_from_params(p_);
    memory_limit_ = p_.get_int("memory_limit");
    pids_max_ = p_.get_int("pids_max");
    cpu_shares_ = p_.get_int("cpu_shares");
    controllers_ = kernel::split_controller_list(p_.get_string("controllers"));
  }

  Precheck precheck(const RunContext& ctx) const override {
    const std::string me = "cgroup-churn " + name_ + ": ";
    if (controllers_.empty()) return Precheck::usage(me + "controllers is empty (e.g. memory,cpu)");
    for (const auto& c : controllers_) {
      if (!kernel::is_known_controller(c))
        return Precheck::usage(me + "'" + c + "' in controllers is not a cgroup controller");
    }
    auto named = [&](const char* c) {
      return std::find(controllers_.begin(), controllers_.end(), c) != controllers_.end();
    };
    if (memory_limit_ > 0 && !named("memory"))
      return Precheck::usage(me + "memory_limit needs memory in controllers");
    if (pids_max_ > 0 && !named("pids"))
      return Precheck::usage(me + "pids_max needs pids in controllers");
    if (cpu_shares_ > 0 && !named("cpu"))
      return Precheck::usage(me + "cpu_shares needs cpu in controllers");
    std::string spec = ctx.options ? ctx.options->get_string("cgroup_parent") : std::string();
    // Where the run cgroups would go: a hierarchy root without
    // cgroup_parent is refused before anything is made (exit 2, the
    // message says which option to pass).
    auto placed = [&](const Result<std::string>& parent) -> std::optional<Precheck> {
      if (parent) return std::nullopt;
      if (parent.error().err() == EPERM || parent.error().err() == EINVAL)
        return Precheck::usage(me + parent.error().message());
      return Precheck::skip(me + parent.error().message());
    };
    if (ctx.cg_version == kernel::CgroupVersion::kV1) {
      // What the host lacks first: no option fixes that.
      for (const auto& c : controllers_) {
        if (!ctx.layout.v1(c))
          return Precheck::skip(me + "this host mounts no cgroup v1 hierarchy for " + c);
      }
      for (const auto& c : controllers_) {
        if (auto p = placed(ctx.layout.run_parent_v1(c, spec))) return *p;
      }
      return {};
    }
    const kernel::CgroupMount* v2 = ctx.layout.v2();
    for (const auto& c : controllers_) {
      if (!kernel::is_v2_controller(c))
        return Precheck::skip(me + c + " is a cgroup v1 controller and this run uses cgroup2" +
                              (c == "blkio" ? " (its cgroup2 name is io)" : ""));
      if (!v2 ||
          std::find(v2->controllers.begin(), v2->controllers.end(), c) == v2->controllers.end())
        return Precheck::skip(me + "the cgroup2 hierarchy has no " + c + " controller");
    }
    // The run cgroup can only enable what its parent delegates, and krepro
    // does not write to a cgroup it did not create. memory stays best
    // effort (see RunContext::run_cgroup_v2).
    auto parent = ctx.layout.run_parent_v2(spec);
    if (auto p = placed(parent)) return *p;
    auto sub = fs::read_line(fs::join(*parent, "cgroup.subtree_control"));
    std::vector<std::string> have = sub ? fs::split(*sub, ' ') : std::vector<std::string>{};
    for (const auto& c : controllers_) {
      if (c != "memory" && std::find(have.begin(), have.end(), c) == have.end())
        return Precheck::skip(me + c + " is not enabled in " + *parent +
                              "/cgroup.subtree_control, so krepro's cgroups cannot use it");
    }
    return {};
  }

  Result<void> prepare(RunContext& ctx) override {
    version_ = ctx.cg_version;
    prefix_ = ctx.prefix + "-" + name_ + "-";
    scratch_ = ctx.scratch_dir;
    targets_.clear();
    if (version_ == kernel::CgroupVersion::kV2) {
      auto parent = ctx.run_cgroup_v2(controllers_);
      KREPRO_TRY_CTX(parent, "cgroup-churn " + name_);
      Target t;
      t.key = "v2";
      t.parent = *parent;
      auto named = [&](const char* c) {
        return std::find(controllers_.begin(), controllers_.end(), c) != controllers_.end();
      };
      t.memory = named("memory");
      t.pids = named("pids");
      t.cpu = named("cpu");
      targets_.push_back(std::move(t));
      return {};
    }
    auto hs = ctx.layout.v1_hierarchies(controllers_);
    KREPRO_TRY_CTX(hs, "cgroup-churn " + name_);
    for (const auto& h : *hs) {
      auto parent = ctx.run_cgroup_v1(h.named.front());
      KREPRO_TRY_CTX(parent, "cgroup-churn " + name_);
      Target t;
      t.key = h.key();
      t.parent = *parent;
      t.memory = h.has("memory");
      t.pids = h.has("pids");
      t.cpu = h.has("cpu");
      if (h.has("cpuset")) {
        // Every job cgroup gets the run cgroup's cpus and mems (copied from
        // krepro's own cgroup when the run cgroup was made).
        auto cpus = fs::read_line(fs::join(t.parent, "cpuset.cpus"));
        auto mems = fs::read_line(fs::join(t.parent, "cpuset.mems"));
        if (!cpus || !mems)
          return make_error(cpus ? mems.error().err() : cpus.error().err(),
                            "cgroup-churn " + name_ + ": cpuset of " + t.parent);
        t.cpuset = true;
        t.cpus = *cpus;
        t.mems = *mems;
      }
      targets_.push_back(std::move(t));
    }
    return {};
  }

  void contribute(RunStats& s) override {
    auto& c = s.churn["cgroups"];
    for (auto& w : stats_) {
      c.created += w.created;
      c.destroyed += w.destroyed;
      for (auto& [k, v] : w.errors) c.errors[k] += v;
      for (auto& [op, h] : w.lat) s.merge_latency("cgroups." + op, h);
    }
    if (version_ == kernel::CgroupVersion::kV1) {
      for (const auto& ctl : controllers_) s.use_feature("cgroup-v1-" + ctl);
    } else {
      s.use_feature("cgroup-v2");
      for (const auto& ctl : controllers_) s.use_feature("cgroup-v2-" + ctl);
    }
    if (spawner_used_) s.use_feature("job-spawner");
    if (kmem_ && kmem_seen_) {
      s.use_feature(kmem_enforced_ ? "kmem-enforced" : "kmem-limit-file (not enforced)");
    }
  }

 private:
  // One hierarchy a job's cgroup is made in (v2: the one unified tree).
  struct Target {
    std::string key;     // latency suffix: "memory", "cpu,cpuacct", "v2"
    std::string parent;  // the run cgroup there
    bool memory = false, pids = false, cpu = false, cpuset = false;
    std::string cpus, mems;
  };
  struct Entry {
    std::vector<kernel::Cgroup> cgs;  // parallel to targets_
    kernel::Job job;
    std::string files;
  };

  // Per-hierarchy latency only when there is more than one hierarchy: with
  // memory alone, cgroups.mkdir already is it.
  bool per_target() const { return targets_.size() > 1; }

  // The per-cgroup knobs of one hierarchy, before any task joins (kmem can
  // only be limited while the memcg is empty: mm/memcontrol-v1.c
  // memcg_update_kmem_max's "Cannot set kmem limit on a cgroup with tasks").
  void configure(RunContext& ctx, WorkerStats& st, const Target& t, const kernel::Cgroup& cg) {
    if (t.memory) {
      if (kmem_ && version_ == kernel::CgroupVersion::kV1) {
        int64_t k0 = mono_ns();
        kernel::KmemState k = cg.enable_kmem_like_runc();
        st.h("kmem").record(mono_ns() - k0);
        if (k.file_present && !k.write_ok) note_error(ctx, st, "kmem", Error(k.err, "kmem write"));
        if (!kmem_seen_.exchange(true)) {
          kmem_enforced_ = k.enforced;
          ctx.events->emit("kmem", {{"actor", name_},
                                    {"file_present", k.file_present},
                                    {"enforced", k.enforced},
                                    {"note", k.enforced ? "kmem limit enforced"
                                                        : "kmem limit accepted but not enforced"}});
        }
      }
      if (memory_limit_ > 0) {
        auto r = version_ == kernel::CgroupVersion::kV1
                     ? cg.write("memory.limit_in_bytes", std::to_string(memory_limit_))
                     : cg.set_memory_max(std::to_string(memory_limit_));
        if (!r) note_error(ctx, st, "limit", r.error());
      }
    }
    if (t.cpuset) {
      if (auto r = cg.set_cpuset(t.cpus, t.mems); !r) note_error(ctx, st, "cpuset", r.error());
    }
    if (t.pids && pids_max_ > 0) {
      // kernel/cgroup/pids.c pids_max_write.
      if (auto r = cg.write("pids.max", std::to_string(pids_max_)); !r)
        note_error(ctx, st, "pids_max", r.error());
    }
    if (t.cpu && cpu_shares_ > 0) {
      auto r = version_ == kernel::CgroupVersion::kV1
                   ? cg.write("cpu.shares", std::to_string(cpu_shares_))
                   : cg.write("cpu.weight", std::to_string(shares_to_weight(cpu_shares_)));
      if (!r) note_error(ctx, st, "cpu_shares", r.error());
    }
  }

  // Once per worker: why its jobs are forked from krepro rather than
  // started by the spawner.
  void note_fallback(RunContext& ctx, JobLauncher& jobs) {
    if (auto why = jobs.take_fallback_reason())
      ctx.events->emit("job_spawner", {{"actor", name_},
                                       {"using", "fork"},
                                       {"errno", errno_name(why->err())},
                                       {"message", why->message()}});
  }

  bool create_one(RunContext& ctx, WorkerStats& st, JobLauncher& jobs, std::deque<Entry>& alive) {
    uint64_t seq = next_seq();
    std::string name = prefix_ + std::to_string(seq);
    int64_t t0 = mono_ns();
    Entry e{{}, kernel::Job(), scratch_ + "/" + name};
    e.cgs.reserve(targets_.size());
    // Every mkdir lands inside a journaled run cgroup, so cleanup's tree
    // removal finds it after a SIGKILL.
    int64_t mkdir_ns = 0;
    for (const auto& t : targets_) {
      int64_t a = mono_ns();
      auto cg = kernel::Cgroup::create(t.parent, name, version_);
      int64_t b = mono_ns();
      if (!cg) {
        note_error(ctx, st, "mkdir", cg.error());
        return false;  // e.cgs' destructors remove the ones made (empty)
      }
      mkdir_ns += b - a;
      if (per_target()) st.h("mkdir." + t.key).record(b - a);
      e.cgs.push_back(std::move(*cg));
    }
    st.h("mkdir").record(mkdir_ns);
    std::vector<UniqueFd> procs;
    kernel::JobPlacement where;
    for (size_t i = 0; i < targets_.size(); ++i) {
      configure(ctx, st, targets_[i], e.cgs[i]);
      auto fd = e.cgs[i].open_procs();
      if (!fd) {
        note_error(ctx, st, "open_procs", fd.error());
        return false;
      }
      where.cgroup_procs_fds.push_back(fd->get());
      procs.push_back(std::move(*fd));
    }
    int64_t t2 = mono_ns();
    auto job = jobs.start(where, e.files);
    st.h("job_start").record(mono_ns() - t2);
    if (!job) {
      note_error(ctx, st, jobs.last_via() == JobLauncher::Via::kSpawner ? "spawn" : "fork",
                 job.error());
    } else {
      e.job = std::move(*job);
    }
    note_fallback(ctx, jobs);
    ++st.created;
    progress_->created.fetch_add(1, std::memory_order_relaxed);
    progress_->add_alive();
    progress_->note_latency(mono_ns() - t0);
    alive.push_back(std::move(e));
    return true;
  }

  void destroy_one(RunContext& ctx, WorkerStats& st, Entry& e) {
    if (e.job.pid() > 0) {
      if (ctx.stop->hard()) e.job.kill_and_reap();
      int64_t t0 = mono_ns();
      bool spawned = e.job.spawned();
      auto code = e.job.wait();
      st.h("job_wait").record(mono_ns() - t0);
      if (code && *code != 0) {
        ++st.errors["job:exit" + std::to_string(*code)];
        progress_->errors.fetch_add(1, std::memory_order_relaxed);
        // A spawned child says which placement step failed, and why.
        if (const auto& why = e.job.placement_error();
            why && placement_events_.fetch_add(1, std::memory_order_relaxed) < 20)
          ctx.events->emit("churn_error", {{"actor", name_},
                                           {"kind", "cgroups"},
                                           {"op", "job_place"},
                                           {"errno", errno_name(why->err())},
                                           {"message", why->message()}});
      } else if (!code) {
        // Only the spawner's channel can fail here (a dead spawner).
        note_error(ctx, st, spawned ? "job_wait_spawner" : "job_wait", code.error());
      }
    }
    if (!payload_.keep) workloads::remove_payload_files(payload_, e.files);
    // rmdir right after the last task was reaped; EBUSY here is evidence
    // (kernel/cgroup/cgroup.c cgroup_destroy_locked refuses a populated
    // cgroup), so it is counted and retried, never hidden.
    bool all = true;
    int64_t rmdir_ns = 0;
    for (size_t i = 0; i < e.cgs.size(); ++i) {
      kernel::Cgroup& cg = e.cgs[i];
      for (int attempt = 0;; ++attempt) {
        int64_t t0 = mono_ns();
        auto r = cg.remove();
        if (r) {
          int64_t d = mono_ns() - t0;
          rmdir_ns += d;
          if (per_target()) st.h("rmdir." + targets_[i].key).record(d);
          break;
        }
        note_error(ctx, st, "rmdir", r.error());
        if (r.error().err() != EBUSY || attempt >= 20) {
          // Left for the run's final tree removal.
          cg.release();
          all = false;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    if (all) {
      st.h("rmdir").record(rmdir_ns);
      ++st.destroyed;
      progress_->destroyed.fetch_add(1, std::memory_order_relaxed);
    }
    progress_->alive.fetch_sub(1, std::memory_order_relaxed);
  }

  void worker(RunContext& ctx, int w) override {
    WorkerStats& st = stats_[w];
    // Before `alive`: jobs hold the spawner's channel, and are destroyed
    // first.
    JobLauncher jobs(payload_);
    jobs.prepare();
    note_fallback(ctx, jobs);
    std::deque<Entry> alive;
    int64_t target = alive_target(w);
    Pacer pacer(p_.get_double("rate"), workers_, mono_ns());
    while (ctx.phase_running()) {
      if (static_cast<int64_t>(alive.size()) >= target) {
        destroy_one(ctx, st, alive.front());
        alive.pop_front();
        continue;
      }
      if (!want_more()) break;
      pacer.wait(ctx.phase_deadline_ns.load());
      if (!create_one(ctx, st, jobs, alive)) {
        // A failing mkdir (ENOSPC: the memcg-ID leak) must not spin.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    while (!alive.empty()) {
      destroy_one(ctx, st, alive.front());
      alive.pop_front();
    }
    if (jobs.last_via() == JobLauncher::Via::kSpawner) spawner_used_.store(true);
  }

  bool kmem_ = true;
  int64_t memory_limit_ = 0, pids_max_ = 0, cpu_shares_ = 0;
  std::vector<std::string> controllers_;
  std::vector<Target> targets_;
  workloads::PayloadSpec payload_;
  kernel::CgroupVersion version_ = kernel::CgroupVersion::kV1;
  std::string prefix_, scratch_;
  std::atomic<bool> kmem_seen_{false};
  std::atomic<bool> spawner_used_{false};
  std::atomic<uint64_t> placement_events_{0};
  bool kmem_enforced_ = false;
};

}  // namespace

ActorType cgroup_churn_type() {
  ActorType t;
  t.name = "cgroup-churn";
  t.help =
      "create cgroups (memory with kmem on like runc, plus named controllers), run a job in "
      "each, destroy them";
  t.params = churn_param_specs(100);
  auto pay = payload_param_specs("write");
  t.params.insert(t.params.end(), pay.begin(), pay.end());
  t.params.push_back({"kmem", ParamType::kBool, "true", 0, 0,
                      "enable kmem accounting like runc (memory.kmem.limit_in_bytes 1 then -1)"});
  t.params.push_back(
      {"memory_limit", ParamType::kSize, "0", 0, 1e12,
       "memory limit per cgroup (v1 memory.limit_in_bytes, v2 memory.max); 0: none"});
  t.params.push_back(
      {"controllers", ParamType::kString, "memory", 0, 0,
       "cgroup controllers each job's cgroup is in, separated by commas (e.g. memory,cpu,pids, as "
       "kubelet places a pod): v1 one cgroup per hierarchy (co-mounted ones once), v2 enabled in "
       "the run cgroup's subtree; a name the host does not mount skips the run"});
  t.params.push_back({"pids_max", ParamType::kInt, "0", 0, 4194304,
                      "pids.max per cgroup (needs pids in controllers); 0: unlimited"});
  t.params.push_back({"cpu_shares", ParamType::kInt, "0", 0, 262144,
                      "cpu.shares per cgroup (v2: cpu.weight converted as runc does; needs cpu in "
                      "controllers); 0: left at the default"});
  t.requires_features = {"root", "cgroup-v1-memory|cgroup-v2"};
  t.make = [](const CompiledActor& c) { return std::make_unique<CgroupChurn>(c); };
  return t;
}

}  // namespace krepro::engine
