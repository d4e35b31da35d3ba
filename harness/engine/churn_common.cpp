#include "harness/engine/churn_common.h"

namespace krepro::engine {

std::vector<ParamSpec> churn_param_specs(int64_t default_alive) {
  return {
      {"count",
       ParamType::kInt,
       "0",
       0,
       10'000'000,
       "cycles to run (create+job+destroy); 0: until the phase ends",
       {},
       true},
      {"alive",
       ParamType::kInt,
       std::to_string(default_alive),
       1,
       100'000,
       "objects kept alive at once (oldest destroyed first)",
       {},
       true},
      {"rate", ParamType::kDouble, "0", 0, 1'000'000, "cycles per second; 0: as fast as possible"},
      {"workers", ParamType::kInt, "1", 1, 64, "worker threads"},
  };
}

std::vector<ParamSpec> payload_param_specs(const std::string& default_kind) {
  return {
      {"payload",
       ParamType::kEnum,
       default_kind,
       0,
       0,
       "what each job does",
       {"none", "write", "files", "sockets", "sleep", "pmtu"}},
      {"payload_size", ParamType::kSize, "4KiB", 0, 1024.0 * 1024 * 1024,
       "write: bytes written to the job's file"},
      {"payload_files", ParamType::kInt, "16", 0, 100000, "files: small files created"},
      {"payload_sockets", ParamType::kInt, "4", 0, 4096, "sockets: sockets opened and bound"},
      {"payload_hold", ParamType::kDuration, "0s", 0, 3600e9, "job stays alive this long"},
      {"payload_fsync", ParamType::kBool, "false", 0, 0, "write: fsync the file"},
      {"keep_files", ParamType::kBool, "false", 0, 0,
       "leave job files behind (their page cache pins dying memcgs)"},
  };
}

workloads::PayloadSpec payload_from_params(const Params& p) {
  workloads::PayloadSpec s;
  workloads::parse_payload_kind(p.get_string("payload"), &s.kind);
  s.size_kib = static_cast<uint32_t>((p.get_int("payload_size") + 1023) / 1024);
  s.files = static_cast<uint32_t>(p.get_int("payload_files"));
  s.sockets = static_cast<uint32_t>(p.get_int("payload_sockets"));
  s.hold_ms = static_cast<uint32_t>(p.get_int("payload_hold") / 1'000'000);
  s.fsync = p.get_bool("payload_fsync");
  s.keep = p.get_bool("keep_files");
  return s;
}

}  // namespace krepro::engine
