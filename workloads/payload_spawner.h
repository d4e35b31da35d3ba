// Job payloads run by the job spawner (harness/kernel/spawner.h): the
// spawner side (`krepro __job-spawner`) and the owner's call.
#pragma once

#include <string>

#include "harness/kernel/job.h"
#include "harness/kernel/spawner.h"
#include "harness/util/result.h"
#include "workloads/payload.h"

namespace krepro::workloads {

// Starts run_payload(spec, path) as a child of the spawner, placed as
// `where` says. The spec travels as its bytes: both ends are the same
// executable.
Result<kernel::Job> spawn_payload(kernel::Spawner& s, const kernel::JobPlacement& where,
                                  const PayloadSpec& spec, const std::string& path);

// main() of `krepro __job-spawner`: serves kernel::kSpawnerFd with
// run_payload.
int payload_spawner_main();

}  // namespace krepro::workloads
