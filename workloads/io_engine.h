// Synchronous file I/O through io_uring (queue depth 1) or plain psync calls.
//
// Each call is synchronous from the caller's view, like fio's
// `ioengine=io_uring iodepth=1` or `ioengine=psync`: one request is submitted,
// the caller waits for its completion, and the latency the caller measures
// around the call is the latency of that one request. An engine is used by one
// thread at a time (a ring is not shared between submitters).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "harness/util/result.h"

struct io_uring;  // liburing

namespace krepro::workloads {

class IoEngine {
 public:
  virtual ~IoEngine() = default;

  // One positional write/read; returns the bytes transferred (may be short).
  virtual Result<size_t> write(int fd, const void* buf, size_t len, uint64_t off) = 0;
  virtual Result<size_t> read(int fd, void* buf, size_t len, uint64_t off) = 0;
  virtual Result<void> fdatasync(int fd) = 0;
  virtual Result<void> fsync(int fd) = 0;

  // "io_uring" or "psync".
  virtual std::string_view engine_name() const = 0;
  // Why make_engine chose this engine (e.g. "io_uring_queue_init: ENOSYS").
  const std::string& reason() const { return reason_; }
  void set_reason(std::string r) { reason_ = std::move(r); }

  // Writes all of buf at off, retrying short writes.
  Result<void> write_all(int fd, const void* buf, size_t len, uint64_t off);

 private:
  std::string reason_;
};

// pwrite/pread/fdatasync/fsync.
class PsyncEngine final : public IoEngine {
 public:
  Result<size_t> write(int fd, const void* buf, size_t len, uint64_t off) override;
  Result<size_t> read(int fd, void* buf, size_t len, uint64_t off) override;
  Result<void> fdatasync(int fd) override;
  Result<void> fsync(int fd) override;
  std::string_view engine_name() const override { return "psync"; }
};

// liburing, one SQE in flight per call: IORING_OP_WRITE / IORING_OP_READ /
// IORING_OP_FSYNC (with IORING_FSYNC_DATASYNC for fdatasync), then
// io_uring_submit_and_wait(ring, 1). Move-only; owns the ring.
class UringEngine final : public IoEngine {
 public:
  // Sets up a ring and checks (IORING_REGISTER_PROBE) that the kernel knows
  // IORING_OP_READ/WRITE (5.6+); 5.1-5.5 have only the readv/writev ops.
  //
  // Like fio's io_uring engine, the ring asks for COOP_TASKRUN (5.19),
  // SINGLE_ISSUER (6.0) and DEFER_TASKRUN (6.1), dropping them on EINVAL
  // from older kernels: completions are then run in the submitter's own
  // io_uring_enter instead of by task-work interrupts. SINGLE_ISSUER binds
  // the ring to one thread, so the ring is created disabled
  // (IORING_SETUP_R_DISABLED) and the first thread that submits enables it
  // and becomes its only submitter (io_uring/register.c
  // io_register_enable_rings). Create it anywhere; use it from one thread.
  static Result<UringEngine> create(unsigned entries = 4, bool fio_flags = true);

  UringEngine(UringEngine&& o) noexcept;
  UringEngine& operator=(UringEngine&& o) noexcept;
  UringEngine(const UringEngine&) = delete;
  UringEngine& operator=(const UringEngine&) = delete;
  ~UringEngine() override;

  Result<size_t> write(int fd, const void* buf, size_t len, uint64_t off) override;
  Result<size_t> read(int fd, void* buf, size_t len, uint64_t off) override;
  Result<void> fdatasync(int fd) override;
  Result<void> fsync(int fd) override;
  std::string_view engine_name() const override { return "io_uring"; }

  bool valid() const { return ring_ != nullptr; }
  // The IORING_SETUP_* flags the kernel accepted.
  unsigned setup_flags() const { return flags_; }
  // The ring's file descriptor (-1 when moved from); for tests.
  int ring_fd() const;

 private:
  UringEngine(io_uring* ring, unsigned flags) : ring_(ring), flags_(flags) {}
  void release();
  // Submits the prepared SQE and waits for its CQE; returns cqe->res.
  Result<int> submit_one(const char* what);

  io_uring* ring_ = nullptr;  // heap-held so moves never copy live ring state
  unsigned flags_ = 0;
  bool enabled_ = false;  // R_DISABLED rings are enabled by the first submit
};

// kind: "auto" | "io_uring" | "psync". "auto" takes io_uring when a ring can
// be set up and supports the ops used, else psync; reason() says why.
Result<std::unique_ptr<IoEngine>> make_engine(const std::string& kind);

}  // namespace krepro::workloads
