// Loop block devices krepro sets up for I/O scenarios (a scratch filesystem
// whose device krepro owns, so a blkio throttle rule can be put on it).
#pragma once

#include <sys/types.h>

#include <string>

#include "harness/util/result.h"
#include "harness/util/unique_fd.h"

namespace krepro::kernel {

class LoopDevice {
 public:
  LoopDevice() = default;
  // Binds a free loop device to `backing` (drivers/block/loop.c
  // LOOP_CTL_GET_FREE then LOOP_CONFIGURE). direct_io makes the loop worker
  // write the backing file with O_DIRECT, so a request completes only when
  // the backing device has it: the loop's request latency is then the
  // backing device's.
  static Result<LoopDevice> attach(const std::string& backing, bool direct_io);
  ~LoopDevice();
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  LoopDevice(LoopDevice&& o) noexcept;
  LoopDevice& operator=(LoopDevice&& o) noexcept;

  const std::string& path() const { return path_; }  // /dev/loopN
  dev_t dev() const { return dev_; }
  std::string majmin() const;  // "7:3"
  bool valid() const { return fd_.valid(); }
  Result<void> detach();

 private:
  UniqueFd fd_;
  std::string path_;
  dev_t dev_ = 0;
};

// Backing file of /dev/loopN from sysfs ("" when unbound).
std::string loop_backing_file(const std::string& dev_path, const std::string& sys_root = "/sys");
// Detaches /dev/loopN (LOOP_CLR_FD); used by cleanup of a dead run.
Result<void> loop_detach_path(const std::string& dev_path);

// Creates a sparse file of `bytes`.
Result<void> make_sparse_file(const std::string& path, uint64_t bytes);
// mkfs.ext4 -q -F on a device (e2fsprogs), through Boost.Process.
Result<void> make_ext4(const std::string& dev);

}  // namespace krepro::kernel
