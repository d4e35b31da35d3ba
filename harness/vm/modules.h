// Kernel module dependency resolution for guest images: which .ko files an
// initramfs needs, in the order insmod must load them (dependencies first).
// Reads modules.dep (scripts/mod/modpost + depmod output:
// "kernel/a/x.ko: kernel/b/y.ko kernel/c/z.ko") when present; Debian's
// linux-image package ships none, so without it the dependencies come from
// each module's .modinfo "depends=" string, which modpost writes
// (scripts/mod/modpost.c add_depends) and which depmod itself reads.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "harness/util/result.h"

namespace krepro::vm {

// "dm-delay", "dm_delay.ko", "kernel/drivers/md/dm-delay.ko.xz" → "dm_delay"
// (the kernel treats - and _ in module names alike: kernel/params.c
// parameq, scripts/mod/modpost.c).
std::string module_name(std::string_view name_or_path);

struct ModuleInfo {
  std::string path;               // relative to the modules dir
  std::vector<std::string> deps;  // module names
};

class ModuleIndex {
 public:
  // modules.dep text (paths relative to the modules dir).
  static Result<ModuleIndex> from_modules_dep(const std::string& text);
  // A modules dir (lib/modules/VERSION): modules.dep when it exists and is
  // non-empty, else every .ko under kernel/ with its .modinfo.
  static Result<ModuleIndex> load(const std::string& modules_dir);

  // Marks names in modules.builtin text as built in (resolved to nothing).
  void add_builtin(const std::string& modules_builtin_text);
  void add(const std::string& name, ModuleInfo info) { mods_[name] = std::move(info); }

  // The .ko paths for `names` and their dependencies, dependencies first,
  // each once. Built-in names resolve to nothing; unknown names are listed
  // in *missing (when given) instead of failing, since a scenario may ask
  // for something this kernel does not have.
  Result<std::vector<std::string>> resolve(const std::vector<std::string>& names,
                                           std::vector<std::string>* missing = nullptr) const;

  size_t size() const { return mods_.size(); }
  bool builtin(const std::string& name) const { return builtin_.count(module_name(name)) != 0; }

 private:
  std::map<std::string, ModuleInfo> mods_;
  std::set<std::string> builtin_;
};

// The NUL-separated key=value strings of an ELF object's .modinfo section.
Result<std::map<std::string, std::string>> read_modinfo(const std::string& ko_bytes);

}  // namespace krepro::vm
