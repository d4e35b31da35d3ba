// cgroup-churn: create memory cgroups (kmem accounting switched on the way
// runc did), run a job in each, keep a number alive, destroy the oldest.
#include <fcntl.h>

#include <deque>
#include <mutex>
#include <thread>

#include "harness/engine/actor.h"
#include "harness/engine/churn_common.h"
#include "harness/engine/registry.h"
#include "harness/engine/scenario.h"
#include "harness/engine/timeline.h"
#include "harness/kernel/job.h"
#include "harness/util/unique_fd.h"

namespace krepro::engine {

namespace {

class CgroupChurn final : public ChurnActor {
 public:
  explicit CgroupChurn(const CompiledActor& c) : ChurnActor(c.name, c.params, "cgroups") {
    kmem_ = p_.get_bool("kmem");
    payload_ = payload_from_params(p_);
    memory_limit_ = p_.get_int("memory_limit");
  }

  Result<void> prepare(RunContext& ctx) override {
    version_ = ctx.cg_version;
    auto parent = ctx.run_cgroup(version_);
    KREPRO_TRY_CTX(parent, "cgroup-churn " + name_);
    parent_ = *parent;
    prefix_ = ctx.prefix + "-" + name_ + "-";
    scratch_ = ctx.scratch_dir;
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
    s.use_feature(version_ == kernel::CgroupVersion::kV1 ? "cgroup-v1-memory" : "cgroup-v2");
    if (kmem_ && kmem_seen_) {
      s.use_feature(kmem_enforced_ ? "kmem-enforced" : "kmem-limit-file (not enforced)");
    }
  }

 private:
  struct Entry {
    kernel::Cgroup cg;
    kernel::Job job;
    std::string files;
  };

  bool create_one(RunContext& ctx, WorkerStats& st, std::deque<Entry>& alive) {
    uint64_t seq = next_seq();
    std::string name = prefix_ + std::to_string(seq);
    int64_t t0 = mono_ns();
    auto cg = kernel::Cgroup::create(parent_, name, version_);
    int64_t t1 = mono_ns();
    if (!cg) {
      note_error(ctx, st, "mkdir", cg.error());
      return false;
    }
    st.h("mkdir").record(t1 - t0);
    if (kmem_ && version_ == kernel::CgroupVersion::kV1) {
      kernel::KmemState k = cg->enable_kmem_like_runc();
      st.h("kmem").record(mono_ns() - t1);
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
                   ? cg->write("memory.limit_in_bytes", std::to_string(memory_limit_))
                   : cg->set_memory_max(std::to_string(memory_limit_));
      if (!r) note_error(ctx, st, "limit", r.error());
    }
    UniqueFd procs(::open((cg->path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!procs) {
      note_error(ctx, st, "open_procs", Error::from_errno("open cgroup.procs"));
      return false;
    }
    Entry e{std::move(*cg), kernel::Job(), scratch_ + "/" + name};
    kernel::JobPlacement where;
    where.cgroup_procs_fds.push_back(procs.get());
    const char* path = e.files.c_str();
    const workloads::PayloadSpec& spec = payload_;
    int64_t t2 = mono_ns();
    auto body = [&spec, path] { return workloads::run_payload(spec, path); };
    auto job = short_payload(spec) ? kernel::Job::vfork_payload(where, body)
                                   : kernel::Job::fork_payload(where, body);
    st.h("job_start").record(mono_ns() - t2);
    if (!job) {
      note_error(ctx, st, "fork", job.error());
    } else {
      e.job = std::move(*job);
    }
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
      auto code = e.job.wait();
      st.h("job_wait").record(mono_ns() - t0);
      if (code && *code != 0) {
        ++st.errors["job:exit" + std::to_string(*code)];
        progress_->errors.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (!payload_.keep) workloads::remove_payload_files(payload_, e.files);
    // rmdir right after the last task was reaped; EBUSY here is evidence
    // (kernel/cgroup/cgroup.c cgroup_destroy_locked refuses a populated
    // cgroup), so it is counted and retried, never hidden.
    for (int attempt = 0;; ++attempt) {
      int64_t t0 = mono_ns();
      auto r = e.cg.remove();
      if (r) {
        st.h("rmdir").record(mono_ns() - t0);
        ++st.destroyed;
        progress_->destroyed.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      note_error(ctx, st, "rmdir", r.error());
      if (r.error().err() != EBUSY || attempt >= 20) {
        // Left for the run's final tree removal.
        e.cg.release();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    progress_->alive.fetch_sub(1, std::memory_order_relaxed);
  }

  void worker(RunContext& ctx, int w) override {
    WorkerStats& st = stats_[w];
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
      if (!create_one(ctx, st, alive)) {
        // A failing mkdir (ENOSPC: the memcg-ID leak) must not spin.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    while (!alive.empty()) {
      destroy_one(ctx, st, alive.front());
      alive.pop_front();
    }
  }

  bool kmem_ = true;
  int64_t memory_limit_ = 0;
  workloads::PayloadSpec payload_;
  kernel::CgroupVersion version_ = kernel::CgroupVersion::kV1;
  std::string parent_, prefix_, scratch_;
  std::atomic<bool> kmem_seen_{false};
  bool kmem_enforced_ = false;
};

}  // namespace

ActorType cgroup_churn_type() {
  ActorType t;
  t.name = "cgroup-churn";
  t.help = "create memory cgroups (kmem on like runc), run a job in each, destroy them";
  t.params = churn_param_specs(100);
  auto pay = payload_param_specs("write");
  t.params.insert(t.params.end(), pay.begin(), pay.end());
  t.params.push_back({"kmem", ParamType::kBool, "true", 0, 0,
                      "enable kmem accounting like runc (memory.kmem.limit_in_bytes 1 then -1)"});
  t.params.push_back(
      {"memory_limit", ParamType::kSize, "0", 0, 1e12,
       "memory limit per cgroup (v1 memory.limit_in_bytes, v2 memory.max); 0: none"});
  t.requires_features = {"root", "cgroup-v1-memory|cgroup-v2"};
  t.make = [](const CompiledActor& c) { return std::make_unique<CgroupChurn>(c); };
  return t;
}

}  // namespace krepro::engine
