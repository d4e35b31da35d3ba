// libFuzzer: parse_kmsg_record must never crash and must keep its invariants.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "harness/kernel/kmsg.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  auto rec = krepro::kernel::parse_kmsg_record(raw);
  if (rec) {
    if (rec->level < 0 || rec->level > 7 || rec->facility < 0) std::abort();
    // Unescaping never makes text longer.
    if (rec->message.size() > raw.size()) std::abort();
  }
  auto u = krepro::kernel::unescape_kmsg(raw);
  if (u.size() > raw.size()) std::abort();
  return 0;
}
