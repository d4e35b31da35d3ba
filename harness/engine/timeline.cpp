#include "harness/engine/timeline.h"

#include <cmath>

#include "harness/util/clock.h"

namespace krepro::engine {

Result<EventLog*> EventLog::open(const std::string& path, int64_t t0_ns) {
  FILE* f = std::fopen(path.c_str(), "we");
  if (!f) return errno_error("open " + path);
  auto* log = new EventLog();
  log->f_ = f;
  log->t0_ns_ = t0_ns;
  return log;
}

EventLog::~EventLog() {
  if (f_) std::fclose(f_);
}

void EventLog::emit(const std::string& type, nlohmann::json fields, int64_t mono_ns) {
  if (mono_ns == 0) mono_ns = krepro::mono_ns();
  nlohmann::json j = nlohmann::json::object();
  j["t"] = std::round(seconds(mono_ns) * 1e6) / 1e6;
  j["mono_ns"] = mono_ns;
  j["type"] = type;
  if (fields.is_object()) {
    for (auto& [k, v] : fields.items()) j[k] = std::move(v);
  }
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  std::lock_guard<std::mutex> lk(mu_);
  if (f_) {
    std::fwrite(line.data(), 1, line.size(), f_);
    std::fflush(f_);
  }
  if (tee_) {
    std::fwrite(line.data(), 1, line.size(), tee_);
    std::fflush(tee_);
  }
  ++count_;
}

}  // namespace krepro::engine
