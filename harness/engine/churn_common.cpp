#include "harness/engine/churn_common.h"

#include "harness/engine/timeline.h"
#include "workloads/payload_spawner.h"

namespace krepro::engine {

ChurnActor::ChurnActor(std::string name, const Params& p, std::string kind)
    : Actor(std::move(name)), p_(p), kind_(std::move(kind)) {
  count_ = static_cast<uint64_t>(p_.get_int("count"));
  alive_ = p_.get_int("alive");
  workers_ = static_cast<int>(p_.get_int("workers"));
}

void ChurnActor::run(RunContext& ctx, int64_t) {
  std::vector<std::thread> threads;
  stats_.resize(workers_);
  for (int w = 0; w < workers_; ++w) threads.emplace_back([this, &ctx, w] { worker(ctx, w); });
  for (auto& t : threads) t.join();
}

bool ChurnActor::want_more() {
  if (count_ == 0) return true;
  uint64_t n = issued_.fetch_add(1);
  if (n < count_) return true;
  issued_.fetch_sub(1);
  return false;
}

int64_t ChurnActor::alive_target(int w) const {
  return std::max<int64_t>(1, alive_ / workers_ + (w < alive_ % workers_ ? 1 : 0));
}

void ChurnActor::note_error(RunContext& ctx, WorkerStats& st, const std::string& op,
                            const Error& e) {
  st.error(op, e.err());
  uint64_t n = progress_->errors.fetch_add(1, std::memory_order_relaxed);
  if (n < 20 || n % 1000 == 0) {
    ctx.events->emit("churn_error", {{"actor", name_},
                                     {"kind", kind_},
                                     {"op", op},
                                     {"errno", errno_name(e.err())},
                                     {"message", e.message()},
                                     {"alive", progress_->alive.load()},
                                     {"nth", n + 1}});
  }
}

void JobLauncher::prepare() {
  if (short_payload(spec_) || tried_) return;
  tried_ = true;
  auto s = kernel::Spawner::start_self();
  if (s)
    spawner_ = std::move(*s);
  else
    fallback_ = std::move(s.error());
}

Result<kernel::Job> JobLauncher::start(const kernel::JobPlacement& where, const std::string& path) {
  const workloads::PayloadSpec& spec = spec_;
  const char* p = path.c_str();
  auto body = [&spec, p] { return workloads::run_payload(spec, p); };
  if (short_payload(spec)) {
    last_ = Via::kVfork;
    return kernel::Job::vfork_payload(where, body);
  }
  prepare();
  if (spawner_) {
    if (spawner_->alive()) {
      last_ = Via::kSpawner;
      // A failed request is this job's error (bad fd, ...), not a reason
      // to fork: the spawner stays usable unless it died.
      return workloads::spawn_payload(*spawner_, where, spec, path);
    }
    fallback_ = Error(EPIPE, "job spawner " + std::to_string(spawner_->pid()) +
                                 " died; forking jobs from here on");
    spawner_.reset();
  }
  last_ = Via::kFork;
  return kernel::Job::fork_payload(where, body);
}

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
