// What this host supports: the facts `krepro check` prints and scenarios
// are matched against before anything is created.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace krepro::kernel {

struct Feature {
  std::string name;
  bool ok = false;
  std::string detail;  // the value found, or why it is missing
};

struct HostProbe {
  std::string kernel_release;
  std::string machine;
  bool root = false;
  std::string cgroup_mode;  // "v1", "v2", "hybrid"
  std::vector<Feature> features;

  bool has(const std::string& name) const;
  const Feature* find(const std::string& name) const;
};

struct ProbeOptions {
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
  std::string dev_root = "/dev";
  // Create (and remove) a krepro-probe-<pid> memcg to learn whether the
  // kernel enforces memory.kmem.limit_in_bytes. Needs root.
  bool probe_kmem = true;
  bool probe_netns = true;
};

// Feature names: root, cgroup-v1-memory, cgroup-v2, kmem-limit-file,
// kmem-enforced, io_uring, tracefs, kmsg-read, kmsg-write, netns, veth,
// kprobe-events, psi-io, blkio-throttle, loop-device, qemu-x86_64, kvm.
HostProbe probe_host(const ProbeOptions& opts = {});

}  // namespace krepro::kernel
