#include "harness/app/vm_cmd.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "harness/vm/vm_runner.h"

namespace krepro::app {

CLI::App* add_vm_subcommand(CLI::App& app, VmArgs& a) {
  auto* vm = app.add_subcommand(
      "vm",
      "boot a kernel under qemu and run krepro inside: vm --kernel IMAGE -- run SCENARIO ...");
  vm->add_option("--kernel", a.kernel, "kernel image (bzImage/vmlinuz)")->required();
  vm->add_option("--modules", a.modules, "modules: lib/modules/VERSION dir or linux-image .deb");
  vm->add_option("--accel", a.accel,
                 "auto|kvm|tcg (auto: KVM only with vmx/svm and a working /dev/kvm)")
      ->check(CLI::IsMember({"auto", "kvm", "tcg"}));
  vm->add_option("--memory", a.memory_mib, "guest memory in MiB")->check(CLI::Range(128u, 65536u));
  vm->add_option("--cpus", a.cpus, "guest CPUs")->check(CLI::Range(1u, 64u));
  vm->add_option("--append", a.append, "extra kernel command line");
  vm->add_option("--timeout", a.timeout, "cap on the whole guest run (e.g. 30m)");
  vm->add_option("--watchdog", a.watchdog,
                 "kill the guest after this long without console output or events (e.g. 120s)");
  vm->add_option("--out", a.out, "host run folder");
  vm->add_option("--disk", a.disk_mib,
                 "scratch virtio disk in MiB (0: none; default: for I/O scenarios)");
  vm->add_option("--module", a.extra_modules,
                 "another module for the guest: a name from the modules tree or a .ko file, "
                 "then insmod parameters (\"fixture.ko pattern=krv* hold_ms=-1\"); repeatable")
      ->take_all();
  vm->add_option("--disk-delay", a.disk_delay,
                 "put dm-delay under the scratch filesystem: this much added to every I/O (e.g. "
                 "20ms)");
  // Filled by main() from everything after "--".
  vm->add_option("guest", a.guest_args, "after --: the krepro command to run in the guest");
  return vm;
}

int vm_main(const VmArgs& a) {
  bool bisect =
      std::find(a.guest_args.begin(), a.guest_args.end(), "--bisect") != a.guest_args.end();
  auto bad = [&](const std::string& m) {
    std::cerr << "krepro vm: " << m << "\n";
    return bisect ? 255 : 2;
  };
  vm::VmConfig c;
  c.kernel = a.kernel;
  c.modules = a.modules;
  auto mode = vm::parse_accel_mode(a.accel);
  if (!mode) return bad(mode.error().message());
  c.accel = *mode;
  c.memory_mib = a.memory_mib;
  c.cpus = a.cpus;
  c.append = a.append;
  c.timeout_s = vm::parse_duration_s(a.timeout);
  if (c.timeout_s <= 0) return bad("--timeout: bad duration '" + a.timeout + "'");
  c.watchdog_s = vm::parse_duration_s(a.watchdog);
  if (c.watchdog_s <= 0) return bad("--watchdog: bad duration '" + a.watchdog + "'");
  c.out = a.out;
  c.scratch_disk_mib = a.disk_mib;
  c.extra_modules = a.extra_modules;
  if (!a.disk_delay.empty()) {
    double d = vm::parse_duration_s(a.disk_delay);
    if (d < 0 || d > 60) return bad("--disk-delay: bad duration '" + a.disk_delay + "'");
    c.disk_delay_ms = static_cast<int>(d * 1000 + 0.5);
  }
  c.guest_args = a.guest_args;
  c.bisect = bisect;
  // The krepro that runs inside the guest: this one unless told otherwise
  // (a sanitizer or debug build, or a test driver that has no `run`).
  if (const char* g = std::getenv("KREPRO_VM_GUEST_BINARY"); g && *g) c.krepro_binary = g;
  return vm::run_vm(c);
}

}  // namespace krepro::app
