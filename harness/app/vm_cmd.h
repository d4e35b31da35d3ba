// `krepro vm`: run a krepro command inside a qemu guest (harness/vm).
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace krepro::app {

struct VmArgs {
  std::string kernel;
  std::string modules;  // lib/modules/VERSION dir or linux-image .deb
  std::string accel = "auto";
  unsigned memory_mib = 1024;
  unsigned cpus = 2;
  std::string append;
  std::string timeout = "30m";
  std::string watchdog = "120s";
  std::string out;
  int disk_mib = -1;  // -1: when the scenario does I/O
  std::vector<std::string> extra_modules;
  std::string disk_delay;               // "" / "0": none
  std::vector<std::string> guest_args;  // after "--": run SCENARIO [run options]
};

// Adds the `vm` subcommand, filling `a` on parse.
CLI::App* add_vm_subcommand(CLI::App& app, VmArgs& a);
int vm_main(const VmArgs& a);

}  // namespace krepro::app
