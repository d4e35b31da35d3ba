// The TiKV-like workload runs in a process of its own, as TiKV runs in its
// container: the tikv-write actor starts `krepro __io-worker` inside the
// workload's memory cgroup (v1 cgroup.procs moves whole processes; v2's
// memory controller has no thread mode) and talks to it over pipes.
#pragma once

#include <nlohmann/json.hpp>

#include "harness/util/result.h"
#include "workloads/tikv_streams.h"

namespace krepro::engine {

inline constexpr const char* kIoWorkerCommand = "__io-worker";

// The worker side: reads one JSON config line from stdin, runs the workload
// until stdin closes, prints one JSON result line to stdout. Returns the
// process exit code.
int io_worker_main();

nlohmann::json tikv_config_to_json(const workloads::TikvConfig& c);
Result<workloads::TikvConfig> tikv_config_from_json(const nlohmann::json& j);

}  // namespace krepro::engine
