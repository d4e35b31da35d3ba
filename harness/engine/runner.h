// The runner: executes a compiled scenario phase by phase, samples the time
// series, tears everything down and hands back the summary.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/engine/actor.h"
#include "harness/engine/scenario.h"
#include "harness/kernel/host_probe.h"

namespace krepro::engine {

struct RunOptions {
  std::string out_dir;  // created if missing
  std::string journal_dir = "/run/krepro";
  uint64_t seed = 0;         // 0: from the clock
  bool status_line = false;  // live line on stderr
  std::string run_id;        // empty: random
  std::string tee_events;    // also write every event line here (VM serial port)
};

// Detectors and collectors hook in here (harness/detect); the runner calls
// them at run start, on each sample, and at the end.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual std::string name() const = 0;
  virtual Result<void> start(RunContext& ctx) { return {}; }
  virtual void sample(RunContext& ctx, int64_t now_ns) {}
  virtual void phase_changed(RunContext& ctx, const std::string& phase, int64_t now_ns) {}
  // After the last phase and teardown: findings, leaks, signatures.
  virtual void finish(RunContext& ctx, RunStats& stats, nlohmann::json& summary) {}
  // Number of findings so far (for the status line).
  virtual size_t findings() const { return 0; }
};

struct RunOutcome {
  nlohmann::json summary;
  int exit_code = 0;  // DESIGN.md: 0 not reproduced, 1 reproduced, 3 harness failure, 4 skipped
};

// Verdict from findings: "reproduced" when any finding says so, else
// "not_reproduced" (suspect findings are listed, they do not flip it).
std::string verdict_of(const std::vector<nlohmann::json>& findings);
int exit_code_of(const std::string& verdict);

RunOutcome run_scenario(const CompiledScenario& sc, const RunOptions& opts,
                        const kernel::HostProbe& host, StopState& stop,
                        std::vector<std::unique_ptr<RunObserver>> observers);

// Features a scenario needs that the host lacks ("netns (unshare: EPERM)").
std::vector<std::string> missing_features(const CompiledScenario& sc,
                                          const kernel::HostProbe& host);

}  // namespace krepro::engine
