#include "workloads/io_engine.h"

#include <liburing.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

namespace krepro::workloads {

Result<void> IoEngine::write_all(int fd, const void* buf, size_t len, uint64_t off) {
  const auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    auto n = write(fd, p, len, off);
    KREPRO_TRY(n);
    if (*n == 0) return make_error(EIO, "write returned 0 bytes");
    p += *n;
    len -= *n;
    off += *n;
  }
  return {};
}

// ---- psync ----

Result<size_t> PsyncEngine::write(int fd, const void* buf, size_t len, uint64_t off) {
  for (;;) {
    ssize_t n = ::pwrite(fd, buf, len, static_cast<off_t>(off));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return errno_error("pwrite");
  }
}

Result<size_t> PsyncEngine::read(int fd, void* buf, size_t len, uint64_t off) {
  for (;;) {
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(off));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return errno_error("pread");
  }
}

Result<void> PsyncEngine::fdatasync(int fd) {
  if (::fdatasync(fd) != 0) return errno_error("fdatasync");
  return {};
}

Result<void> PsyncEngine::fsync(int fd) {
  if (::fsync(fd) != 0) return errno_error("fsync");
  return {};
}

// ---- io_uring ----

Result<UringEngine> UringEngine::create(unsigned entries, bool fio_flags) {
  auto* ring = new io_uring{};
  // io_uring/io_uring.c io_uring_setup: -ENOSYS before 5.1 or without
  // CONFIG_IO_URING; -EPERM when kernel.io_uring_disabled forbids the caller
  // (io_uring_allowed) or a seccomp policy blocks the syscall; -EINVAL for
  // setup flags the kernel does not know (io_uring_create), so retry with
  // fewer, newest first.
  const unsigned kCoop = IORING_SETUP_COOP_TASKRUN;
  const unsigned kDefer =
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
  std::vector<unsigned> tries;
  if (fio_flags) {
    tries.push_back(kCoop | kDefer);
    tries.push_back(kCoop);
  }
  tries.push_back(0);
  int ret = -EINVAL;
  unsigned flags = 0;
  for (unsigned f : tries) {
    io_uring_params p{};
    p.flags = f;
    ret = io_uring_queue_init_params(entries, ring, &p);
    flags = f;
    if (ret != -EINVAL) break;
  }
  if (ret < 0) {
    delete ring;
    return make_error(-ret, "io_uring_queue_init");
  }
  UringEngine engine(ring, flags);
  // IORING_OP_READ/WRITE arrived in 5.6 (io_uring/opdef.c); the probe
  // (IORING_REGISTER_PROBE, 5.6) reports whether the running kernel has them.
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) return make_error(EOPNOTSUPP, "io_uring probe (kernel < 5.6?)");
  bool ok = io_uring_opcode_supported(probe, IORING_OP_READ) &&
            io_uring_opcode_supported(probe, IORING_OP_WRITE) &&
            io_uring_opcode_supported(probe, IORING_OP_FSYNC);
  io_uring_free_probe(probe);
  if (!ok) return make_error(EOPNOTSUPP, "io_uring lacks IORING_OP_READ/WRITE/FSYNC");
  return engine;
}

UringEngine::UringEngine(UringEngine&& o) noexcept
    : ring_(std::exchange(o.ring_, nullptr)),
      flags_(std::exchange(o.flags_, 0)),
      enabled_(std::exchange(o.enabled_, false)) {
  set_reason(o.reason());
}

UringEngine& UringEngine::operator=(UringEngine&& o) noexcept {
  if (this != &o) {
    release();
    ring_ = std::exchange(o.ring_, nullptr);
    flags_ = std::exchange(o.flags_, 0);
    enabled_ = std::exchange(o.enabled_, false);
    set_reason(o.reason());
  }
  return *this;
}

UringEngine::~UringEngine() { release(); }

void UringEngine::release() {
  if (ring_ == nullptr) return;
  // Only ever one request in flight and every call reaps its CQE before
  // returning, so nothing is pending when the ring is torn down.
  io_uring_queue_exit(ring_);
  delete ring_;
  ring_ = nullptr;
}

int UringEngine::ring_fd() const { return ring_ ? ring_->ring_fd : -1; }

Result<int> UringEngine::submit_one(const char* what) {
  int ret;
  if ((flags_ & IORING_SETUP_R_DISABLED) && !enabled_) {
    // liburing 2.3 declares io_uring_enable_rings but does not export it
    // (Debian bookworm's liburing2), so register directly.
    if (::syscall(__NR_io_uring_register, ring_->ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr,
                  0) != 0) {
      return errno_error("io_uring_register ENABLE_RINGS");
    }
    enabled_ = true;
  }
  do {
    ret = io_uring_submit_and_wait(ring_, 1);
  } while (ret == -EINTR);
  if (ret < 0) return make_error(-ret, std::string("io_uring_submit_and_wait ") + what);
  // io_uring_enter returns the submitted count even when the wait part was
  // interrupted (io_uring/io_uring.c io_uring_enter), so wait for the CQE
  // explicitly; it is usually already there and this costs no syscall.
  io_uring_cqe* cqe = nullptr;
  do {
    ret = io_uring_wait_cqe(ring_, &cqe);
  } while (ret == -EINTR);
  if (ret < 0) return make_error(-ret, std::string("io_uring_wait_cqe ") + what);
  int res = cqe->res;
  io_uring_cqe_seen(ring_, cqe);
  return res;
}

namespace {
// The SQ has room: each call submits and reaps its only SQE before returning.
io_uring_sqe* get_sqe(io_uring* ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  KREPRO_CHECK_MSG(sqe != nullptr, "io_uring SQ full with queue depth 1");
  return sqe;
}
}  // namespace

// An SQE's length is 32 bits; larger requests become short transfers that
// write_all continues, as the kernel's rw_verify_area caps them anyway.
constexpr size_t kMaxSqeLen = size_t{1} << 30;

Result<size_t> UringEngine::write(int fd, const void* buf, size_t len, uint64_t off) {
  KREPRO_CHECK(ring_ != nullptr);
  len = std::min(len, kMaxSqeLen);
  for (;;) {
    io_uring_prep_write(get_sqe(ring_), fd, buf, static_cast<unsigned>(len), off);
    auto res = submit_one("write");
    KREPRO_TRY(res);
    if (*res >= 0) return static_cast<size_t>(*res);
    if (*res != -EINTR && *res != -EAGAIN) return make_error(-*res, "io_uring write");
  }
}

Result<size_t> UringEngine::read(int fd, void* buf, size_t len, uint64_t off) {
  KREPRO_CHECK(ring_ != nullptr);
  len = std::min(len, kMaxSqeLen);
  for (;;) {
    io_uring_prep_read(get_sqe(ring_), fd, buf, static_cast<unsigned>(len), off);
    auto res = submit_one("read");
    KREPRO_TRY(res);
    if (*res >= 0) return static_cast<size_t>(*res);
    if (*res != -EINTR && *res != -EAGAIN) return make_error(-*res, "io_uring read");
  }
}

Result<void> UringEngine::fdatasync(int fd) {
  KREPRO_CHECK(ring_ != nullptr);
  // io_uring/sync.c io_fsync: IORING_FSYNC_DATASYNC → vfs_fsync_range(datasync=1),
  // the same path as fdatasync(2).
  io_uring_prep_fsync(get_sqe(ring_), fd, IORING_FSYNC_DATASYNC);
  auto res = submit_one("fdatasync");
  KREPRO_TRY(res);
  if (*res < 0) return make_error(-*res, "io_uring fdatasync");
  return {};
}

Result<void> UringEngine::fsync(int fd) {
  KREPRO_CHECK(ring_ != nullptr);
  io_uring_prep_fsync(get_sqe(ring_), fd, 0);
  auto res = submit_one("fsync");
  KREPRO_TRY(res);
  if (*res < 0) return make_error(-*res, "io_uring fsync");
  return {};
}

// ---- factory ----

Result<std::unique_ptr<IoEngine>> make_engine(const std::string& kind) {
  if (kind == "psync") {
    auto e = std::make_unique<PsyncEngine>();
    e->set_reason("requested psync");
    return std::unique_ptr<IoEngine>(std::move(e));
  }
  if (kind != "auto" && kind != "io_uring") {
    return make_error(EINVAL, "unknown io engine '" + kind + "' (auto, io_uring, psync)");
  }
  auto ring = UringEngine::create();
  if (ring) {
    auto e = std::make_unique<UringEngine>(std::move(*ring));
    std::string how = (e->setup_flags() & IORING_SETUP_DEFER_TASKRUN)
                          ? " (COOP_TASKRUN|SINGLE_ISSUER|DEFER_TASKRUN, as fio)"
                      : (e->setup_flags() & IORING_SETUP_COOP_TASKRUN) ? " (COOP_TASKRUN)"
                                                                       : " (no setup flags)";
    e->set_reason((kind == "auto" ? "auto: io_uring_queue_init succeeded" : "requested io_uring") +
                  how);
    return std::unique_ptr<IoEngine>(std::move(e));
  }
  if (kind == "io_uring") {
    return Unexpected(ring.error().wrap("io engine io_uring requested"));
  }
  auto e = std::make_unique<PsyncEngine>();
  e->set_reason("auto: io_uring unavailable (" + ring.error().message() + "), using psync");
  return std::unique_ptr<IoEngine>(std::move(e));
}

}  // namespace krepro::workloads
