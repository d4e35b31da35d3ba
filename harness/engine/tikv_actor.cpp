// tikv-write: the TiKV-like write streams (raft log, kv WAL, memtable flush,
// compaction) in a process of their own inside a kmem-enabled memory
// cgroup, as TiKV runs in its container.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "harness/engine/actor.h"
#include "harness/engine/io_worker.h"
#include "harness/engine/registry.h"
#include "harness/engine/scenario.h"
#include "harness/engine/timeline.h"
#include "harness/kernel/job.h"
#include "harness/util/clock.h"
#include "harness/util/fs.h"

namespace krepro::engine {

namespace {

class TikvWrite final : public Actor {
 public:
  explicit TikvWrite(const CompiledActor& c) : Actor(c.name), p_(c.params) {}
  std::string kind() const override { return "io"; }

  Result<void> prepare(RunContext& ctx) override {
    workloads::TikvConfig c;
    std::string dir = p_.get_string("dir");
    c.dir = dir.empty() ? ctx.scratch_dir : dir;
    KREPRO_TRY(fs::make_dirs(c.dir));
    c.engine = p_.get_string("engine");
    c.seed = ctx.seed;
    c.stall_threshold_ns = ctx.options->get_int("stall_threshold");
    c.raft.enabled = p_.get_bool("raft");
    c.raft.min_record = p_.get_int("raft_min_record");
    c.raft.max_record = p_.get_int("raft_max_record");
    c.raft.batch_records = static_cast<int>(p_.get_int("raft_batch"));
    c.raft.rate.ops_per_s = p_.get_double("raft_rate");
    c.wal.enabled = p_.get_bool("wal");
    c.wal.record = p_.get_int("wal_record");
    c.wal.sync_every = static_cast<int>(p_.get_int("wal_sync_every"));
    c.wal.rotate_bytes = p_.get_int("wal_rotate");
    c.wal.rate.ops_per_s = p_.get_double("wal_rate");
    std::string pre = p_.get_string("prealloc");
    auto pa = pre == "full"        ? workloads::Prealloc::kFull
              : pre == "keep-size" ? workloads::Prealloc::kKeepSize
                                   : workloads::Prealloc::kNone;
    c.wal.prealloc = c.raft.prealloc = pa;
    if (pa == workloads::Prealloc::kFull) c.wal.keep_files = 1;
    c.flush.enabled = p_.get_bool("flush");
    c.flush.min_sst = p_.get_int("sst_min");
    c.flush.max_sst = p_.get_int("sst_max");
    c.flush.interval_s = p_.get_int("flush_interval") / 1e9;
    c.flush.rate.mib_per_s = p_.get_double("flush_mibps");
    c.compaction.enabled = p_.get_bool("compaction");
    c.compaction.rate.mib_per_s = p_.get_double("compaction_mibps");
    config_ = tikv_config_to_json(c);

    if (p_.get_bool("cgroup")) {
      auto parent = ctx.run_cgroup(ctx.cg_version);
      KREPRO_TRY_CTX(parent, "tikv-write " + name_);
      auto cg = kernel::Cgroup::create(*parent, ctx.prefix + "-" + name_, ctx.cg_version);
      KREPRO_TRY_CTX(cg, "tikv-write cgroup");
      cg_ = std::move(*cg);
      if (p_.get_bool("kmem") && ctx.cg_version == kernel::CgroupVersion::kV1)
        kmem_ = cg_.enable_kmem_like_runc();
      procs_.reset(::open((cg_.path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
      if (!procs_) return errno_error("open " + cg_.path() + "/cgroup.procs");
    }
    return {};
  }

  void run(RunContext& ctx, int64_t) override {
    kernel::JobPlacement where;
    if (procs_) where.cgroup_procs_fds.push_back(procs_.get());
    UniqueFd in, out;
    auto job = kernel::Job::exec_piped(where, {"/proc/self/exe", kIoWorkerCommand}, &in, &out);
    if (!job) {
      error_ = job.error().message();
      return;
    }
    std::string cfg = config_.dump() + "\n";
    if (::write(in.get(), cfg.data(), cfg.size()) != static_cast<ssize_t>(cfg.size())) {
      error_ = "io worker: cannot send config";
      return;
    }
    FILE* f = ::fdopen(out.release(), "r");
    auto read_line = [&]() -> std::string {
      std::string line;
      char buf[65536];
      while (std::fgets(buf, sizeof buf, f)) {
        line += buf;
        if (!line.empty() && line.back() == '\n') break;
      }
      return line;
    };
    auto hello = nlohmann::json::parse(read_line(), nullptr, false);
    if (hello.is_discarded() || !hello.value("started", false)) {
      error_ = "io worker did not start: " +
               (hello.is_discarded() ? std::string("no reply") : hello.dump());
    } else {
      engine_ = hello.value("engine", "");
      ctx.events->emit("io_start", {{"actor", name_},
                                    {"engine", engine_},
                                    {"engine_reason", hello.value("engine_reason", "")},
                                    {"cgroup", cg_.path()}});
      progress_->add_alive();
      while (ctx.phase_running()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    in.reset();  // EOF: the worker stops its streams and reports
    std::string line = read_line();
    std::fclose(f);
    auto code = job->wait();
    progress_->alive.store(0);
    auto res = nlohmann::json::parse(line, nullptr, false);
    if (res.is_discarded()) {
      if (error_.empty())
        error_ = "io worker gave no results (exit " + std::to_string(code ? *code : -1) + ")";
      return;
    }
    results_ = std::move(res);
    for (auto& [stream, sj] : results_["streams"].items()) {
      for (const auto& st : sj["stalls"]["events"]) {
        nlohmann::json x = st;
        x["actor"] = name_;
        stalls_.push_back(std::move(x));
      }
    }
    // Stalls go on the timeline at the time they started.
    for (auto& [stream, sj] : results_["streams"].items()) {
      for (const auto& st : sj["stalls"]["events"]) {
        ctx.events->emit("stall",
                         {{"actor", name_},
                          {"stream", stream},
                          {"op", st["op"]},
                          {"ms", st["duration_ns"].get<double>() / 1e6},
                          {"file", st["file"]}},
                         st["start_ns"].get<int64_t>());
      }
    }
    (void)fs::write_file(ctx.out_dir + "/latency/io-" + name_ + ".json", results_.dump() + "\n",
                         true);
  }

  void contribute(RunStats& s) override {
    if (!error_.empty()) {
      s.findings.push_back({{"id", "io-worker-error"},
                            {"detector", "tikv-write"},
                            {"verdict", "error"},
                            {"evidence", {{"message", error_}}}});
    }
    if (results_.is_null()) return;
    s.stalls.insert(s.stalls.end(), stalls_.begin(), stalls_.end());
    nlohmann::json stall_events = nlohmann::json::array();
    uint64_t stall_count = 0;
    for (auto& [stream, sj] : results_["streams"].items()) {
      for (auto& [op, oj] : sj["ops"].items()) {
        nlohmann::json o = oj;
        o["start_ns"] = sj["start_ns"];  // the interval series' second 0
        s.workload[stream + "." + op] = std::move(o);
      }
      stall_count += sj["stalls"]["count"].get<uint64_t>();
      for (const auto& e : sj["stalls"]["events"]) stall_events.push_back(e);
    }
    s.workload["stalls"] = {{"count", stall_count}, {"events", stall_events}};
    s.workload["engine"] = engine_;
    s.use_feature(engine_ == "io_uring" ? "io_uring" : "psync");
    if (kmem_.file_present)
      s.use_feature(kmem_.enforced ? "kmem-enforced" : "kmem-limit-file (not enforced)");
  }

 private:
  Params p_;
  nlohmann::json config_;
  kernel::Cgroup cg_;
  kernel::KmemState kmem_;
  UniqueFd procs_;
  std::string error_, engine_;
  nlohmann::json results_;
  std::vector<nlohmann::json> stalls_;
};

}  // namespace

ActorType tikv_write_type() {
  ActorType t;
  t.name = "tikv-write";
  t.help =
      "TiKV-like write streams (raft log, kv WAL, memtable flush, compaction) in their own memcg";
  t.params = {
      {"dir", ParamType::kString, "", 0, 0,
       "where the files go (default: the run's scratch folder)"},
      {"engine",
       ParamType::kEnum,
       "auto",
       0,
       0,
       "io_uring, psync, or auto (io_uring when usable)",
       {"auto", "io_uring", "psync"}},
      {"cgroup", ParamType::kBool, "true", 0, 0, "run inside a memory cgroup of its own"},
      {"kmem", ParamType::kBool, "true", 0, 0, "enable kmem accounting on it like runc"},
      {"raft", ParamType::kBool, "true", 0, 0, "raft log stream: appends + group-commit fdatasync"},
      {"raft_min_record", ParamType::kSize, "4KiB", 512, 64 << 20, "smallest raft record"},
      {"raft_max_record", ParamType::kSize, "64KiB", 512, 64 << 20, "largest raft record"},
      {"raft_batch", ParamType::kInt, "8", 1, 4096, "records per group commit"},
      {"raft_rate", ParamType::kDouble, "0", 0, 1e6, "raft records/s; 0: as fast as possible"},
      {"wal", ParamType::kBool, "true", 0, 0, "kv WAL stream: appends + fdatasync"},
      {"wal_record", ParamType::kSize, "4KiB", 512, 64 << 20, "WAL append size"},
      {"wal_sync_every", ParamType::kInt, "1", 1, 4096, "fdatasync after this many appends"},
      {"wal_rotate", ParamType::kSize, "64MiB", 1 << 20, 64.0 * (1 << 30),
       "WAL file size before rotating"},
      {"wal_rate", ParamType::kDouble, "0", 0, 1e6, "WAL appends/s; 0: as fast as possible"},
      {"prealloc",
       ParamType::kEnum,
       "none",
       0,
       0,
       "log preallocation: none, keep-size (as RocksDB), full (as fio's fallocate=native)",
       {"none", "keep-size", "full"}},
      {"flush", ParamType::kBool, "true", 0, 0,
       "memtable flush stream: SST in 1 MiB writes + fsync"},
      {"sst_min", ParamType::kSize, "8MiB", 1 << 20, 4.0 * (1 << 30), "smallest SST"},
      {"sst_max", ParamType::kSize, "64MiB", 1 << 20, 4.0 * (1 << 30), "largest SST"},
      {"flush_interval", ParamType::kDuration, "1s", 1e6, 3600e9, "time between flushes"},
      {"flush_mibps", ParamType::kDouble, "0", 0, 1e5, "flush MiB/s; 0: unlimited"},
      {"compaction", ParamType::kBool, "true", 0, 0,
       "compaction stream: read SSTs, write merged, fsync"},
      {"compaction_mibps", ParamType::kDouble, "0", 0, 1e5, "compaction MiB/s; 0: unlimited"},
  };
  t.requires_features = {"root"};
  t.make = [](const CompiledActor& c) { return std::make_unique<TikvWrite>(c); };
  return t;
}

}  // namespace krepro::engine
