#include "harness/engine/io_worker.h"

#include <unistd.h>

#include <iostream>
#include <string>

namespace krepro::engine {

namespace {

std::string prealloc_name(workloads::Prealloc p) {
  switch (p) {
    case workloads::Prealloc::kNone:
      return "none";
    case workloads::Prealloc::kKeepSize:
      return "keep-size";
    case workloads::Prealloc::kFull:
      return "full";
  }
  return "none";
}

workloads::Prealloc prealloc_of(const std::string& s) {
  if (s == "keep-size") return workloads::Prealloc::kKeepSize;
  if (s == "full") return workloads::Prealloc::kFull;
  return workloads::Prealloc::kNone;
}

nlohmann::json rate_json(const workloads::RateLimit& r) {
  return {{"ops_per_s", r.ops_per_s}, {"mib_per_s", r.mib_per_s}};
}
workloads::RateLimit rate_of(const nlohmann::json& j) {
  return {j.value("ops_per_s", 0.0), j.value("mib_per_s", 0.0)};
}

}  // namespace

nlohmann::json tikv_config_to_json(const workloads::TikvConfig& c) {
  return {{"dir", c.dir},
          {"engine", c.engine},
          {"seed", c.seed},
          {"stall_threshold_ns", c.stall_threshold_ns},
          {"raft",
           {{"enabled", c.raft.enabled},
            {"min_record", c.raft.min_record},
            {"max_record", c.raft.max_record},
            {"batch_records", c.raft.batch_records},
            {"batch_ms", c.raft.batch_ms},
            {"rotate_bytes", c.raft.rotate_bytes},
            {"prealloc", prealloc_name(c.raft.prealloc)},
            {"rate", rate_json(c.raft.rate)}}},
          {"wal",
           {{"enabled", c.wal.enabled},
            {"record", c.wal.record},
            {"sync_every", c.wal.sync_every},
            {"rotate_bytes", c.wal.rotate_bytes},
            {"keep_files", c.wal.keep_files},
            {"prealloc", prealloc_name(c.wal.prealloc)},
            {"rate", rate_json(c.wal.rate)}}},
          {"flush",
           {{"enabled", c.flush.enabled},
            {"min_sst", c.flush.min_sst},
            {"max_sst", c.flush.max_sst},
            {"interval_s", c.flush.interval_s},
            {"max_ssts", c.flush.max_ssts},
            {"rate", rate_json(c.flush.rate)}}},
          {"compaction",
           {{"enabled", c.compaction.enabled},
            {"trigger", c.compaction.trigger},
            {"inputs", c.compaction.inputs},
            {"rate", rate_json(c.compaction.rate)}}}};
}

Result<workloads::TikvConfig> tikv_config_from_json(const nlohmann::json& j) {
  try {
    workloads::TikvConfig c;
    c.dir = j.at("dir").get<std::string>();
    c.engine = j.value("engine", "auto");
    c.seed = j.value("seed", uint64_t{1});
    c.stall_threshold_ns = j.value("stall_threshold_ns", c.stall_threshold_ns);
    const auto& r = j.at("raft");
    c.raft.enabled = r.value("enabled", true);
    c.raft.min_record = r.value("min_record", c.raft.min_record);
    c.raft.max_record = r.value("max_record", c.raft.max_record);
    c.raft.batch_records = r.value("batch_records", c.raft.batch_records);
    c.raft.batch_ms = r.value("batch_ms", c.raft.batch_ms);
    c.raft.rotate_bytes = r.value("rotate_bytes", c.raft.rotate_bytes);
    c.raft.prealloc = prealloc_of(r.value("prealloc", "none"));
    c.raft.rate = rate_of(r.at("rate"));
    const auto& w = j.at("wal");
    c.wal.enabled = w.value("enabled", true);
    c.wal.record = w.value("record", c.wal.record);
    c.wal.sync_every = w.value("sync_every", c.wal.sync_every);
    c.wal.rotate_bytes = w.value("rotate_bytes", c.wal.rotate_bytes);
    c.wal.keep_files = w.value("keep_files", c.wal.keep_files);
    c.wal.prealloc = prealloc_of(w.value("prealloc", "none"));
    c.wal.rate = rate_of(w.at("rate"));
    const auto& f = j.at("flush");
    c.flush.enabled = f.value("enabled", true);
    c.flush.min_sst = f.value("min_sst", c.flush.min_sst);
    c.flush.max_sst = f.value("max_sst", c.flush.max_sst);
    c.flush.interval_s = f.value("interval_s", c.flush.interval_s);
    c.flush.max_ssts = f.value("max_ssts", c.flush.max_ssts);
    c.flush.rate = rate_of(f.at("rate"));
    const auto& k = j.at("compaction");
    c.compaction.enabled = k.value("enabled", true);
    c.compaction.trigger = k.value("trigger", c.compaction.trigger);
    c.compaction.inputs = k.value("inputs", c.compaction.inputs);
    c.compaction.rate = rate_of(k.at("rate"));
    return c;
  } catch (const nlohmann::json::exception& e) {
    return make_error(EINVAL, std::string("io worker config: ") + e.what());
  }
}

int io_worker_main() {
  std::string line;
  if (!std::getline(std::cin, line)) {
    std::cout << nlohmann::json{{"error", "no config on stdin"}}.dump() << std::endl;
    return 2;
  }
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) {
    std::cout << nlohmann::json{{"error", "config is not JSON"}}.dump() << std::endl;
    return 2;
  }
  auto cfg = tikv_config_from_json(j);
  if (!cfg) {
    std::cout << nlohmann::json{{"error", cfg.error().message()}}.dump() << std::endl;
    return 2;
  }
  auto w = workloads::TikvWorkload::create(std::move(*cfg));
  if (!w) {
    std::cout << nlohmann::json{{"error", w.error().message()}}.dump() << std::endl;
    return 3;
  }
  if (auto s = (*w)->start(); !s) {
    std::cout << nlohmann::json{{"error", s.error().message()}}.dump() << std::endl;
    return 3;
  }
  std::cout << nlohmann::json{{"started", true},
                              {"engine", (*w)->engine_name()},
                              {"engine_reason", (*w)->engine_reason()},
                              {"pid", ::getpid()}}
                   .dump()
            << std::endl;
  // Runs until the actor closes our stdin (end of phase, or the parent died:
  // PR_SET_PDEATHSIG also kills us then).
  while (std::getline(std::cin, line)) {
  }
  auto rep = (*w)->stop();
  nlohmann::json out = (*w)->results();
  out["stop"] = {{"join_ns", rep.join_ns}, {"notes", rep.notes}, {"errors", rep.errors}};
  out["disk_bytes_max"] = (*w)->config().max_disk_bytes();
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return rep.errors.empty() ? 0 : 1;
}

}  // namespace krepro::engine
