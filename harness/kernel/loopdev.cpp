#include "harness/kernel/loopdev.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <boost/process/child.hpp>
#include <boost/process/io.hpp>
#include <cerrno>
#include <cstring>
#include <thread>

#include "harness/util/fs.h"

namespace krepro::kernel {

Result<LoopDevice> LoopDevice::attach(const std::string& backing, bool direct_io) {
  UniqueFd file(::open(backing.c_str(), O_RDWR | O_CLOEXEC));
  if (!file) return errno_error("open " + backing);
  UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!ctl) return errno_error("open /dev/loop-control");
  // A free device can be taken by someone else between GET_FREE and
  // CONFIGURE (EBUSY): try again with the next one.
  for (int attempt = 0; attempt < 8; ++attempt) {
    int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return errno_error("LOOP_CTL_GET_FREE");
    std::string path = "/dev/loop" + std::to_string(n);
    UniqueFd dev;
    for (int i = 0; i < 50 && !dev; ++i) {  // udev may still be creating the node
      dev.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
      if (!dev) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!dev) return errno_error("open " + path);
    loop_config cfg{};
    cfg.fd = static_cast<uint32_t>(file.get());
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (direct_io ? LO_FLAGS_DIRECT_IO : 0);
    std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), backing.c_str(), LO_NAME_SIZE - 1);
    if (::ioctl(dev.get(), LOOP_CONFIGURE, &cfg) != 0) {
      if (errno == EBUSY) continue;
      return errno_error("LOOP_CONFIGURE " + path);
    }
    struct stat st;
    if (::fstat(dev.get(), &st) != 0) return errno_error("stat " + path);
    LoopDevice d;
    d.fd_ = std::move(dev);
    d.path_ = path;
    d.dev_ = st.st_rdev;
    return d;
  }
  return make_error(EBUSY, "no free loop device");
}

LoopDevice::~LoopDevice() { (void)detach(); }

LoopDevice::LoopDevice(LoopDevice&& o) noexcept
    : fd_(std::move(o.fd_)), path_(std::move(o.path_)), dev_(o.dev_) {
  o.dev_ = 0;
}

LoopDevice& LoopDevice::operator=(LoopDevice&& o) noexcept {
  if (this != &o) {
    (void)detach();
    fd_ = std::move(o.fd_);
    path_ = std::move(o.path_);
    dev_ = o.dev_;
    o.dev_ = 0;
  }
  return *this;
}

std::string LoopDevice::majmin() const {
  return std::to_string(major(dev_)) + ":" + std::to_string(minor(dev_));
}

Result<void> LoopDevice::detach() {
  if (!fd_) return {};
  // With LO_FLAGS_AUTOCLEAR the kernel also detaches on last close
  // (drivers/block/loop.c lo_release); CLR_FD makes it immediate.
  int r = ::ioctl(fd_.get(), LOOP_CLR_FD, 0);
  int e = errno;
  fd_.reset();
  if (r != 0 && e != ENXIO) return make_error(e, "LOOP_CLR_FD " + path_);
  return {};
}

std::string loop_backing_file(const std::string& dev_path, const std::string& sys_root) {
  std::string name = dev_path.substr(dev_path.rfind('/') + 1);
  auto b = fs::read_line(sys_root + "/block/" + name + "/loop/backing_file");
  return b ? *b : std::string();
}

Result<void> loop_detach_path(const std::string& dev_path) {
  UniqueFd d(::open(dev_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!d) return errno_error("open " + dev_path);
  if (::ioctl(d.get(), LOOP_CLR_FD, 0) != 0 && errno != ENXIO)
    return errno_error("LOOP_CLR_FD " + dev_path);
  return {};
}

Result<void> make_sparse_file(const std::string& path, uint64_t bytes) {
  UniqueFd f(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!f) return errno_error("create " + path);
  if (::ftruncate(f.get(), static_cast<off_t>(bytes)) != 0) return errno_error("truncate " + path);
  return {};
}

Result<void> make_ext4(const std::string& dev) {
  namespace bp = boost::process;
  // bp::search_path needs the compiled Boost.Filesystem; the sbin
  // folders are where e2fsprogs installs it.
  std::string exe;
  for (const char* p : {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"})
    if (fs::exists(p)) exe = p;
  if (exe.empty()) return make_error(ENOENT, "mkfs.ext4 not found (Debian package e2fsprogs)");
  std::error_code ec;
  bp::child c(exe, "-q", "-F", dev, bp::std_out > bp::null, bp::std_err > bp::null,
              bp::std_in.close(), ec);
  if (ec) return make_error(ec.value(), "mkfs.ext4 " + dev);
  c.wait(ec);
  if (ec) return make_error(ec.value(), "mkfs.ext4 " + dev);
  if (c.exit_code() != 0)
    return make_error(EIO, "mkfs.ext4 " + dev + " exited " + std::to_string(c.exit_code()));
  return {};
}

}  // namespace krepro::kernel
