// Run observers that watch the kernel while a scenario runs: its log
// (/dev/kmsg through the signature table), taint, tasks stuck in D state,
// namespaces dropped but not freed, and dying memory cgroups. At the end
// they turn what they saw into findings with verdicts.
#pragma once

#include <memory>
#include <vector>

#include "harness/engine/registry.h"
#include "harness/engine/runner.h"

namespace krepro::detect {

struct WatchPaths {
  std::string kmsg = "/dev/kmsg";
  std::string proc = "/proc";
};

// kmsg signatures + taint.
std::unique_ptr<engine::RunObserver> make_kmsg_detector(const WatchPaths& p = {});
// D-state tasks (krepro's own first, then all), joined with hung-task records.
std::unique_ptr<engine::RunObserver> make_dstate_detector(const WatchPaths& p = {});
// Dropped namespaces not freed after netns_free_limit; the netdev verdict.
std::unique_ptr<engine::RunObserver> make_netns_detector();
// Live vs dying memcgs, mkdir ENOSPC with few alive (the memcg-ID leak).
std::unique_ptr<engine::RunObserver> make_memcg_detector(const WatchPaths& p = {});

// All of the above, in the order they run.
std::vector<std::unique_ptr<engine::RunObserver>> make_builtin_detectors(const WatchPaths& p = {});
void register_builtin_detectors(engine::Registry& reg);

}  // namespace krepro::detect
