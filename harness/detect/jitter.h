// The writeback jitter detector: compares the I/O workload's latencies in a
// baseline phase (the first phase that ran the workload) with each later
// phase, lists the stalls with their times, their clustering near multiples
// of 5 s (block/bio.c bvec_alloc falls back to mempool_alloc, whose waits
// are 5 s io_schedule_timeouts in mm/mempool.c) and, where the io-trace
// observer attributed them, the kernel layer the time went to.
#pragma once

#include <memory>

#include "harness/engine/runner.h"

namespace krepro::detect {

std::unique_ptr<engine::RunObserver> make_jitter_detector();

// Pure part, for tests: phases = summary["phases"], stalls as in RunStats,
// attribution = summary["stall_attribution"] (may be null), signatures =
// summary["signatures"], kernel_io = summary["kernel_io"] (its kprobe
// function latencies: waits in mempool_alloc/bvec_alloc over the kprobe
// threshold, per phase, are kernel evidence of the mempool fallback).
nlohmann::json jitter_finding(const nlohmann::json& phases,
                              const std::vector<nlohmann::json>& stalls,
                              const nlohmann::json& attribution, const nlohmann::json& signatures,
                              int64_t t0_ns, const nlohmann::json& kernel_io = nullptr);

// Two-sided Mann-Whitney U test of two samples (normal approximation with
// tie correction): the p-value that they come from one distribution.
// Returns 1 when either side has fewer than 2 values.
double mann_whitney_p(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace krepro::detect
