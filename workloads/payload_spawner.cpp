#include "workloads/payload_spawner.h"

#include <cerrno>
#include <cstring>
#include <type_traits>

namespace krepro::workloads {

namespace {

static_assert(std::is_trivially_copyable_v<PayloadSpec>, "PayloadSpec travels as bytes");

// In the spawned child: the payload bytes back into a spec, then the same
// run_payload the fork and vfork paths run.
int run_spawned(const void* bytes, size_t len, const char* path) {
  if (len != sizeof(PayloadSpec)) return EINVAL;
  PayloadSpec spec;
  std::memcpy(&spec, bytes, sizeof spec);
  return run_payload(spec, path);
}

}  // namespace

Result<kernel::Job> spawn_payload(kernel::Spawner& s, const kernel::JobPlacement& where,
                                  const PayloadSpec& spec, const std::string& path) {
  return s.spawn(where, &spec, sizeof spec, path);
}

int payload_spawner_main() { return kernel::spawner_main(kernel::kSpawnerFd, run_spawned); }

}  // namespace krepro::workloads
