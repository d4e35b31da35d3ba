#include "workloads/payload.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
  } kKinds[] = {{"none", PayloadKind::kNone},   {"write", PayloadKind::kWrite},
                {"files", PayloadKind::kFiles}, {"sockets", PayloadKind::kSockets},
                {"sleep", PayloadKind::kSleep}, {"pmtu", PayloadKind::kPmtu}};
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
    case PayloadKind::kPmtu:
      return "pmtu";
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

// DF datagrams bigger than the smaller MTU on the path: the router answers
// ICMP_FRAG_NEEDED and this namespace records a route exception
// (net/ipv4/route.c __ip_rt_update_pmtu → update_or_create_fnhe), from
// every CPU as net/pmtu.sh's cleanup_ipv4_exception test does, so the
// exceptions are spread over per-CPU route caches when the namespace dies.
int send_pmtu(const PayloadSpec& spec) {
  long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;
  if (ncpu > 8) ncpu = 8;
  pid_t kids[8];
  static char buf[65536];
  for (long c = 0; c < ncpu; ++c) {
    kids[c] = ::fork();
    if (kids[c] == 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(static_cast<int>(c), &set);
      ::sched_setaffinity(0, sizeof set, &set);
      int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) ::_exit(err_code());
      int pmtu = IP_PMTUDISC_DO;
      ::setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = spec.pmtu_dst;
      a.sin_port = htons(9);
      uint32_t size = spec.pmtu_size < sizeof buf ? spec.pmtu_size : sizeof buf;
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ::_exit(err_code());
      int mtu = 0;
      for (uint32_t i = 0; i < spec.pmtu_packets; ++i) {
        // EMSGSIZE once the exception exists: that is the point.
        (void)::send(fd, buf, size, 0);
        timespec ts{0, 2'000'000};
        ::nanosleep(&ts, nullptr);
        socklen_t len = sizeof mtu;
        if (::getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len) == 0 && mtu > 0 &&
            static_cast<uint32_t>(mtu) < size)
          break;
      }
      // The route's MTU dropped below our size: the exception exists.
      ::_exit(mtu > 0 && static_cast<uint32_t>(mtu) < size ? 0 : kPmtuNotLearned);
    }
  }
  int rc = 0;
  for (long c = 0; c < ncpu; ++c) {
    int st = 0;
    if (kids[c] > 0 && ::waitpid(kids[c], &st, 0) > 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0)
      rc = WEXITSTATUS(st);
  }
  return rc;
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
    case PayloadKind::kPmtu:
      rc = send_pmtu(spec);
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
