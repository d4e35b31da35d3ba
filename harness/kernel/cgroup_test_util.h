// Kernel-tier test helpers for cgroup trees krepro's tests make: removal
// however a test ends, where to make them, and a pod's cgroups in several
// v1 hierarchies with the cgroup.procs fds a job joins them by.
#pragma once

#include <string>
#include <vector>

#include "harness/kernel/cgroup.h"
#include "harness/kernel/job.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel::test_util {

// Removes the krepro-* trees a test made, however the test ends.
struct TreeGuard {
  std::vector<std::string> dirs;
  ~TreeGuard() {
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) remove_cgroup_tree(*it, true);
  }
};

// The cgroup this test runs in, or the hierarchy root where it runs at the
// root: kernel tests make their krepro-* cgroups right there (the way
// cgroup_parent=<mount> does).
inline std::string test_parent(const CgroupLayout& l, const std::string& c) {
  auto d = l.self_dir_v1(c);
  return d ? *d : l.v1(c)->mount_point;
}

// TOP/TOP-job in each hierarchy; `where` holds the job cgroups' procs fds.
// Members go in reverse: jobs, then tops, then whatever the guard finds.
struct PodTree {
  TreeGuard guard;
  std::vector<Cgroup> tops, jobs;
  std::vector<UniqueFd> fds;
  JobPlacement where;
};

inline Result<void> make_pod_tree(const CgroupLayout& l, const std::vector<V1Hierarchy>& hs,
                                  const std::string& top, PodTree& t) {
  for (const auto& h : hs) {
    std::string parent = test_parent(l, h.named.front());
    t.guard.dirs.push_back(fs::join(parent, top));
    auto c = Cgroup::create(parent, top, CgroupVersion::kV1);
    KREPRO_TRY(c);
    auto j = Cgroup::create(c->path(), top + "-job", CgroupVersion::kV1);
    KREPRO_TRY(j);
    auto fd = j->open_procs();
    KREPRO_TRY(fd);
    t.where.cgroup_procs_fds.push_back(fd->get());
    t.fds.push_back(std::move(*fd));
    t.tops.push_back(std::move(*c));
    t.jobs.push_back(std::move(*j));
  }
  return {};
}

}  // namespace krepro::kernel::test_util
