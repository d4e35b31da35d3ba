#include "harness/vm/accel.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <sstream>

#include "harness/util/fs.h"
#include "harness/util/unique_fd.h"

namespace krepro::vm {

Result<AccelMode> parse_accel_mode(const std::string& s) {
  if (s == "auto") return AccelMode::kAuto;
  if (s == "kvm") return AccelMode::kKvm;
  if (s == "tcg") return AccelMode::kTcg;
  return make_error(EINVAL, "--accel: '" + s + "' is not one of auto, kvm, tcg");
}

bool cpuinfo_has_virt(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    for (const auto& f : fs::split(line.substr(colon + 1), ' '))
      if (f == "vmx" || f == "svm") return true;
  }
  return false;
}

namespace {
// Returns an empty string when KVM is usable, else why not.
std::string kvm_unusable(const AccelProbe& p) {
  auto cpuinfo = fs::read_file(p.cpuinfo_path);
  if (!cpuinfo) return "cannot read " + p.cpuinfo_path;
  // Checked first so that a host without vmx/svm never even opens /dev/kvm.
  if (!cpuinfo_has_virt(*cpuinfo)) return p.cpuinfo_path + " lists neither vmx nor svm";
  UniqueFd fd(::open(p.kvm_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return "cannot open " + p.kvm_path;
  // virt/kvm/kvm_main.c kvm_dev_ioctl: KVM_GET_API_VERSION returns
  // KVM_API_VERSION (12); any other answer is not a KVM we know.
  int v = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (v != KVM_API_VERSION)
    return p.kvm_path + ": KVM_GET_API_VERSION answered " + std::to_string(v);
  return {};
}
}  // namespace

Result<AccelChoice> choose_accel(AccelMode mode, const AccelProbe& probe) {
  if (mode == AccelMode::kTcg) return AccelChoice{"tcg", "--accel tcg"};
  std::string why = kvm_unusable(probe);
  if (why.empty())
    return AccelChoice{"kvm", "hardware virtualisation and a working " + probe.kvm_path};
  if (mode == AccelMode::kKvm) return make_error(ENODEV, "--accel kvm: " + why);
  return AccelChoice{"tcg", "KVM not usable: " + why};
}

}  // namespace krepro::vm
