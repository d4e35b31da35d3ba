#include "workloads/tikv_streams.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <system_error>

#include "harness/util/clock.h"
#include "harness/util/unique_fd.h"

namespace krepro::workloads {

namespace stdfs = std::filesystem;

uint64_t TikvConfig::max_disk_bytes() const {
  uint64_t total = 0;
  auto keep = [](int k) { return static_cast<uint64_t>(std::max(k, 1)); };
  if (raft.enabled) total += keep(raft.keep_files) * std::max(raft.rotate_bytes, raft.max_record);
  if (wal.enabled) total += keep(wal.keep_files) * std::max(wal.rotate_bytes, wal.record);
  // At most max_ssts SSTs (live + claimed by compaction, a flush makes room
  // first) plus one compaction output in flight.
  if (flush.enabled) total += static_cast<uint64_t>(flush.max_ssts + 1) * flush.max_sst;
  return total;
}

TikvConfig wal_append_config(std::string dir) {
  TikvConfig c;
  c.dir = std::move(dir);
  c.raft.enabled = false;
  c.flush.enabled = false;
  c.compaction.enabled = false;
  c.wal.record = 4 * kKiB;
  c.wal.sync_every = 1;
  c.wal.rotate_bytes = 256 * kMiB;
  c.wal.keep_files = 1;
  c.wal.prealloc = Prealloc::kFull;
  return c;
}

// The SSTs shared by the flush and compaction streams, oldest first.
struct TikvWorkload::SstSet {
  std::deque<std::string> live;
  int claimed = 0;  // inputs of the compaction in progress
  uint64_t next_id = 1;
};

struct TikvWorkload::Stream {
  std::string name;
  std::string dir;
  std::unique_ptr<IoEngine> engine;
  OpRecorder rec;
  std::mt19937_64 rng;
  std::vector<char> buf;
  std::string error;
  // The op in flight, for stop()'s report: start time (0 when idle) and kind.
  std::atomic<int64_t> inflight_since{0};
  std::atomic<int> inflight_op{0};

  Stream(std::string n, int64_t start, uint64_t seed)
      : name(std::move(n)), rec(name, start), rng(seed) {}
};

namespace {

// Sleeps to hold a stream to its rate limit: the next I/O may start once the
// previous ones' cost (1/ops_per_s, or bytes/MiB_per_s) has elapsed.
class Pacer {
 public:
  explicit Pacer(RateLimit r) : rate_(r) {}
  int64_t ready_at() const { return next_ns_; }
  void charge(uint64_t bytes, int64_t now) {
    int64_t cost = 0;
    if (rate_.ops_per_s > 0)
      cost = std::max<int64_t>(cost, static_cast<int64_t>(1e9 / rate_.ops_per_s));
    if (rate_.mib_per_s > 0) {
      cost = std::max<int64_t>(
          cost, static_cast<int64_t>(static_cast<double>(bytes) * 1e9 / (rate_.mib_per_s * kMiB)));
    }
    next_ns_ = std::max(next_ns_, now) + cost;
  }
  bool limited() const { return rate_.ops_per_s > 0 || rate_.mib_per_s > 0; }

 private:
  RateLimit rate_;
  int64_t next_ns_ = 0;
};

uint64_t uniform(std::mt19937_64& rng, uint64_t lo, uint64_t hi) {
  if (hi <= lo) return lo;
  return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
}

std::string numbered(const std::string& dir, const char* prefix, uint64_t id, const char* ext) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-%06llu.%s", prefix, static_cast<unsigned long long>(id),
                ext);
  return dir + "/" + name;
}

}  // namespace

// The stream loops; a friend of TikvWorkload.
struct StreamRunner {
  TikvWorkload& w;
  TikvWorkload::Stream& s;

  bool stopping() const { return w.stop_.load(std::memory_order_relaxed); }

  // Sleeps until mono time t; false when stop was asked.
  bool sleep_until(int64_t t) {
    std::unique_lock lk(w.mu_);
    auto tp = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(t));
    // steady_clock is CLOCK_MONOTONIC on Linux (libstdc++), the clock of mono_ns.
    w.cv_.wait_until(lk, tp, [&] { return stopping(); });
    return !stopping();
  }

  bool pace(Pacer& p, uint64_t bytes) {
    if (!p.limited()) return !stopping();
    int64_t now = mono_ns();
    if (p.ready_at() > now && !sleep_until(p.ready_at())) return false;
    p.charge(bytes, mono_ns());
    return !stopping();
  }

  template <class F>
  auto timed(Op op, const std::string& file, F&& fn) {
    const int64_t t0 = mono_ns();
    s.inflight_op.store(static_cast<int>(op), std::memory_order_relaxed);
    s.inflight_since.store(t0, std::memory_order_relaxed);
    auto r = fn();
    const int64_t t1 = mono_ns();
    s.inflight_since.store(0, std::memory_order_relaxed);
    s.rec.record(op, t0, t1, file);
    w.ops_done_.fetch_add(1, std::memory_order_relaxed);
    return r;
  }

  Result<void> unlink_file(const std::string& path) {
    return timed(Op::kUnlink, path, [&]() -> Result<void> {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("unlink " + path);
      return {};
    });
  }

  // ---- append-only logs (raft log, kv WAL) ----
  struct Log {
    const char* prefix;
    uint64_t rotate_bytes;
    int keep;
    Prealloc prealloc;
    UniqueFd fd;
    std::string path;
    uint64_t off = 0;
    uint64_t id = 0;
    std::deque<std::string> files;
  };

  Result<void> open_next(Log& log) {
    log.fd.reset();
    // Delete the oldest logs first, so that the files never exceed keep
    // (a fallocated log takes its full size the moment it is opened).
    while (static_cast<int>(log.files.size()) >= std::max(log.keep, 1)) {
      KREPRO_TRY(unlink_file(log.files.front()));
      log.files.pop_front();
    }
    log.path = numbered(s.dir, log.prefix, ++log.id, "log");
    log.fd.reset(::open(log.path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644));
    if (!log.fd) return errno_error("open " + log.path);
    log.off = 0;
    log.files.push_back(log.path);
    if (log.prealloc != Prealloc::kNone) {
      // fs/ext4/extents.c ext4_fallocate makes unwritten extents; they are
      // converted after each write I/O completes (fs/ext4/page-io.c
      // ext4_end_io_rsv_work, on the ext4-rsv-conversion workqueue). Mode 0
      // also sets i_size up front, so an fdatasync has no size change to
      // write (fs/ext4/fsync.c ext4_sync_file, datasync=1). fio's default
      // fallocate=native is fallocate(fd, 0, 0, size).
      int mode = log.prealloc == Prealloc::kKeepSize ? FALLOC_FL_KEEP_SIZE : 0;
      if (::fallocate(log.fd.get(), mode, 0, static_cast<off_t>(log.rotate_bytes)) != 0) {
        return errno_error("fallocate " + log.path);
      }
    }
    return {};
  }

  Result<void> append(Log& log, uint64_t len) {
    if (!log.fd || (log.off > 0 && log.off + len > log.rotate_bytes)) KREPRO_TRY(open_next(log));
    KREPRO_TRY(timed(Op::kWrite, log.path, [&] {
      return s.engine->write_all(log.fd.get(), s.buf.data(), len, log.off);
    }));
    log.off += len;
    return {};
  }

  Result<void> datasync(Log& log) {
    return timed(Op::kFdatasync, log.path, [&] { return s.engine->fdatasync(log.fd.get()); });
  }

  Result<void> run_raft() {
    const auto& c = w.config_.raft;
    Log log{"raft", c.rotate_bytes, c.keep_files, c.prealloc, {}, {}, 0, 0, {}};
    Pacer pacer(c.rate);
    int batch = 0;
    int64_t batch_deadline = 0;
    const auto batch_ns = static_cast<int64_t>(c.batch_ms * 1e6);
    while (!stopping()) {
      const uint64_t len = uniform(s.rng, c.min_record, c.max_record);
      // Group commit: a batch is synced when full, or when its time is up
      // before the next record may be appended.
      if (batch > 0 && pacer.limited() && pacer.ready_at() > batch_deadline) {
        if (!sleep_until(batch_deadline)) break;
        KREPRO_TRY(datasync(log));
        batch = 0;
      }
      if (!pace(pacer, len)) break;
      KREPRO_TRY(append(log, len));
      if (batch++ == 0) batch_deadline = mono_ns() + batch_ns;
      if (batch >= c.batch_records || mono_ns() >= batch_deadline) {
        KREPRO_TRY(datasync(log));
        batch = 0;
      }
    }
    if (batch > 0) KREPRO_TRY(datasync(log));
    return {};
  }

  Result<void> run_wal() {
    const auto& c = w.config_.wal;
    Log log{"wal", c.rotate_bytes, c.keep_files, c.prealloc, {}, {}, 0, 0, {}};
    Pacer pacer(c.rate);
    int pending = 0;
    while (!stopping()) {
      if (!pace(pacer, c.record)) break;
      KREPRO_TRY(append(log, c.record));
      if (++pending >= std::max(c.sync_every, 1)) {
        KREPRO_TRY(datasync(log));
        pending = 0;
      }
    }
    if (pending > 0) KREPRO_TRY(datasync(log));
    return {};
  }

  // ---- SSTs (flush, compaction) ----

  // Writes len bytes to fd in chunk-sized writes; false when stopped midway.
  Result<bool> write_sst(int fd, const std::string& path, uint64_t len, uint64_t chunk,
                         Pacer& pacer, uint64_t* off) {
    while (*off < len) {
      const uint64_t n = std::min(chunk, len - *off);
      if (!pace(pacer, n)) return false;
      KREPRO_TRY(
          timed(Op::kWrite, path, [&] { return s.engine->write_all(fd, s.buf.data(), n, *off); }));
      *off += n;
    }
    return true;
  }

  Result<void> run_flush() {
    const auto& c = w.config_.flush;
    Pacer pacer(c.rate);
    auto& set = *w.ssts_;
    int64_t next = mono_ns();
    const auto interval = static_cast<int64_t>(c.interval_s * 1e9);
    while (!stopping()) {
      if (!sleep_until(next)) break;
      next = std::max(next + interval, mono_ns());
      // Make room: keep at most max_ssts, deleting the oldest; if all are
      // claimed by compaction, wait for it (a write stall, as in RocksDB).
      std::string victim, path;
      {
        std::unique_lock lk(w.mu_);
        w.cv_.wait(lk, [&] {
          return stopping() || static_cast<int>(set.live.size()) + set.claimed < c.max_ssts ||
                 !set.live.empty();
        });
        if (stopping()) break;
        if (static_cast<int>(set.live.size()) + set.claimed >= c.max_ssts) {
          victim = set.live.front();
          set.live.pop_front();
        }
        path = numbered(s.dir, "sst", set.next_id++, "sst");
      }
      if (!victim.empty()) KREPRO_TRY(unlink_file(victim));
      const uint64_t len = uniform(s.rng, c.min_sst, c.max_sst);
      const int64_t t0 = mono_ns();
      UniqueFd fd(::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644));
      if (!fd) return errno_error("open " + path);
      uint64_t off = 0;
      auto done = write_sst(fd.get(), path, len, c.write_size, pacer, &off);
      KREPRO_TRY(done);
      if (!*done) {
        fd.reset();
        ::unlink(path.c_str());
        break;
      }
      KREPRO_TRY(timed(Op::kFsync, path, [&] { return s.engine->fsync(fd.get()); }));
      s.rec.record(Op::kFlush, t0, mono_ns(), path);
      {
        std::lock_guard lk(w.mu_);
        set.live.push_back(path);
      }
      w.cv_.notify_all();
    }
    return {};
  }

  Result<void> run_compaction() {
    const auto& c = w.config_.compaction;
    const uint64_t max_out = w.config_.flush.max_sst;
    Pacer pacer(c.rate);
    auto& set = *w.ssts_;
    std::vector<char> rbuf(c.io_size);
    const auto poll = std::chrono::nanoseconds(static_cast<int64_t>(c.poll_ms * 1e6));
    while (!stopping()) {
      std::vector<std::string> inputs;
      std::string out;
      {
        std::unique_lock lk(w.mu_);
        w.cv_.wait_for(
            lk, poll, [&] { return stopping() || static_cast<int>(set.live.size()) >= c.trigger; });
        if (stopping()) break;
        if (static_cast<int>(set.live.size()) < c.trigger) continue;
        const int n = std::min<int>(std::max(c.inputs, 2), static_cast<int>(set.live.size()));
        for (int i = 0; i < n; ++i) {
          inputs.push_back(set.live.front());
          set.live.pop_front();
        }
        set.claimed += n;
        out = numbered(s.dir, "sst", set.next_id++, "sst");
      }
      auto give_back = [&](bool keep_inputs) {
        {
          std::lock_guard lk(w.mu_);
          set.claimed -= static_cast<int>(inputs.size());
          if (keep_inputs) set.live.insert(set.live.begin(), inputs.begin(), inputs.end());
        }
        w.cv_.notify_all();
      };
      auto r = compact(inputs, out, rbuf, pacer, max_out);
      if (!r || !*r) {
        ::unlink(out.c_str());
        give_back(true);
        if (!r) return Unexpected(r.error());
        break;
      }
      give_back(false);
      {
        // The merged SST holds the oldest data: it goes to the front, so the
        // next step re-merges it (as L0→L1 compactions keep rewriting L1).
        std::lock_guard lk(w.mu_);
        set.live.push_front(out);
      }
      w.cv_.notify_all();
    }
    return {};
  }

  // One compaction step; false when stopped midway (inputs left in place).
  Result<bool> compact(const std::vector<std::string>& inputs, const std::string& out,
                       std::vector<char>& rbuf, Pacer& pacer, uint64_t max_out) {
    const int64_t t0 = mono_ns();
    UniqueFd ofd(::open(out.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644));
    if (!ofd) return errno_error("open " + out);
    uint64_t out_off = 0;
    for (const auto& in : inputs) {
      UniqueFd ifd(::open(in.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ifd) return errno_error("open " + in);
      uint64_t in_off = 0;
      for (;;) {
        if (!pace(pacer, rbuf.size())) return false;
        auto n = timed(Op::kRead, in,
                       [&] { return s.engine->read(ifd.get(), rbuf.data(), rbuf.size(), in_off); });
        KREPRO_TRY(n);
        if (*n == 0) break;
        in_off += *n;
        // The merged output is at most one SST's size (overwritten keys are
        // dropped), which keeps the SST set's space bounded.
        if (out_off < max_out) {
          const uint64_t m = std::min<uint64_t>(*n, max_out - out_off);
          if (!pace(pacer, m)) return false;
          KREPRO_TRY(timed(Op::kWrite, out, [&] {
            return s.engine->write_all(ofd.get(), rbuf.data(), m, out_off);
          }));
          out_off += m;
        }
      }
    }
    KREPRO_TRY(timed(Op::kFsync, out, [&] { return s.engine->fsync(ofd.get()); }));
    for (const auto& in : inputs) KREPRO_TRY(unlink_file(in));
    s.rec.record(Op::kCompactionStep, t0, mono_ns(), out);
    return true;
  }

  void run() {
    Result<void> r;
    if (s.name == "raft_log")
      r = run_raft();
    else if (s.name == "kv_wal")
      r = run_wal();
    else if (s.name == "flush")
      r = run_flush();
    else if (s.name == "compaction")
      r = run_compaction();
    if (!r) s.error = s.name + ": " + r.error().message();
    s.rec.finish();
  }
};

Result<std::unique_ptr<TikvWorkload>> TikvWorkload::create(TikvConfig config) {
  if (config.dir.empty()) return make_error(EINVAL, "tikv workload: dir is empty");
  struct stat st;
  if (::stat(config.dir.c_str(), &st) != 0) return errno_error("stat " + config.dir);
  if (!S_ISDIR(st.st_mode)) return make_error(ENOTDIR, config.dir);
  auto bad = [](const std::string& what) { return make_error(EINVAL, "tikv workload: " + what); };
  if (config.raft.min_record == 0 || config.raft.max_record < config.raft.min_record)
    return bad("raft record sizes");
  if (config.raft.batch_records < 1) return bad("raft batch_records < 1");
  if (config.wal.record == 0) return bad("wal record size 0");
  if (config.flush.min_sst == 0 || config.flush.max_sst < config.flush.min_sst ||
      config.flush.write_size == 0)
    return bad("flush sizes");
  if (config.flush.max_ssts < 2) return bad("flush max_ssts < 2");
  if (config.compaction.enabled && !config.flush.enabled) return bad("compaction needs flush");
  if (config.compaction.io_size == 0) return bad("compaction io_size 0");
  if (config.compaction.trigger < 2 || config.compaction.trigger > config.flush.max_ssts)
    return bad("compaction trigger must be in [2, flush.max_ssts]");
  auto engine = config.engine_factory ? config.engine_factory() : make_engine(config.engine);
  KREPRO_TRY(engine);
  auto w = std::unique_ptr<TikvWorkload>(new TikvWorkload(std::move(config)));
  w->engine_name_ = std::string((*engine)->engine_name());
  w->engine_reason_ = (*engine)->reason();
  return w;
}

TikvWorkload::TikvWorkload(TikvConfig config) : config_(std::move(config)) {}

TikvWorkload::~TikvWorkload() {
  if (running_) stop();
}

Result<void> TikvWorkload::start() {
  if (running_) return make_error(EBUSY, "tikv workload already running");
  if (!config_.raft.enabled && !config_.wal.enabled && !config_.flush.enabled &&
      !config_.compaction.enabled) {
    return make_error(EINVAL, "tikv workload: no stream enabled");
  }
  static std::atomic<int> instance{0};
  const std::string root =
      config_.dir + "/krepro-tikv-" + std::to_string(::getpid()) + "-" + std::to_string(instance++);
  std::error_code ec;
  stdfs::create_directory(root, ec);
  if (ec) return make_error(ec.value(), "mkdir " + root);
  root_ = root;
  stop_ = false;
  ssts_ = std::make_unique<SstSet>();
  streams_.clear();
  const int64_t t0 = mono_ns();
  struct Want {
    const char* name;
    bool on;
    uint64_t bufsize;
    const char* sub;
  };
  const Want wants[] = {
      {"raft_log", config_.raft.enabled, config_.raft.max_record, "raft"},
      {"kv_wal", config_.wal.enabled, config_.wal.record, "wal"},
      {"flush", config_.flush.enabled, config_.flush.write_size, "sst"},
      {"compaction", config_.compaction.enabled, 0, "sst"},
  };
  uint64_t idx = 0;
  for (const auto& want : wants) {
    ++idx;
    if (!want.on) continue;
    // Distinct, reproducible per-stream seeds (splitmix64 constant).
    auto s = std::make_unique<Stream>(want.name, t0, config_.seed ^ (0x9E3779B97F4A7C15ull * idx));
    s->dir = root + "/" + want.sub;
    stdfs::create_directories(s->dir, ec);
    if (ec) {
      cleanup_files();
      return make_error(ec.value(), "mkdir " + s->dir);
    }
    auto e = config_.engine_factory ? config_.engine_factory() : make_engine(config_.engine);
    if (!e) {
      cleanup_files();
      return Unexpected(e.error().wrap(want.name));
    }
    s->engine = std::move(*e);
    s->rec.set_stall_threshold_ns(config_.stall_threshold_ns);
    s->buf.resize(std::max<uint64_t>(want.bufsize, 1));
    for (auto& b : s->buf) b = static_cast<char>(s->rng());
    streams_.push_back(std::move(s));
  }
  for (auto& s : streams_) {
    threads_.emplace_back([this, st = s.get()] { StreamRunner{*this, *st}.run(); });
  }
  running_ = true;
  return {};
}

StopReport TikvWorkload::stop() {
  StopReport rep;
  if (!running_) return rep;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  const int64_t t0 = mono_ns();
  std::vector<std::pair<std::string, int64_t>> inflight;
  for (auto& s : streams_) {
    int64_t since = s->inflight_since.load(std::memory_order_relaxed);
    if (since != 0) {
      inflight.emplace_back(
          s->name + " " +
              std::string(op_name(static_cast<Op>(s->inflight_op.load(std::memory_order_relaxed)))),
          since);
    }
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  rep.join_ns = mono_ns() - t0;
  // Worth a note when stop waited longer than a stall: the op was stuck.
  if (rep.join_ns >= config_.stall_threshold_ns) {
    for (const auto& [what, since] : inflight) {
      rep.notes.push_back("stop waited " + std::to_string((mono_ns() - since) / 1'000'000) +
                          " ms for the in-flight " + what +
                          " (an I/O already in the kernel cannot be interrupted)");
    }
  }
  for (auto& s : streams_) {
    if (!s->error.empty()) rep.errors.push_back(s->error);
  }
  running_ = false;
  if (config_.cleanup) cleanup_files();
  return rep;
}

void TikvWorkload::cleanup_files() {
  if (root_.empty()) return;
  std::error_code ec;
  stdfs::remove_all(root_, ec);  // only the krepro-tikv-* directory start() made
  root_.clear();
}

uint64_t TikvWorkload::disk_bytes() const {
  uint64_t total = 0;
  if (root_.empty()) return 0;
  std::error_code ec;
  for (auto it = stdfs::recursive_directory_iterator(root_, ec);
       !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    // Allocated blocks, not i_size: fallocated space counts.
    if (::stat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  return total;
}

nlohmann::json TikvWorkload::results() const {
  // The recorders belong to their threads until stop() joined them.
  if (running_) return {{"error", "results() called while running"}};
  nlohmann::json streams = nlohmann::json::object();
  for (const auto& s : streams_) {
    nlohmann::json j = s->rec.to_json();
    if (!s->error.empty()) j["error"] = s->error;
    streams[s->name] = std::move(j);
  }
  return {{"engine", engine_name_}, {"engine_reason", engine_reason_}, {"streams", streams}};
}

std::vector<const OpRecorder*> TikvWorkload::recorders() const {
  std::vector<const OpRecorder*> out;
  for (const auto& s : streams_) out.push_back(&s->rec);
  return out;
}

}  // namespace krepro::workloads
