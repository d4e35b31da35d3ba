// Job payloads: what a churned pod's container does in its short life.
// They run in a forked child of a multi-threaded parent, so they use raw
// syscalls only (no allocation, no locks) and return an exit code.
#pragma once

#include <cstdint>
#include <string>

namespace krepro::workloads {

enum class PayloadKind {
  kNone,     // exit at once
  kWrite,    // write size_kib to one file (page cache charged to the memcg)
  kFiles,    // create `files` small files: dentries and inodes, slab-heavy
  kSockets,  // open `sockets` UDP+TCP sockets in the job's netns and bind them
  kSleep,    // stay alive hold_ms
  kPmtu,     // DF datagrams bigger than the path MTU from every CPU: route exceptions
};

struct PayloadSpec {
  PayloadKind kind = PayloadKind::kNone;
  uint32_t size_kib = 4;
  uint32_t files = 16;
  uint32_t sockets = 4;
  uint32_t hold_ms = 0;       // stay alive this long after the work (all kinds)
  bool keep = false;          // leave files behind (pins page cache: the memcg-ID leak)
  uint32_t pmtu_dst = 0;      // IPv4 destination, network byte order
  uint32_t pmtu_size = 1400;  // datagram size (above the path's smaller MTU)
  uint32_t pmtu_packets = 4;  // per CPU
  bool fsync = false;
};

// Parses "none|write|files|sockets|sleep"; false for anything else.
bool parse_payload_kind(const std::string& s, PayloadKind* out);
const char* payload_kind_name(PayloadKind k);

// Exit code of a pmtu job whose path MTU never dropped (no route
// exception was made: the path is not set up as intended).
inline constexpr int kPmtuNotLearned = 90;

// Runs in the child. path_prefix is a per-job path (e.g. DIR/job-123): the
// payload creates path_prefix and path_prefix.N. Returns 0 on success, an
// errno-derived code (1..100) on failure.
int run_payload(const PayloadSpec& spec, const char* path_prefix);

// Removes what run_payload left at path_prefix (the parent calls it before
// rmdir of the job's cgroup unless spec.keep).
void remove_payload_files(const PayloadSpec& spec, const std::string& path_prefix);

}  // namespace krepro::workloads
