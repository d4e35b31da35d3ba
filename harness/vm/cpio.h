// A writer for the "newc" cpio format the kernel unpacks as an initramfs
// (init/initramfs.c: do_header parses the 110-byte "070701" header of
// 13 hex fields; names and file data are padded to 4 bytes). Output is
// deterministic (mtime 0, inodes numbered in order) so its hash can key a
// cache.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "harness/util/result.h"

namespace krepro::vm {

class CpioWriter {
 public:
  // Paths are relative ("bin/sh"); parent directories are added when
  // missing. A path added twice keeps the first entry (returns false).
  bool add_dir(std::string_view path, uint32_t mode = 0755);
  bool add_file(std::string_view path, std::string_view data, uint32_t mode = 0644);
  bool add_symlink(std::string_view path, std::string_view target);
  bool add_char_device(std::string_view path, uint32_t major, uint32_t minor, uint32_t mode = 0600);
  // Reads a host file (following symlinks) and stores it with its mode.
  Result<void> add_host_file(std::string_view path, const std::string& host_path);
  // Appends the TRAILER!!! entry; the writer is then done.
  std::string finish();
  size_t size() const { return out_.size(); }
  bool contains(std::string_view path) const { return seen_.count(std::string(path)) != 0; }

 private:
  void parents(std::string_view path);
  void entry(std::string_view path, uint32_t mode, std::string_view data, uint32_t rmajor,
             uint32_t rminor);
  std::string out_;
  std::set<std::string> seen_;
  uint32_t ino_ = 1;
};

// Parses a newc archive back into (path, mode, data) entries; for tests and
// for checking what an image holds.
struct CpioEntry {
  std::string path;
  uint32_t mode = 0;
  std::string data;
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;
};
Result<std::vector<CpioEntry>> parse_cpio(std::string_view archive);

}  // namespace krepro::vm
