// Clocks: monotonic nanoseconds for latency and the timeline.
#pragma once

#include <time.h>

#include <cstdint>

namespace krepro {

// CLOCK_MONOTONIC in ns: the timeline's clock; /dev/kmsg timestamps use the
// same clock base (printk's local_clock is close to it; see kernel/printk).
inline int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t boottime_ns() {
  timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace krepro
