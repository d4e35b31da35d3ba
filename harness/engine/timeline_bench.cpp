// Cost of one event: EventLog::emit into a real file (the json build, the
// dump, the write and the fflush that keeps a killed run's log complete) and
// the json build + dump alone, so that the difference is the syscall.
// Events are rare next to I/O ops (per cycle, per finding), so the budget is
// loose; this keeps an accidental O(n) or extra copy visible.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/engine/timeline.h"
#include "harness/util/check.h"
#include "harness/util/clock.h"

namespace krepro::engine {
namespace {

// A typical churn event: a handful of scalar fields.
nlohmann::json cycle_fields(int64_t i) {
  return {{"actor", "memcg"},   {"cycle", i},       {"cgroup", "krepro-memcg-123456"},
          {"create_ns", 81234}, {"job_ns", 412345}, {"destroy_ns", 95321}};
}

// A signature finding carries the kernel line, the longest text we emit.
nlohmann::json signature_fields() {
  return {{"signature", "netdev_refcount_leak"},
          {"kernel_ts_s", 12345.678901},
          {"device", "kbench0"},
          {"line", "unregister_netdevice: waiting for kbench0 to become free. Usage count = 1"}};
}

struct TempLog {
  std::string path;
  std::unique_ptr<EventLog> log;
  TempLog() {
    char tmpl[] = "/tmp/krepro-timeline-bench-XXXXXX";
    int fd = mkstemp(tmpl);
    KREPRO_CHECK(fd >= 0);
    close(fd);
    path = tmpl;
    auto opened = EventLog::open(path, mono_ns());
    KREPRO_CHECK(opened.has_value());
    log.reset(*opened);
  }
  ~TempLog() {
    log.reset();
    unlink(path.c_str());
  }
};

void BM_EventLogEmitFile(benchmark::State& state) {
  TempLog t;
  int64_t i = 0;
  for (auto _ : state) t.log->emit("cycle", cycle_fields(i++));
  KREPRO_CHECK(t.log->count() == static_cast<uint64_t>(i));
}
BENCHMARK(BM_EventLogEmitFile);

void BM_EventLogEmitFileSignature(benchmark::State& state) {
  TempLog t;
  for (auto _ : state) t.log->emit("signature", signature_fields());
}
BENCHMARK(BM_EventLogEmitFileSignature);

// What emit does before the write: the same object built and dumped.
void BM_EventJsonDump(benchmark::State& state) {
  const int64_t t0 = mono_ns();
  int64_t i = 0;
  for (auto _ : state) {
    const int64_t now = mono_ns();
    nlohmann::json j = nlohmann::json::object();
    j["t"] = std::round(static_cast<double>(now - t0) / 1e3) / 1e6;
    j["mono_ns"] = now;
    j["type"] = "cycle";
    // emit() takes the fields by value, so the copy is part of the cost.
    nlohmann::json fields = cycle_fields(i++);
    for (auto& [k, v] : fields.items()) j[k] = std::move(v);
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    benchmark::DoNotOptimize(line);
  }
}
BENCHMARK(BM_EventJsonDump);

// The dump alone of a prebuilt event object.
void BM_EventJsonDumpOnly(benchmark::State& state) {
  nlohmann::json j = cycle_fields(42);
  j["t"] = 1.234567;
  j["mono_ns"] = mono_ns();
  j["type"] = "cycle";
  for (auto _ : state) {
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    benchmark::DoNotOptimize(line);
  }
}
BENCHMARK(BM_EventJsonDumpOnly);

}  // namespace
}  // namespace krepro::engine
