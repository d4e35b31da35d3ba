// A scratch filesystem on devices krepro owns, for I/O scenarios whose
// latency is to be injected through the block layer: ext4 on loop device
// INNER (direct I/O) whose image lives on ext4 on loop device OUTER. A blkio
// throttle rule on OUTER makes INNER's requests as slow as OUTER's throttled
// writes: to ext4 on INNER and to the tracepoints, a slow disk.
#pragma once

#include <memory>
#include <string>

#include "harness/kernel/loopdev.h"
#include "harness/util/result.h"

namespace krepro::engine {

struct RunContext;

class ScratchFs {
 public:
  // Mounts the inner filesystem at `mountpoint` (created if missing).
  static Result<std::unique_ptr<ScratchFs>> create(RunContext& ctx, uint64_t bytes,
                                                   const std::string& mountpoint);
  ~ScratchFs();
  const std::string& mountpoint() const { return inner_mnt_; }
  std::string inner_dev() const { return inner_.majmin(); }
  std::string outer_dev() const { return outer_.majmin(); }

 private:
  ScratchFs() = default;
  kernel::LoopDevice outer_, inner_;
  std::string outer_img_, outer_mnt_, inner_mnt_;
  bool outer_mounted_ = false, inner_mounted_ = false;
};

}  // namespace krepro::engine
