#include "harness/vm/cpio.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "harness/util/fs.h"

namespace krepro::vm {

namespace {
std::string strip(std::string_view p) {
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  return std::string(p);
}
void pad4(std::string& s) {
  while (s.size() % 4) s.push_back('\0');
}
}  // namespace

void CpioWriter::entry(std::string_view path, uint32_t mode, std::string_view data, uint32_t rmajor,
                       uint32_t rminor) {
  char hdr[111];
  // c_magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
  // rdevmajor, rdevminor, namesize (with NUL), check.
  std::snprintf(hdr, sizeof hdr, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
                ino_++, mode, 0, 0, S_ISDIR(mode) ? 2 : 1, 0, static_cast<uint32_t>(data.size()), 0,
                0, rmajor, rminor, static_cast<uint32_t>(path.size() + 1), 0);
  out_.append(hdr, 110);
  out_.append(path);
  out_.push_back('\0');
  pad4(out_);
  out_.append(data);
  pad4(out_);
}

void CpioWriter::parents(std::string_view path) {
  for (size_t pos = path.find('/'); pos != std::string_view::npos; pos = path.find('/', pos + 1)) {
    std::string dir(path.substr(0, pos));
    if (seen_.insert(dir).second) entry(dir, S_IFDIR | 0755, {}, 0, 0);
  }
}

bool CpioWriter::add_dir(std::string_view p, uint32_t mode) {
  std::string path = strip(p);
  parents(path);
  if (!seen_.insert(path).second) return false;
  entry(path, S_IFDIR | (mode & 07777), {}, 0, 0);
  return true;
}

bool CpioWriter::add_file(std::string_view p, std::string_view data, uint32_t mode) {
  std::string path = strip(p);
  parents(path);
  if (!seen_.insert(path).second) return false;
  entry(path, S_IFREG | (mode & 07777), data, 0, 0);
  return true;
}

bool CpioWriter::add_symlink(std::string_view p, std::string_view target) {
  std::string path = strip(p);
  parents(path);
  if (!seen_.insert(path).second) return false;
  entry(path, S_IFLNK | 0777, target, 0, 0);
  return true;
}

bool CpioWriter::add_char_device(std::string_view p, uint32_t major, uint32_t minor,
                                 uint32_t mode) {
  std::string path = strip(p);
  parents(path);
  if (!seen_.insert(path).second) return false;
  entry(path, S_IFCHR | (mode & 07777), {}, major, minor);
  return true;
}

Result<void> CpioWriter::add_host_file(std::string_view path, const std::string& host_path) {
  struct stat st {};
  if (::stat(host_path.c_str(), &st) != 0) return errno_error("stat " + host_path);
  auto data = fs::read_file(host_path, size_t{1} << 30);
  if (!data) return make_error(data.error().err(), "read " + host_path);
  add_file(path, *data, st.st_mode & 07777);
  return {};
}

std::string CpioWriter::finish() {
  entry("TRAILER!!!", 0, {}, 0, 0);
  // The kernel reads the archive in 512-byte blocks only when it is
  // compressed; padding to 512 keeps concatenation with other archives
  // simple either way.
  while (out_.size() % 512) out_.push_back('\0');
  return std::move(out_);
}

Result<std::vector<CpioEntry>> parse_cpio(std::string_view a) {
  std::vector<CpioEntry> out;
  size_t pos = 0;
  // Header fields are 8 hex digits each, after the 6-byte magic.
  auto field = [&](size_t i, uint32_t* v) {
    std::string hex(a.substr(pos + 6 + i * 8, 8));
    char* end = nullptr;
    *v = static_cast<uint32_t>(std::strtoul(hex.c_str(), &end, 16));
    return end == hex.c_str() + 8;
  };
  while (pos + 110 <= a.size()) {
    if (a[pos] == '\0') {  // padding between concatenated archives
      ++pos;
      continue;
    }
    if (a.substr(pos, 6) != "070701")
      return make_error(EINVAL, "cpio: bad magic at " + std::to_string(pos));
    uint32_t mode = 0, size = 0, rmaj = 0, rmin = 0, nsize = 0;
    if (!field(1, &mode) || !field(6, &size) || !field(9, &rmaj) || !field(10, &rmin) ||
        !field(11, &nsize))
      return make_error(EINVAL, "cpio: bad header field at " + std::to_string(pos));
    size_t name_at = pos + 110;
    if (nsize == 0 || name_at + nsize > a.size()) return make_error(EINVAL, "cpio: truncated name");
    std::string name(a.substr(name_at, nsize - 1));
    size_t data_at = (name_at + nsize + 3) & ~size_t{3};
    if (data_at + size > a.size()) return make_error(EINVAL, "cpio: truncated data for " + name);
    pos = (data_at + size + 3) & ~size_t{3};
    if (name == "TRAILER!!!") continue;
    out.push_back({name, mode, std::string(a.substr(data_at, size)), rmaj, rmin});
  }
  return out;
}

}  // namespace krepro::vm
