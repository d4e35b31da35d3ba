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
  std::lock_guard<std::mutex> lk(mu);
  int key = static_cast<int>(v);
  auto it = run_cgroups.find(key);
  if (it != run_cgroups.end()) return it->second.path();
  std::string parent = options ? options->get_string("cgroup_parent") : std::string();
  if (parent.empty()) {
    if (v == kernel::CgroupVersion::kV1) {
      auto d = layout.self_dir_v1("memory");
      KREPRO_TRY(d);
      // DESIGN.md: never at a hierarchy root unless --cgroup-parent says so.
      if (layout.self_at_root_v1("memory"))
        return make_error(EPERM,
                          "krepro runs at the root of the v1 memory hierarchy; "
                          "pass --set cgroup_parent=DIR to create cgroups there");
      parent = *d;
    } else {
      auto d = layout.self_dir_v2();
      KREPRO_TRY(d);
      if (layout.v2() && *d == layout.v2()->mount_point)
        return make_error(EPERM,
                          "krepro runs at the root of the cgroup2 hierarchy; "
                          "pass --set cgroup_parent=DIR to create cgroups there");
      parent = *d;
    }
  }
  std::string dir = fs::join(parent, prefix);
  // Journal first: a SIGKILL right after mkdir must still find it.
  if (journal) KREPRO_TRY(journal->add_cgroup_dir(dir));
  auto cg = kernel::Cgroup::create(parent, prefix, v);
  KREPRO_TRY(cg);
  if (v == kernel::CgroupVersion::kV2) {
    // Children need the memory controller enabled in the subtree.
    (void)cg->write("cgroup.subtree_control", "+memory");
  }
  std::string path = cg->path();
  run_cgroups.emplace(key, std::move(*cg));
  return path;
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
