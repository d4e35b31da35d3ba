#include "workloads/payload.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace krepro::workloads {

bool parse_payload_kind(const std::string& s, PayloadKind* out) {
  static const struct {
    const char* name;
    PayloadKind kind;
  } kKinds[] = {{"none", PayloadKind::kNone},
                {"write", PayloadKind::kWrite},
                {"files", PayloadKind::kFiles},
                {"sockets", PayloadKind::kSockets},
                {"sleep", PayloadKind::kSleep}};
  for (const auto& k : kKinds) {
    if (s == k.name) {
      *out = k.kind;
      return true;
    }
  }
  return false;
}

const char* payload_kind_name(PayloadKind k) {
  switch (k) {
    case PayloadKind::kNone:
      return "none";
    case PayloadKind::kWrite:
      return "write";
    case PayloadKind::kFiles:
      return "files";
    case PayloadKind::kSockets:
      return "sockets";
    case PayloadKind::kSleep:
      return "sleep";
  }
  return "?";
}

namespace {

int err_code() { return errno > 0 && errno < 100 ? errno : 100; }

// "prefix.N" into buf without allocating.
void numbered(char* buf, size_t cap, const char* prefix, uint32_t n) {
  std::snprintf(buf, cap, "%s.%u", prefix, n);
}

int write_file(const char* path, uint32_t kib, bool do_fsync) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return err_code();
  static const char kBlock[4096] = {'k'};
  uint64_t left = uint64_t{kib} * 1024;
  while (left > 0) {
    size_t n = left < sizeof kBlock ? left : sizeof kBlock;
    ssize_t w = ::write(fd, kBlock, n);
    if (w <= 0) {
      int c = err_code();
      ::close(fd);
      return c;
    }
    left -= static_cast<uint64_t>(w);
  }
  if (do_fsync && ::fsync(fd) != 0) {
    int c = err_code();
    ::close(fd);
    return c;
  }
  ::close(fd);
  return 0;
}

int open_sockets(uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    // Alternate UDP and TCP, bound to loopback in the job's namespace, so
    // socket, inet and port-hash objects are charged and freed on exit.
    int type = i % 2 ? SOCK_STREAM : SOCK_DGRAM;
    int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return err_code();
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return err_code();
    if (type == SOCK_STREAM && ::listen(fd, 4) != 0) return err_code();
    // Left open: the kernel closes them at exit, as a container's do.
  }
  return 0;
}

void sleep_ms(uint32_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1'000'000};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace

int run_payload(const PayloadSpec& spec, const char* path_prefix) {
  int rc = 0;
  char path[512];
  switch (spec.kind) {
    case PayloadKind::kNone:
    case PayloadKind::kSleep:
      break;
    case PayloadKind::kWrite:
      rc = write_file(path_prefix, spec.size_kib, spec.fsync);
      break;
    case PayloadKind::kFiles:
      for (uint32_t i = 0; i < spec.files && rc == 0; ++i) {
        numbered(path, sizeof path, path_prefix, i);
        rc = write_file(path, 0, false);
      }
      break;
    case PayloadKind::kSockets:
      rc = open_sockets(spec.sockets);
      break;
  }
  if (rc == 0 && spec.hold_ms) sleep_ms(spec.hold_ms);
  return rc;
}

void remove_payload_files(const PayloadSpec& spec, const std::string& path_prefix) {
  switch (spec.kind) {
    case PayloadKind::kWrite:
      ::unlink(path_prefix.c_str());
      break;
    case PayloadKind::kFiles:
      for (uint32_t i = 0; i < spec.files; ++i) {
        ::unlink((path_prefix + "." + std::to_string(i)).c_str());
      }
      break;
    default:
      break;
  }
}

}  // namespace krepro::workloads
