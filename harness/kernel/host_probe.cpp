#include "harness/kernel/host_probe.h"

#include <fcntl.h>
#include <linux/io_uring.h>
#include <netlink/netlink.h>
#include <netlink/route/link/veth.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "harness/kernel/cgroup.h"
#include "harness/util/errno_name.h"
#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {

bool HostProbe::has(const std::string& name) const {
  const Feature* f = find(name);
  return f && f->ok;
}

const Feature* HostProbe::find(const std::string& name) const {
  for (const auto& f : features)
    if (f.name == name) return &f;
  return nullptr;
}

namespace {

Feature io_uring_feature() {
  // io_uring_setup directly, so the kernel layer needs no liburing: ENOSYS
  // before 5.1 (RHEL 7), EPERM when kernel.io_uring_disabled=2
  // (io_uring/io_uring.c io_uring_allowed).
  io_uring_params p{};
  long fd = ::syscall(__NR_io_uring_setup, 1, &p);
  if (fd < 0) {
    int e = errno;
    return {"io_uring", false, std::string("io_uring_setup: ") + errno_name(e)};
  }
  ::close(static_cast<int>(fd));
  return {"io_uring", true, "io_uring_setup works"};
}

// In a throwaway thread, so this thread's namespace never changes; the
// veth pair is made inside that namespace and dies with it.
void netns_features(std::vector<Feature>& out) {
  int err = 0;
  int veth_err = 0;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    nl_sock* sk = nl_socket_alloc();
    if (!sk || nl_connect(sk, NETLINK_ROUTE) != 0) {
      veth_err = -1;
    } else {
      // The peer goes to the namespace of this thread (its tid, not the pid:
      // net/core/net_namespace.c get_net_ns_by_pid looks up the task).
      veth_err = rtnl_link_veth_add(sk, "krepro-probe0", "krepro-probe1",
                                    static_cast<pid_t>(::syscall(SYS_gettid)));
    }
    if (sk) nl_socket_free(sk);
  });
  t.join();
  if (err) {
    out.push_back({"netns", false, std::string("unshare(CLONE_NEWNET): ") + errno_name(err)});
    out.push_back({"veth", false, "no network namespace to test in"});
    return;
  }
  out.push_back({"netns", true, "unshare(CLONE_NEWNET) works"});
  out.push_back({"veth", veth_err == 0,
                 veth_err == 0 ? "veth pair created in a throwaway namespace"
                               : std::string("veth add: ") + nl_geterror(veth_err)});
}

// kprobe_events exists only once tracefs is mounted; mount it privately on
// a krepro-owned folder when it is not, look, and unmount.
Feature kprobe_feature(const std::string& sys_root, bool root) {
  std::string dir = sys_root + "/kernel/tracing";
  if (fs::exists(dir + "/kprobe_events") ||
      fs::exists(sys_root + "/kernel/debug/tracing/kprobe_events"))
    return {"kprobe-events", true, "kprobe_events present"};
  if (fs::exists(dir + "/events"))
    return {"kprobe-events", false, "tracefs mounted, no kprobe_events (CONFIG_KPROBE_EVENTS off)"};
  if (!root) return {"kprobe-events", false, "unknown: tracefs not mounted and not root"};
  char tmpl[] = "/tmp/krepro-probe-tracefs-XXXXXX";
  if (!::mkdtemp(tmpl)) return {"kprobe-events", false, "mkdtemp failed"};
  Feature f{"kprobe-events", false, "tracefs not mountable"};
  if (::mount("nodev", tmpl, "tracefs", 0, nullptr) == 0) {
    bool k = fs::exists(std::string(tmpl) + "/kprobe_events");
    f = {"kprobe-events", k,
         k ? "kprobe_events present" : "no kprobe_events (CONFIG_KPROBE_EVENTS off)"};
    ::umount2(tmpl, MNT_DETACH);
  }
  ::rmdir(tmpl);
  return f;
}

bool cpu_has_virt(const std::string& proc_root) {
  auto info = fs::read_file(proc_root + "/cpuinfo");
  if (!info) return false;
  for (const auto& line : fs::split(*info, '\n')) {
    if (line.rfind("flags", 0) != 0) continue;
    for (const auto& f : fs::split(line, ' '))
      if (f == "vmx" || f == "svm") return true;
    return false;
  }
  return false;
}

}  // namespace

HostProbe probe_host(const ProbeOptions& o) {
  HostProbe h;
  utsname u{};
  if (::uname(&u) == 0) {
    h.kernel_release = u.release;
    h.machine = u.machine;
  }
  h.root = ::geteuid() == 0;
  h.features.push_back({"root", h.root, h.root ? "euid 0" : "not root"});

  auto layout = CgroupLayout::discover(o.proc_root + "/self", "");
  bool v1mem = false, v2 = false;
  if (layout) {
    v1mem = layout->v1("memory") != nullptr;
    v2 = layout->v2() != nullptr;
    std::string v1list;
    for (const auto& m : layout->v1_mounts())
      for (const auto& c : m.controllers) v1list += (v1list.empty() ? "" : ",") + c;
    h.features.push_back({"cgroup-v1-memory", v1mem,
                          v1mem ? "v1 controllers: " + v1list : "no v1 memory hierarchy"});
    std::string v2c;
    if (v2)
      for (const auto& c : layout->v2()->controllers) v2c += (v2c.empty() ? "" : ",") + c;
    h.features.push_back(
        {"cgroup-v2", v2, v2 ? layout->v2()->mount_point + " controllers: " + v2c : "not mounted"});
    bool v2mem = v2 && std::find(layout->v2()->controllers.begin(), layout->v2()->controllers.end(),
                                 "memory") != layout->v2()->controllers.end();
    h.features.push_back(
        {"cgroup-v2-memory", v2mem, v2mem ? "memory in cgroup.controllers" : "no"});
    h.cgroup_mode = v1mem && v2 ? "hybrid" : v1mem ? "v1" : v2 ? "v2" : "none";
    auto bl = layout->v1("blkio");
    h.features.push_back(
        {"blkio-throttle",
         bl && fs::exists(fs::join(bl->mount_point, "blkio.throttle.write_bps_device")),
         bl ? bl->mount_point : "no v1 blkio"});
  } else {
    h.features.push_back({"cgroup-v1-memory", false, layout.error().message()});
    h.cgroup_mode = "none";
  }

  if (v1mem && layout) {
    auto self = layout->self_dir_v1("memory");
    bool file = self && fs::exists(fs::join(*self, "memory.kmem.limit_in_bytes"));
    h.features.push_back({"kmem-limit-file", file, file ? "memory.kmem.limit_in_bytes" : "absent"});
    if (file && o.probe_kmem && h.root) {
      auto cg =
          Cgroup::create(*self, "krepro-probe-" + std::to_string(::getpid()), CgroupVersion::kV1);
      if (cg) {
        KmemState st = cg->enable_kmem_like_runc();
        h.features.push_back({"kmem-enforced", st.enforced,
                              st.enforced ? "limit reads back as written"
                                          : "write accepted, reads back unlimited (not enforced)"});
      } else {
        h.features.push_back({"kmem-enforced", false, cg.error().message()});
      }
    }
  }

  h.features.push_back(io_uring_feature());
  bool tracefs_fs = false;
  if (auto fsl = fs::read_file(o.proc_root + "/filesystems"))
    tracefs_fs = fsl->find("\ttracefs\n") != std::string::npos;
  h.features.push_back({"tracefs", tracefs_fs,
                        tracefs_fs ? (fs::exists(o.sys_root + "/kernel/tracing/events")
                                          ? "mounted at /sys/kernel/tracing"
                                          : "mountable (not mounted)")
                                   : "tracefs not in /proc/filesystems"});
  h.features.push_back(kprobe_feature(o.sys_root, h.root));
  {
    UniqueFd r(::open((o.dev_root + "/kmsg").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    h.features.push_back(
        {"kmsg-read", r.valid(), r.valid() ? "/dev/kmsg readable" : errno_name(errno)});
    UniqueFd w(::open((o.dev_root + "/kmsg").c_str(), O_WRONLY | O_CLOEXEC));
    h.features.push_back(
        {"kmsg-write", w.valid(), w.valid() ? "/dev/kmsg writable" : errno_name(errno)});
  }
  if (o.probe_netns) netns_features(h.features);
  bool psi = fs::exists(o.proc_root + "/pressure/io");
  h.features.push_back({"psi-io", psi, psi ? "/proc/pressure/io" : "no PSI (CONFIG_PSI off)"});
  bool loop = fs::exists(o.dev_root + "/loop-control");
  h.features.push_back({"loop-device", loop, loop ? "/dev/loop-control" : "absent"});
  bool qemu = fs::exists("/usr/bin/qemu-system-x86_64");
  h.features.push_back(
      {"qemu-x86_64", qemu, qemu ? "/usr/bin/qemu-system-x86_64" : "not installed"});
  bool virt = cpu_has_virt(o.proc_root);
  bool kvmdev = fs::exists(o.dev_root + "/kvm");
  h.features.push_back({"kvm", virt && kvmdev,
                        !kvmdev ? "no /dev/kvm"
                        : !virt ? "/dev/kvm present but cpu flags lack vmx/svm (nested; use TCG)"
                                : "vmx/svm and /dev/kvm"});
  return h;
}

}  // namespace krepro::kernel
