// Which qemu accelerator a guest gets. KVM only when the CPU advertises
// hardware virtualisation (vmx/svm in /proc/cpuinfo) AND /dev/kvm opens AND
// KVM_GET_API_VERSION answers KVM_API_VERSION; anything else is TCG. The
// development machines have a nested /dev/kvm without vmx/svm whose guests
// hang (shared KERNEL-NOTES), and this check keeps them on TCG.
#pragma once

#include <string>

#include "harness/util/result.h"

namespace krepro::vm {

enum class AccelMode { kAuto, kKvm, kTcg };

Result<AccelMode> parse_accel_mode(const std::string& s);

struct AccelProbe {
  std::string cpuinfo_path = "/proc/cpuinfo";
  std::string kvm_path = "/dev/kvm";
};

struct AccelChoice {
  std::string accel;   // "kvm" or "tcg", as passed to qemu -accel
  std::string reason;  // why, for the console and summary.json
};

// True when a "flags" line of cpuinfo text lists vmx or svm.
bool cpuinfo_has_virt(const std::string& cpuinfo_text);

// kAuto: kvm when usable, else tcg. kKvm: kvm when usable, else an error
// (never a guest on a device that failed the probe). kTcg: tcg, no probing.
Result<AccelChoice> choose_accel(AccelMode mode, const AccelProbe& probe = {});

}  // namespace krepro::vm
