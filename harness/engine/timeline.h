// events.jsonl: one JSON object a line, monotonic timestamps, flushed as it
// goes so a killed run (or a hung guest) keeps everything written so far.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/util/result.h"

namespace krepro::engine {

class EventLog {
 public:
  EventLog() = default;
  // t0_ns: the run's start on CLOCK_MONOTONIC; events carry t = seconds since.
  static Result<EventLog*> open(const std::string& path, int64_t t0_ns);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Writes {"t": ..., "mono_ns": ..., "type": type, ...fields}.
  void emit(const std::string& type, nlohmann::json fields = nlohmann::json::object(),
            int64_t mono_ns = 0);
  // Also echoes each line to another stream (the VM guest streams events to
  // the host over a serial port this way).
  void tee(FILE* f) { tee_ = f; }
  int64_t t0_ns() const { return t0_ns_; }
  double seconds(int64_t mono_ns) const { return static_cast<double>(mono_ns - t0_ns_) / 1e9; }
  uint64_t count() const { return count_; }

 private:
  std::mutex mu_;
  FILE* f_ = nullptr;
  FILE* tee_ = nullptr;
  int64_t t0_ns_ = 0;
  uint64_t count_ = 0;
};

}  // namespace krepro::engine
