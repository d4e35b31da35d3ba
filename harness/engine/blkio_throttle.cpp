// blkio-throttle: switches a per-device blkio write-bandwidth rule on and
// off on a device krepro set up (the scratch filesystem's outer loop
// device), in the root blkio cgroup — v1 charges writeback to the root
// (block/blk-throttle.c; writeback bios carry the root blkcg on v1), so only
// a root rule slows the page-cache flush. The rule is journaled first and
// reset to 0 afterwards, also by `krepro cleanup`.
#include <thread>

#include "harness/engine/actor.h"
#include "harness/engine/journal.h"
#include "harness/engine/registry.h"
#include "harness/engine/scenario.h"
#include "harness/engine/timeline.h"
#include "harness/util/clock.h"
#include "harness/util/fs.h"

namespace krepro::engine {

namespace {

class BlkioThrottle final : public Actor {
 public:
  explicit BlkioThrottle(const CompiledActor& c) : Actor(c.name), p_(c.params) {}
  std::string kind() const override { return "throttle"; }

  Result<void> prepare(RunContext& ctx) override {
    if (ctx.scratch_throttle_dev.empty())
      return make_error(0,
                        "blkio-throttle needs the scratch filesystem on krepro's own devices "
                        "(options: scratch_device: loop)");
    dev_ = ctx.scratch_throttle_dev;
    const kernel::CgroupMount* m = ctx.layout.v1("blkio");
    if (!m) return make_error(ENOENT, "blkio-throttle: no v1 blkio hierarchy");
    file_ = fs::join(m->mount_point, "blkio.throttle.write_bps_device");
    if (!fs::exists(file_))
      return make_error(ENOENT, file_ + " missing (CONFIG_BLK_DEV_THROTTLING off)");
    KREPRO_TRY(ctx.journal->add_blkio_rule(file_ + " " + dev_));
    return {};
  }

  void run(RunContext& ctx, int64_t) override {
    int64_t bps = p_.get_int("write_bps");
    int64_t on = p_.get_int("on"), off = p_.get_int("off");
    int64_t next = mono_ns() + p_.get_int("start_after");
    bool active = false;
    while (ctx.phase_running()) {
      int64_t now = mono_ns();
      if (now >= next) {
        active = !active;
        set(ctx, active ? bps : 0);
        next = now + (active ? on : off);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (active) set(ctx, 0);
  }

  void contribute(RunStats& s) override {
    s.use_feature("blkio-throttle");
    s.workload["throttle." + name_] = {{"device", dev_}, {"windows", windows_}};
  }

 private:
  void set(RunContext& ctx, int64_t bps) {
    auto r = fs::write_file(file_, dev_ + " " + std::to_string(bps));
    int64_t now = mono_ns();
    if (!r) {
      ctx.events->emit("throttle_error", {{"actor", name_}, {"message", r.error().message()}});
      return;
    }
    ctx.events->emit(bps ? "throttle_on" : "throttle_off",
                     {{"actor", name_}, {"device", dev_}, {"write_bps", bps}});
    if (bps) {
      windows_.push_back({{"on_s", (now - ctx.t0_ns) / 1e9}});
    } else if (!windows_.empty()) {
      windows_.back()["off_s"] = (now - ctx.t0_ns) / 1e9;
    }
  }

  Params p_;
  std::string dev_, file_;
  nlohmann::json windows_ = nlohmann::json::array();
};

}  // namespace

ActorType blkio_throttle_type() {
  ActorType t;
  t.name = "blkio-throttle";
  t.help =
      "switch a blkio write-bandwidth rule on/off on krepro's scratch device (latency injection)";
  t.params = {
      {"write_bps", ParamType::kSize, "2MiB", 4096, 1e12, "write bandwidth while on (bytes/s)"},
      {"on", ParamType::kDuration, "5s", 1e8, 3600e9, "how long each throttled window lasts"},
      {"off", ParamType::kDuration, "5s", 1e8, 3600e9, "time between windows"},
      {"start_after", ParamType::kDuration, "2s", 0, 3600e9, "first window starts after this"},
  };
  t.requires_features = {"root", "blkio-throttle", "loop-device"};
  t.make = [](const CompiledActor& c) { return std::make_unique<BlkioThrottle>(c); };
  return t;
}

}  // namespace krepro::engine
