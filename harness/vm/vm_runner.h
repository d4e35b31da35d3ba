// `krepro vm`: boots a kernel under qemu with a krepro initramfs, runs
// `krepro run ...` inside, streams its events out over a second serial
// port, watches the console, and leaves a host run folder that looks like a
// host run's (summary.json, events.jsonl, latency/ ...) plus console.log and
// guest_kernel.
#pragma once

#include <string>
#include <vector>

#include "harness/vm/accel.h"

namespace krepro::vm {

struct VmConfig {
  std::string kernel;   // bzImage / vmlinuz
  std::string modules;  // lib/modules/VERSION dir or a linux-image .deb ("" = none)
  AccelMode accel = AccelMode::kAuto;
  AccelProbe probe;  // injectable for tests
  unsigned memory_mib = 1024;
  unsigned cpus = 2;
  std::string append;                   // extra kernel command line
  double timeout_s = 1800;              // whole guest run
  double watchdog_s = 120;              // no console output and no event line for this long
  std::string out;                      // host run folder ("" = results/runs/vm-<scenario>-<time>)
  std::vector<std::string> guest_args;  // e.g. {"run", "smoke", "--set", "scale=0.25"}
  // Extra modules to load; the defaults cover veth/bridge and, with a
  // scratch disk, virtio-blk, null_blk, dm-delay and ext4.
  // Each: a module name or a host .ko path, then insmod parameters
  // ("krepro_netdev_hold.ko pattern=krv*"); a .ko that fails to load makes
  // the run an error.
  std::vector<std::string> extra_modules;
  int disk_delay_ms = 0;      // > 0: scratch filesystem on dm-delay over the virtio disk
  int scratch_disk_mib = -1;  // -1: when the scenario looks like it does I/O; 0: never
  std::vector<std::pair<std::string, std::string>> extra_files;  // host, guest
  std::string krepro_binary;  // "" = this executable (/proc/self/exe)
  std::string scenarios_dir;  // "" = the shipped folder next to the binary
  std::string qemu = "qemu-system-x86_64";
  std::string cache_dir;  // "" = $KREPRO_CACHE or ~/.cache/krepro
  bool bisect = false;    // exit codes for git bisect run
  bool quiet = false;
};

// Verdict → exit status, as `krepro run` (bisect: 0/1/125).
int exit_status(const std::string& verdict, bool bisect);

// Parses "120", "120s", "5m", "1h", "500ms" into seconds; <0 on error.
double parse_duration_s(const std::string& s);

// Whole run; returns the exit status. Writes the run folder even when the
// guest hangs or panics.
int run_vm(const VmConfig& cfg);

}  // namespace krepro::vm
