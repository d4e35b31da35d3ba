#include <algorithm>

#include "harness/engine/actor.h"
#include "harness/engine/hub.h"
#include "harness/engine/journal.h"
#include "harness/util/clock.h"
#include "harness/util/errno_name.h"
#include "harness/util/fs.h"

namespace krepro::engine {

void RunStats::add_error(const std::string& kind, const std::string& op, int err) {
  ++churn[kind].errors[op + ":" + errno_name(err)];
}

void RunStats::merge_latency(const std::string& key, const Histogram& h) {
  if (h.count() == 0) return;
  latency[key].merge(h);
}

void RunStats::use_feature(const std::string& f) {
  if (std::find(features_used.begin(), features_used.end(), f) == features_used.end())
    features_used.push_back(f);
}

RunContext::~RunContext() = default;

double Progress::recent_p99_ms() const {
  uint64_t n = std::min<uint64_t>(recent_n.load(std::memory_order_relaxed), kRecent);
  if (n == 0) return -1;
  std::vector<uint32_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = recent_us[i].load(std::memory_order_relaxed);
  size_t k = static_cast<size_t>(static_cast<double>(n - 1) * 0.99);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

bool RunContext::phase_running() const {
  return !stop->stopping() && mono_ns() < phase_deadline_ns.load(std::memory_order_relaxed);
}

Result<std::string> RunContext::run_cgroup(kernel::CgroupVersion v) {
  if (v == kernel::CgroupVersion::kV1) return run_cgroup_v1("memory");
  return run_cgroup_v2({"memory"});
}

namespace {

// mkdir parent/prefix, journaled first: a SIGKILL right after mkdir must
// still find it.
Result<kernel::Cgroup> make_run_cgroup(Journal* journal, const std::string& parent,
                                       const std::string& prefix, kernel::CgroupVersion v) {
  if (journal) KREPRO_TRY(journal->add_cgroup_dir(fs::join(parent, prefix)));
  return kernel::Cgroup::create(parent, prefix, v);
}

}  // namespace

Result<std::string> RunContext::run_cgroup_v1(const std::string& controller) {
  std::lock_guard<std::mutex> lk(mu);
  const kernel::CgroupMount* m = layout.v1(controller);
  if (!m) return make_error(ENOENT, "no cgroup v1 hierarchy mounted for " + controller);
  bool memory =
      std::find(m->controllers.begin(), m->controllers.end(), "memory") != m->controllers.end();
  // The memory hierarchy's run cgroup stays under run_cgroups[kV1], where
  // the memcg detector counts the run's live memcgs.
  if (memory) {
    auto it = run_cgroups.find(static_cast<int>(kernel::CgroupVersion::kV1));
    if (it != run_cgroups.end()) return it->second.path();
  } else if (auto it = run_cgroups_v1.find(m->mount_point); it != run_cgroups_v1.end()) {
    return it->second.path();
  }
  std::string spec = options ? options->get_string("cgroup_parent") : std::string();
  auto parent = layout.run_parent_v1(controller, spec);
  KREPRO_TRY(parent);
  auto cg = make_run_cgroup(journal, *parent, prefix, kernel::CgroupVersion::kV1);
  KREPRO_TRY(cg);
  if (std::find(m->controllers.begin(), m->controllers.end(), "cpuset") != m->controllers.end()) {
    // The run cgroup is reached through krepro's own directory only; its
    // parent is read, never written.
    if (auto r = cg->copy_cpuset_from(*parent); !r) return Unexpected(r.error().wrap(cg->path()));
  }
  std::string path = cg->path();
  if (memory)
    run_cgroups.emplace(static_cast<int>(kernel::CgroupVersion::kV1), std::move(*cg));
  else
    run_cgroups_v1.emplace(m->mount_point, std::move(*cg));
  return path;
}

Result<std::string> RunContext::run_cgroup_v2(const std::vector<std::string>& enable) {
  std::lock_guard<std::mutex> lk(mu);
  int key = static_cast<int>(kernel::CgroupVersion::kV2);
  auto it = run_cgroups.find(key);
  if (it == run_cgroups.end()) {
    std::string spec = options ? options->get_string("cgroup_parent") : std::string();
    auto parent = layout.run_parent_v2(spec);
    KREPRO_TRY(parent);
    auto cg = make_run_cgroup(journal, *parent, prefix, kernel::CgroupVersion::kV2);
    KREPRO_TRY(cg);
    it = run_cgroups.emplace(key, std::move(*cg)).first;
  }
  // Children get a controller only when it is enabled in this subtree
  // (kernel/cgroup/cgroup.c cgroup_subtree_control_write; ENOENT when the
  // parent does not delegate it, which krepro never changes).
  for (const auto& c : enable) {
    if (std::find(v2_enabled.begin(), v2_enabled.end(), c) != v2_enabled.end()) continue;
    auto r = it->second.write("cgroup.subtree_control", "+" + c);
    if (!r && c != "memory")
      return Unexpected(r.error().wrap("enable " + c + " for the run's cgroup2 subtree"));
    // memory stays best effort, as before: churn still makes cgroups.
    v2_enabled.push_back(c);
  }
  return it->second.path();
}

Result<Hub*> RunContext::hub() {
  std::lock_guard<std::mutex> lk(mu);
  if (!hub_) {
    auto h = Hub::create();
    KREPRO_TRY(h);
    hub_ = std::move(*h);
  }
  return hub_.get();
}

}  // namespace krepro::engine
