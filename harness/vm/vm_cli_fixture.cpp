// Test driver: `krepro vm` alone, for tests that run ci/bisect-step or
// ci/nightly before the subcommand is wired into harness/app/main.cpp. The
// guest still runs the real krepro (KREPRO_VM_GUEST_BINARY).
#include <CLI/CLI.hpp>

#include "harness/app/vm_cmd.h"

int main(int argc, char** argv) {
  CLI::App app{"krepro (vm only, test driver)"};
  app.require_subcommand(1);
  krepro::app::VmArgs va;
  auto* vm = krepro::app::add_vm_subcommand(app, va);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return *vm ? krepro::app::vm_main(va) : 2;
}
